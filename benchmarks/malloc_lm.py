"""LM training on the CPU with glibc's default malloc against omnitok's settings (omnitok/_malloc.py).

    .venv/bin/python benchmarks/malloc_lm.py [--data TOKENS] [--steps 60] [--repeats 2]

Each run is a fresh `omnitok train lm --preset quickstart` process (default: the quickstart's token shards when
`quickstart/lm/train_config.json` exists, else synthetic data), alternating OMNITOK_MALLOC=default and the
tuned setting; same seed, so the losses must match. Reports tokens/s (mean of the logged windows after the
first), user / system CPU seconds and peak RSS from the child's rusage; writes benchmarks/results/malloc_lm.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def default_data() -> str:
    cfg = ROOT / "quickstart" / "lm" / "train_config.json"
    if cfg.is_file():
        return str(json.loads(cfg.read_text())["data"])
    return "synthetic:vocab=6000"


def one_run(data: str, steps: int, mode: str, out: Path) -> dict:
    env = {**os.environ, "OMNITOK_MALLOC": "default" if mode == "default" else "tuned"}
    cmd = [sys.executable, "-m", "omnitok.cli", "train", "lm", "--preset", "quickstart", "--data", data,
           "--out", str(out), "--no-progress", "--device", "cpu", f"max_steps={steps}", "eval_every=0",
           "save_every=0", "log_every=20"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read() if proc.stderr else ""
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({status}):\n{err[-2000:]}")
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    return {"mode": mode, "tokens_per_s": statistics.mean(r["tokens_per_s"] for r in train[1:] or train),
            "user_s": usage.ru_utime, "sys_s": usage.ru_stime, "max_rss_mib": usage.ru_maxrss / 1024,
            "final_loss": train[-1]["loss"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    data = args.data or default_data()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for mode in ("default", "tuned"):
                res = one_run(data, args.steps, mode, Path(tmp) / f"{mode}-{r}")
                print(json.dumps(res), flush=True)
                runs.append(res)
    summary = {}
    for mode in ("default", "tuned"):
        rs = [r for r in runs if r["mode"] == mode]
        summary[mode] = {k: statistics.median(r[k] for r in rs)
                         for k in ("tokens_per_s", "user_s", "sys_s", "max_rss_mib")}
    same_loss = len({r["final_loss"] for r in runs}) == 1
    result = {"data": data, "steps": args.steps, "repeats": args.repeats, "runs": runs, "median": summary,
              "speedup": summary["tuned"]["tokens_per_s"] / summary["default"]["tokens_per_s"],
              "same_final_loss": same_loss, "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "malloc_lm.json").write_text(json.dumps(result, indent=2) + "\n")
    print("| malloc | tokens/s | user s | system s | peak RSS MiB |\n|---|---:|---:|---:|---:|")
    for mode, s in summary.items():
        print(f"| {mode} | {s['tokens_per_s']:.0f} | {s['user_s']:.1f} | {s['sys_s']:.1f} | {s['max_rss_mib']:.0f} |")
    print(f"speedup {result['speedup']:.2f}x; same final loss: {same_loss}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
