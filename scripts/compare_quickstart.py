"""Behaviour kept across a change: run the debug quickstart at two git revisions and compare what each wrote.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/compare_quickstart.py 5fbbc53 HEAD

Each revision is checked out with ``git worktree add --detach`` in a temporary folder and the debug quickstart
(``configs/quickstart-debug.yaml``: data, judge, codecs, tokens, LM, eval, report) runs there from an empty
cache of its own (``OMNITOK_HOME``), with this repository's virtual environment and ``PYTHONPATH`` set to the
worktree's ``src``. Then:

* every token shard (``tokens/**``: the ``.tokens`` ids and ``.index.npy`` offsets) must be byte for byte the
  same, and each shard list (``part-*.json``) the same JSON once each run's own folder is written as ``<run>``;
* ``eval.json`` must be the same after leaving out wall-clock fields (``seconds``, ``*_seconds``) and
  writing each run's own folder as ``<run>``.

A revision's run is kept under ``--work`` (default ``runs/compare-quickstart/<commit>``) and reused by a later
call, so the older side runs once. Exit status 0 when both match, 1 when they differ (each difference printed).

When other work landed between two revisions, ``--without C1,C2,...`` isolates some commits instead: the first side
is the second revision with the ``src/`` changes of those commits reverse-applied in its worktree (nothing is
committed), so only their effect is compared:

    OMP_NUM_THREADS=1 .venv/bin/python scripts/compare_quickstart.py HEAD --without a92fe31,3a3701d
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
def is_clock(key: str) -> bool:
    """Wall-clock figures (``seconds``, ``rerank_seconds``, ``train_seconds``): differ from run to run by nature."""
    return key == "seconds" or key.endswith("_seconds")


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout.strip()


def run_revision(commit: str, work: Path, python: str, npm_dir: Path, without: list[str] = ()) -> Path:
    """The debug quickstart at ``commit`` (less the ``src/`` changes of the ``without`` commits) -> its output
    folder ``work/<commit>[-without-...]/qs`` (reused when complete)."""
    base = work / (commit + "".join(f"-without-{c[:10]}" for c in without))
    out = base / "qs"
    if (base / "done").is_file():
        print(f"{commit[:10]}: reusing {out}", flush=True)
        return out
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    tree = Path(tempfile.mkdtemp(prefix=f"omnitok-{commit[:10]}-")) / "tree"
    git("worktree", "add", "--detach", str(tree), commit)
    try:
        for c in reversed(without):  # newest first
            patch = subprocess.run(["git", "-C", str(REPO), "diff", f"{c}^", c, "--", "src/"], check=True,
                                   capture_output=True, text=True).stdout  # unstripped: a context line may be " "
            subprocess.run(["git", "-C", str(tree), "apply", "-R", "--3way", "-"], input=patch, text=True, check=True,
                           capture_output=True)
        env = {**os.environ, "PYTHONPATH": str(tree / "src"), "OMNITOK_HOME": str(base / "home"),
               "OMNITOK_NPM_DIR": str(npm_dir), "OMNITOK_ALLOW_APT": "0",
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        where = subprocess.run([python, "-c", "import omnitok; print(omnitok.__file__)"], env=env, cwd=tree,
                               check=True, capture_output=True, text=True).stdout.strip()
        if not where.startswith(str(tree)):
            raise SystemExit(f"{commit}: python imports omnitok from {where}, not from the worktree {tree}")
        t0 = time.perf_counter()
        print(f"{commit[:10]}: debug quickstart in {tree} -> {out} (log {base / 'log.txt'})", flush=True)
        with open(base / "log.txt", "w") as log:
            rc = subprocess.run([python, "-m", "omnitok.cli", "quickstart", "--preset", "debug", "--out", str(out),
                                 "--no-progress"], env=env, cwd=tree, stdout=log, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            raise SystemExit(f"{commit}: the quickstart exited {rc}; see {base / 'log.txt'}")
        (base / "done").write_text(f"{time.perf_counter() - t0:.0f} s\n")
        print(f"{commit[:10]}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(tree.parent, ignore_errors=True)
    return out


def normalise(x: Any, run_dir: str) -> Any:
    """eval.json without wall-clock fields, with the run's own folder written as ``<run>``."""
    if isinstance(x, dict):
        return {k: normalise(v, run_dir) for k, v in x.items() if not is_clock(k)}
    if isinstance(x, list):
        return [normalise(v, run_dir) for v in x]
    if isinstance(x, str):
        return x.replace(run_dir, "<run>")
    return x


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}: only in the first" for k in a.keys() - b.keys()]
        out += [f"{where}.{k}: only in the second" for k in b.keys() - a.keys()]
        for k in sorted(a.keys() & b.keys()):
            out += differences(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (u, v) in enumerate(zip(a, b)) for d in differences(u, v, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def compare(first: Path, second: Path) -> list[str]:
    """Every difference between two quickstart output folders (token shards, eval.json)."""
    found: list[str] = []
    files = {p.relative_to(first) for p in (first / "tokens").rglob("*") if p.is_file()}
    other = {p.relative_to(second) for p in (second / "tokens").rglob("*") if p.is_file()}
    if not files:
        found.append(f"{first}/tokens: no token shards")
    found += [f"{p}: only in the first" for p in sorted(files - other)]
    found += [f"{p}: only in the second" for p in sorted(other - files)]
    same = sorted(files & other)
    binary = [p for p in same if p.suffix != ".json"]
    found += [f"{p}: bytes differ" for p in binary if not filecmp.cmp(first / p, second / p, shallow=False)]
    for p in (p for p in same if p.suffix == ".json"):  # shard lists: they name the run's vocabulary folder
        a, b = (normalise(json.loads((d / p).read_text()), str(d.parent)) for d in (first, second))
        found += [f"{p}" + d for d in differences(a, b)]
    print(f"token shard files compared byte for byte: {len(binary)}; shard lists compared: {len(same) - len(binary)}")
    ev = [normalise(json.loads((d / "eval.json").read_text()), str(d.parent)) for d in (first, second)]
    found += ["eval.json" + d for d in differences(*ev)]
    print(f"eval.json tasks compared: {', '.join(sorted(ev[0].get('tasks', {})))}")
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("first", help="a git revision (e.g. the commit before a change)")
    p.add_argument("second", nargs="?", default=None, help="another revision (default HEAD)")
    p.add_argument("--without", default="", help="commits whose src/ changes are left out of FIRST, which is "
                   "then compared with itself (give no SECOND)")
    p.add_argument("--work", default=str(REPO / "runs" / "compare-quickstart"), help="where the runs are kept")
    p.add_argument("--python", default=sys.executable, help="the interpreter with omnitok's dependencies")
    p.add_argument("--npm-dir", default=os.environ.get("OMNITOK_TEST_NPM_DIR",
                                                       str(Path.home() / ".cache" / "omnitok-test-npm")),
                   help="npm packages the digits source installs (shared, so they download once)")
    args = p.parse_args(argv)
    work = Path(args.work).resolve()
    without = [git("rev-parse", "--verify", f"{c}^{{commit}}") for c in args.without.split(",") if c]
    if without and args.second:
        raise SystemExit("--without compares FIRST less those commits with FIRST: give no SECOND")
    commits = [git("rev-parse", "--verify", f"{r}^{{commit}}") for r in (args.first, args.second or "HEAD")]
    if without:
        commits[1] = commits[0]
        without = sorted(without, key=lambda c: int(git("rev-list", "--count", c)))  # oldest first
    dirs = [run_revision(commits[0], work, args.python, Path(args.npm_dir), without),
            run_revision(commits[1], work, args.python, Path(args.npm_dir))]
    found = compare(*dirs)
    for line in found:
        print("DIFFERENT", line)
    first = commits[0][:10] + "".join(f" without {c[:10]}" for c in without)
    print(f"{first} vs {commits[1][:10]}: " + ("the same token shards and eval.json" if not found else
                                                          f"{len(found)} difference(s)"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
