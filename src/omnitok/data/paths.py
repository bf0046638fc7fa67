"""Where omnitok keeps built data, and how it fetches what a source needs (npm packages, Debian tools).

Cache root: ``root`` argument, else ``$OMNITOK_HOME``, else ``~/.cache/omnitok``.
Layout::

    <root>/datasets/<name>/<split>-000000.tar   WebDataset shards
    <root>/datasets/<name>/card.json            dataset card (counts, sizes, checksums, versions)
    <root>/npm/node_modules/<package>           npm packages (``npm install --prefix <root>/npm``)
    <root>/work/<name>/                         scratch space for a source

``$OMNITOK_NPM_DIR`` moves the npm prefix elsewhere (tests keep one that persists between runs).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "MissingToolError",
    "cache_root",
    "dataset_dir",
    "datasets_dir",
    "npm_package",
    "npm_prefix",
    "require_tool",
]


class MissingToolError(RuntimeError):
    """A system tool or package a data source needs is missing; the message says how to install it."""


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """The omnitok cache directory: ``root``, else ``$OMNITOK_HOME``, else ``~/.cache/omnitok``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("OMNITOK_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "omnitok"


def datasets_dir(root: str | os.PathLike | None = None) -> Path:
    return cache_root(root) / "datasets"


def dataset_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    return datasets_dir(root) / name


def npm_prefix(root: str | os.PathLike | None = None) -> Path:
    """The ``npm install --prefix`` directory: ``$OMNITOK_NPM_DIR`` or ``<root>/npm``."""
    env = os.environ.get("OMNITOK_NPM_DIR")
    if env:
        return Path(env).expanduser()
    return cache_root(root) / "npm"


def _installed_npm_version(prefix: Path, name: str) -> str | None:
    pkg = prefix / "node_modules" / name / "package.json"
    if not pkg.is_file():
        return None
    try:
        return str(json.loads(pkg.read_text())["version"])
    except (ValueError, KeyError):
        return None


def npm_package(name: str, version: str, prefix: str | os.PathLike | None = None) -> Path:
    """Install npm package ``name@version`` under ``prefix`` (once) and return its folder.

    Raises MissingToolError when ``npm`` is not installed and RuntimeError when the install fails.
    """
    prefix = Path(prefix) if prefix is not None else npm_prefix()
    folder = prefix / "node_modules" / name
    if _installed_npm_version(prefix, name) == version:
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise MissingToolError(
            f"npm is needed to fetch the npm package {name}@{version}; "
            "install it with `apt-get install -y npm` (Debian/Ubuntu) or from https://nodejs.org"
        )
    prefix.mkdir(parents=True, exist_ok=True)
    # The prefix's package.json records every package installed so far (npm prunes what it does not list);
    # a lock file serialises installs from concurrent builds or test sessions.
    with open(prefix / ".omnitok-npm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_npm_version(prefix, name) == version:
            return folder
        cmd = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--save-exact",
               f"{name}@{version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or _installed_npm_version(prefix, name) != version:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return folder


def _apt_allowed() -> bool:
    """apt-get may run when we are root and ``$OMNITOK_ALLOW_APT`` is not ``0``."""
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return is_root and os.environ.get("OMNITOK_ALLOW_APT", "1") != "0" and shutil.which("apt-get") is not None


def require_tool(name: str, debian_pkg: str, *, path: str | os.PathLike | None = None,
                 allow_apt: bool | None = None) -> Path:
    """Make sure a system tool is present and return its path.

    ``name`` is an executable looked up on PATH, or, when ``path`` is given, that file or folder must exist
    (for data-only packages such as ``fortunes`` or ``wordnet-base``). When missing and apt is allowed
    (root, ``$OMNITOK_ALLOW_APT`` not ``0``), runs ``apt-get install -y <debian_pkg>``; otherwise raises
    MissingToolError with the command to run.
    """
    def find() -> Path | None:
        if path is not None:
            return Path(path) if Path(path).exists() else None
        found = shutil.which(name)
        return Path(found) if found else None

    found = find()
    if found is not None:
        return found
    allow = _apt_allowed() if allow_apt is None else allow_apt
    hint = f"`apt-get install -y {debian_pkg}` (as root: `sudo apt-get install -y {debian_pkg}`)"
    if allow:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        proc = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", debian_pkg],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:  # the package lists may be stale
            subprocess.run(["apt-get", "update"], capture_output=True, env=env)
            proc = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", debian_pkg],
                                  capture_output=True, text=True, env=env)
        found = find()
        if found is not None:
            return found
        raise MissingToolError(f"{name} is missing and `apt-get install -y {debian_pkg}` failed:\n"
                               f"{proc.stderr[-1000:]}\nInstall it with {hint}.")
    what = path if path is not None else name
    raise MissingToolError(f"{what} is missing (Debian package {debian_pkg}); install it with {hint}.")
