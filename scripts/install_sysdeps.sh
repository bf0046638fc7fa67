#!/usr/bin/env bash
# Installs the Debian packages omnitok's data sources need (speech synthesis, text corpora),
# when they are missing. Run as root (CI and these machines) or with sudo; otherwise prints the command.
set -euo pipefail
PKGS=(flite espeak-ng fortunes bible-kjv wordnet-base chromium)  # chromium: the serve tests drive the web page
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "omnitok needs these Debian packages: ${missing[*]}" >&2
    echo "install them with: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
