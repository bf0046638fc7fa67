"""The Python half of scripts/gpu_check.sh: wheels for a machine without a registry, the environment record,
and the summary. Subcommands:

    prepare --dest .gpu-wheels [--python-version 3.12]   (where a registry is reachable)
        Resolve, for the target Python on manylinux x86_64, what omnitok needs besides torch: its core
        dependencies, the bench peers (``[bench]`` extra) and pytest, pinned to this interpreter's versions
        where it has them. torch and what only torch needs are left out (the GPU machine has them). Downloads
        the wheels with ``pip download --no-deps`` and writes ``manifest.json`` (name, version, file, sha256).
    install --wheels .gpu-wheels --site .gpu-site        (on the GPU machine; standard library only)
        Lay ``--site`` anew with each wheel of the manifest whose distribution this interpreter lacks (a wheel is a
        zip laid out as site-packages), after checking its sha256. What the interpreter already has is kept.
    env --out FILE --device cuda|cpu
        GPU names, driver, torch / CUDA / cuDNN versions, Python, CPU, peers present (JSON).
    finish --out DIR
        Stamp the environment into every result JSON of DIR, write ``summary.json`` (stages, test counts, the
        headline figures against the targets) and print it as a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
EXTRA_ROOTS = ("pytest",)  # the GPU tests' runner
SKIP = "torch"  # present on the GPU machine; what only it needs (triton, nvidia-*, sympy ...) is not followed


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ----- prepare ----------------------------------------------------------------------------------------
def roots_from_pyproject(pyproject: Path) -> list[str]:
    """Core dependencies (less torch), the ``bench`` extra and pytest, as requirement strings."""
    import tomllib
    from packaging.requirements import Requirement

    proj = tomllib.loads(pyproject.read_text())["project"]
    reqs = [*proj["dependencies"], *proj["optional-dependencies"].get("bench", []), *EXTRA_ROOTS]
    out: dict[str, str] = {}
    for r in map(Requirement, reqs):
        if _norm(r.name) != SKIP:
            out.setdefault(_norm(r.name), str(r))
    return list(out.values())


def pin_to_local(reqs: list[str]) -> list[str]:
    """``name>=x`` -> ``name==<this interpreter's version>`` where installed and allowed: the GPU machine runs the
    versions the CPU tests ran."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    out = []
    for s in reqs:
        r = Requirement(s)
        try:
            v = version(r.name)
        except PackageNotFoundError:
            out.append(s)
            continue
        out.append(f"{r.name}=={v}" if r.specifier.contains(v, prereleases=True) else s)
    return out


def _target_env(python_version: str) -> dict[str, str]:
    major, minor = python_version.split(".")[:2]
    return {"python_version": f"{major}.{minor}", "python_full_version": f"{major}.{minor}.0",
            "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def closure(report: dict[str, Any], roots: list[str], python_version: str) -> list[dict[str, Any]]:
    """The report's packages that ``roots`` need (markers evaluated for the target), less torch and everything
    torch itself needs: pip installed those with torch on the GPU machine (sympy, filelock, triton ...)."""
    from packaging.requirements import Requirement

    env = _target_env(python_version)
    by_name = {_norm(i["metadata"]["name"]): i for i in report["install"]}

    def reach(start: list[str], stop: set[str], strict: bool) -> dict[str, dict[str, Any]]:
        todo, seen = list(start), {}
        while todo:
            name = todo.pop()
            if name in seen or name in stop:
                continue
            if name not in by_name:  # torch's requirements as pip saw them may name what it left unresolved
                if not strict:
                    continue
                raise SystemExit(f"prepare: {name} is required but pip's resolution does not contain it")
            seen[name] = by_name[name]
            for s in by_name[name]["metadata"].get("requires_dist", []):
                r = Requirement(s)
                if r.marker is None or r.marker.evaluate(env):
                    todo.append(_norm(r.name))
        return seen

    with_torch = set(reach([SKIP], set(), strict=False)) if SKIP in by_name else set()
    ours = reach([_norm(Requirement(r).name) for r in roots], with_torch, strict=True)
    return sorted(ours.values(), key=lambda i: _norm(i["metadata"]["name"]))


def _pip_target(python_version: str) -> list[str]:
    digits = "".join(python_version.split(".")[:2])
    args = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp", "--abi",
            f"cp{digits}"]
    for p in PLATFORMS:
        args += ["--platform", p]
    return args


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def prepare(dest: Path, python_version: str, roots: list[str] | None = None) -> dict[str, Any]:
    roots = pin_to_local(roots or roots_from_pyproject(ROOT / "pyproject.toml"))
    print(f"prepare: wheels for CPython {python_version} manylinux x86_64, roots {roots}", flush=True)
    target = _pip_target(python_version)
    with tempfile.TemporaryDirectory() as tmp:
        rep = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                        "--report", str(rep), "--target", str(Path(tmp) / "t"), *target, *roots], check=True)
        report = json.loads(rep.read_text())
    items = closure(report, roots, python_version)
    pins = [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items]
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(dest), *target,
                    *pins], check=True)
    wheels = []
    files = {p.name: p for p in dest.glob("*.whl")}
    for item in items:
        name, ver = item["metadata"]["name"], item["metadata"]["version"]
        stem = re.sub(r"[-_.]+", "_", name).lower()
        match = [f for f in files if f.lower().startswith(f"{stem}-{ver}-".lower())]
        if len(match) != 1:
            raise SystemExit(f"prepare: expected one wheel for {name}=={ver} in {dest}, found {match}")
        path = files.pop(match[0])
        wheels.append({"name": name, "version": ver, "file": path.name, "sha256": _sha256(path),
                       "bytes": path.stat().st_size})
    for stale in files.values():  # a wheel of an earlier prepare that this one no longer needs
        stale.unlink()
    manifest = {"python_version": python_version, "platforms": list(PLATFORMS), "roots": roots,
                "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "left_out": SKIP, "wheels": wheels}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(w["bytes"] for w in wheels)
    print(f"prepare: {len(wheels)} wheels, {total / 2**20:.1f} MiB in {dest}")
    return manifest


# ----- install ----------------------------------------------------------------------------------------
def installed_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def unpack_wheel(wheel: Path, site: Path) -> None:
    """A wheel is a zip laid out as site-packages; ``<name>.data/{purelib,platlib}`` go to the top."""
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
        data_dirs = {n.split("/", 1)[0] for n in z.namelist() if n.split("/", 1)[0].endswith(".data")}
    for d in data_dirs:
        for sub in ("purelib", "platlib"):
            src = site / d / sub
            if src.is_dir():
                for item in src.iterdir():
                    target = site / item.name
                    if target.exists():
                        shutil.rmtree(target) if target.is_dir() else target.unlink()
                    shutil.move(str(item), target)
        shutil.rmtree(site / d, ignore_errors=True)


def install(wheels_dir: Path, site: Path) -> list[dict[str, str]]:
    """Unpack the manifest's wheels this interpreter lacks into ``site``; returns one decision per wheel."""
    manifest = json.loads((wheels_dir / "manifest.json").read_text())
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    digits = here.replace(".", "")
    shutil.rmtree(site, ignore_errors=True)  # laid anew each time: no version of an earlier manifest lingers
    site.mkdir(parents=True)
    decisions = []
    for w in manifest["wheels"]:
        have = installed_version(w["name"])
        if have is not None:
            decisions.append({"name": w["name"], "action": f"kept this interpreter's {have}"})
            continue
        path = wheels_dir / w["file"]
        tag = w["file"].rsplit("-", 3)[-3]  # python tag: py3, cp312, cp310 (abi3) ...
        if tag.startswith("cp") and "abi3" not in w["file"] and tag != f"cp{digits}":
            raise SystemExit(f"install: {w['file']} is built for {tag}, this is Python {here}; run "
                             f"scripts/gpu_check.sh --prepare --python-version {here} where a registry is reachable")
        if _sha256(path) != w["sha256"]:
            raise SystemExit(f"install: {path} does not match the sha256 in manifest.json; prepare again")
        unpack_wheel(path, site)
        decisions.append({"name": w["name"], "action": f"unpacked {w['version']}"})
    return decisions


# ----- env / finish -----------------------------------------------------------------------------------
def _run(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str) -> dict[str, Any]:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() \
        else []
    driver = None
    smi = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    if smi:
        driver = smi.splitlines()[0].strip()
    elif Path("/proc/driver/nvidia/version").is_file():
        m = re.search(r"Kernel Module\s+([\d.]+)", Path("/proc/driver/nvidia/version").read_text())
        driver = m.group(1) if m else None
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = m.group(1).strip() if m else cpu
    import omnitok

    peers = {name: installed_version(name) for name in ("transformers", "vector-quantize-pytorch")}
    return {
        "device": device,
        "gpu": gpus[0] if gpus else None,
        "gpus": gpus,
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if gpus else None,
        "driver": driver,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "bf16": bool(gpus) and torch.cuda.is_bf16_supported(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "omnitok": str(Path(omnitok.__file__).parent),
        "git_commit": _run(["git", "-C", str(ROOT), "rev-parse", "HEAD"]),
        "peers": peers,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


TARGETS = "generate >= 20x HF at batch 1 and >= 10x at batch 64; train_lm MFU >= 45% for L"


def headline(out: Path) -> list[dict[str, Any]]:
    """The figures the targets are about, from whatever result files exist."""
    rows: list[dict[str, Any]] = []
    for f in sorted(out.glob("generate_*.json")):
        r = json.loads(f.read_text())
        for rec in r.get("results", []):
            if rec["decoder"] in ("ours", "ours_jacobi") and "speedup_vs_hf" in rec:
                want = None  # the targets are for the B and L presets on a GPU, not the dry run's debug model
                if r["model"]["preset"] in ("B", "L") and r["device"].startswith("cuda"):
                    want = 20.0 if rec["batch"] == 1 else 10.0 if rec["batch"] >= 64 else None
                rows.append({"what": f"generate {r['model']['preset']} {rec['decoder']} batch {rec['batch']}",
                             "figure": f"{rec['speedup_vs_hf']:.1f}x HF ({rec['tokens_per_s']:.0f} tok/s)",
                             "target": f">= {want:g}x" if want else "",
                             "met": None if want is None else rec["speedup_vs_hf"] >= want})
    for f in sorted(out.glob("train_lm_*.json")):
        r = json.loads(f.read_text())
        for run in r.get("runs", []):
            o = run["omnitok"]
            mfu = o.get("mfu")
            hf = f", {run['speedup_vs_hf']:.2f}x HF" if "speedup_vs_hf" in run else ""
            rows.append({"what": f"train_lm {run['preset']} {run['batch']}x{run['seq_len']}",
                         "figure": (f"MFU {mfu:.1%}, " if mfu is not None else "") + f"{o['tokens_per_s']:.0f} tok/s{hf}",
                         "target": ">= 45% MFU" if run["preset"] == "L" and mfu is not None else "",
                         "met": (mfu >= 0.45) if run["preset"] == "L" and mfu is not None else None})
    for f in sorted(out.glob("quantizers*.json")):
        for t in json.loads(f.read_text()).get("targets", []):
            rows.append({"what": "quantizers", "figure": t, "target": "", "met": None})
    return rows


def finish(out: Path) -> dict[str, Any]:
    env = json.loads((out / "env.json").read_text()) if (out / "env.json").is_file() else {}
    stages = [json.loads(ln) for ln in (out / "stages.jsonl").read_text().splitlines() if ln.strip()] \
        if (out / "stages.jsonl").is_file() else []
    for f in sorted(out.glob("*.json")):
        if f.name in ("env.json", "summary.json"):
            continue
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError:
            continue  # a file a killed stage left half-written: its log says why
        if isinstance(data, dict):
            data["environment"] = env
            f.write_text(json.dumps(data, indent=1) + "\n")
    tests = json.loads((out / "gpu_tests.json").read_text()) if (out / "gpu_tests.json").is_file() else {}
    summary = {"environment": env, "stages": stages, "tests": tests.get("counts"), "targets": TARGETS,
               "headline": headline(out), "ok": bool(stages) and all(s["status"] == "ok" for s in stages)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\n{env.get('gpu') or env.get('cpu')} | driver {env.get('driver')} | torch {env.get('torch')} "
          f"(CUDA {env.get('cuda')}) | Python {env.get('python')} | peers {env.get('peers')}")
    print("\n| stage | status | seconds | cap |\n|---|---|---|---|")
    for s in stages:
        print(f"| {s['stage']} | {s['status']} | {s['seconds']:.0f} | {s['cap_s']} |")
    if tests:
        print(f"\ntests: {tests.get('counts')}")
        for name, t in tests.get("tests", {}).items():
            if t["outcome"] not in ("passed", "skipped"):
                print(f"  {t['outcome']}: {name}\n    " + t.get("message", "").replace("\n", "\n    "))
    if summary["headline"]:
        print("\n| measured | figure | target | met |\n|---|---|---|---|")
        for h in summary["headline"]:
            met = "" if h["met"] is None else ("yes" if h["met"] else "NO")
            print(f"| {h['what']} | {h['figure']} | {h['target']} | {met} |")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--dest", type=Path, default=ROOT / ".gpu-wheels")
    p.add_argument("--python-version", default="3.12")
    p = sub.add_parser("install")
    p.add_argument("--wheels", type=Path, default=ROOT / ".gpu-wheels")
    p.add_argument("--site", type=Path, default=ROOT / ".gpu-site")
    p = sub.add_parser("env")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p = sub.add_parser("finish")
    p.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        prepare(args.dest, args.python_version)
    elif args.cmd == "install":
        for d in install(args.wheels, args.site):
            print(f"  {d['name']}: {d['action']}")
    elif args.cmd == "env":
        env = environment(args.device)
        args.out.write_text(json.dumps(env, indent=1) + "\n")
        if args.device == "cuda" and not env["gpus"]:
            print("no CUDA device visible to torch (torch.cuda.is_available() is False): for the CPU dry run use "
                  "scripts/gpu_check.sh --device cpu --tiny", file=sys.stderr)
            return 2
        print(json.dumps(env))
    else:
        return 0 if finish(args.out)["ok"] else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
