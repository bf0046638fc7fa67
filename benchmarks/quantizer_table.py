"""Quantizer table on emoji64-f8 (issue #4): the same encoder, decoder, data, seed and steps, only the
bottleneck changes.

    nice -n 19 .venv/bin/python benchmarks/quantizer_table.py --steps 400
    nice -n 19 .venv/bin/python benchmarks/quantizer_table.py --steps 400 --only fsq,vq-plain --ks 1024

For K in (1024, 16384) it trains ``omnitok train codec --preset emoji64-f8`` with each quantizer below
(``quantizer={...}`` replaces the preset's whole quantizer dict; ``train.steps``, ``train.threads=1``
and ``seed`` are the same for all), then runs ``omnitok eval codec RUN/codec --data emoji --split
test`` (PSNR, SSIM, rFID, usage, perplexity on emoji/test) and, in this process, the codebook usage
of the same codec on emoji/train (more tokens than codes even at K = 16384; see below).

Quantizers (``--only`` takes these slugs, comma separated):

* ``vq-plain``   VQ, D = 8, EMA codebook (the library default), no k-means, no dead-code restart,
                 straight-through estimator. Codebook initialised N(0, 1).
* ``vq-improved`` the same VQ with k-means init (10 iterations, first batch), dead-code restart
                 (threshold 0.03 of uniform usage, the library default) and the rotation trick.
* ``rvq``        residual VQ, 2 levels of K/2 codes each (D = 8, same settings as vq-improved), so
                 the total number of stored codes is K, as in the other rows. Note the rate: a
                 position carries 2 x log2(K/2) bits (18 at K = 1024, 26 at K = 16384), more than
                 the log2(K) of every other row, and eval's usage pools both levels into one
                 histogram of K/2 bins (``--rvq-per-level sqrt`` instead gives 2 levels of sqrt(K):
                 the same log2(K) bits per position, but only 2 sqrt(K) stored codes).
* ``fsq``        FSQ, levels [8, 5, 5, 5] (1000 codes) for K = 1024 and [8, 8, 8, 6, 5] (15360) for
                 K = 16384, as in the FSQ paper (arXiv 2309.15505, Table 1); no auxiliary loss.
* ``lfq``        LFQ, 10 / 14 bits (D = bits), MAGVIT-v2 entropy loss weight 0.1 as in the preset;
                 the codebook entropy is exact over all codes at 10 bits (group 10) and exact within
                 2 groups of 7 bits at 14 (an upper bound that ignores cross-group correlation).
* ``bsq``        BSQ, 10 / 14 bits (D = bits), entropy weight 0.1, the paper's per-bit factorised
                 codebook entropy (group size 1, the library default).

Usage: emoji/test has 358 images x 64 positions = 22,912 tokens, so at K = 16384 a perfectly uniform
quantizer would be expected to touch only 1 - exp(-22912/16384) ~ 75% of the codes. The row's
``usage_ceiling_test`` is that expectation; ``usage_train`` (emoji/train, 6,396 x 64 = 409,344
tokens) is the figure to read for the FSQ paper's claim at K = 16384.

Each run lives in ``runs/qtable/steps{S}/{slug}-K{K}/`` (git-ignored): the training folder, ``eval/``
(eval's metrics.json and recon grid) and ``row.json``. A run whose ``row.json`` exists is skipped
(resumable); a run whose training finished but has no eval is only evaluated; a run with
checkpoints but no final codec is resumed with ``--resume``. After each run every row for this
step count is written to ``--out-json`` (default benchmarks/results/quantizer_table_cpu.json) and a
markdown table is printed.

CPU: run it under ``nice``; every child gets ``train.threads=1`` and OMP/MKL_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OMNITOK = str(Path(sys.executable).with_name("omnitok"))
PRESET = "emoji64-f8"
KS = (1024, 16384)
SLUGS = ("vq-plain", "vq-improved", "rvq", "fsq", "lfq", "bsq")
FSQ_LEVELS = {1024: [8, 5, 5, 5], 16384: [8, 8, 8, 6, 5]}
VQ_DIM = 8


def quantizer_config(slug: str, k: int, rvq_per_level: str = "half") -> tuple[str, dict[str, Any], int]:
    """(label, quantizer dict for the preset, implicit codebook size) for one row."""
    bits = int(round(math.log2(k)))
    if slug == "vq-plain":
        q = {"name": "vq", "dim": VQ_DIM, "codebook_size": k, "kmeans_init": False, "restart_threshold": 0.0,
             "gradient_estimator": "ste"}
        return "VQ plain (EMA, no k-means/restart, STE)", q, k
    if slug == "vq-improved":
        q = {"name": "vq", "dim": VQ_DIM, "codebook_size": k, "kmeans_init": True, "kmeans_iters": 10,
             "restart_threshold": 0.03, "gradient_estimator": "rotation"}
        return "VQ + k-means + restart + rotation", q, k
    if slug == "rvq":
        per = k // 2 if rvq_per_level == "half" else int(round(math.sqrt(k)))
        q = {"name": "rvq", "dim": VQ_DIM, "codebook_size": per, "num_quantizers": 2, "kmeans_init": True,
             "kmeans_iters": 10, "restart_threshold": 0.03, "gradient_estimator": "rotation"}
        return f"RVQ 2 x {per}", q, per * per
    if slug == "fsq":
        levels = FSQ_LEVELS[k]
        return f"FSQ {levels}", {"name": "fsq", "levels": levels}, math.prod(levels)
    if slug == "lfq":
        q = {"name": "lfq", "dim": bits, "bits": bits, "entropy_weight": 0.1,
             "entropy_group_size": bits if bits <= 10 else 7}
        return f"LFQ {bits} bits", q, 1 << bits
    if slug == "bsq":
        q = {"name": "bsq", "dim": bits, "bits": bits, "entropy_weight": 0.1, "entropy_group_size": 1}
        return f"BSQ {bits} bits", q, 1 << bits
    raise ValueError(f"unknown quantizer slug {slug!r}; expected one of {SLUGS}")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", TQDM_DISABLE="1")
    return env


def run_cmd(cmd: list[str], log) -> tuple[float, float]:
    """Run ``cmd`` (stdout/stderr to ``log``); return (wall seconds, CPU seconds); raise on failure.

    CPU seconds (user + system of the child) are the figure to compare on a shared machine, where a
    niced child can wait for a core for a long time and wall seconds mostly measure the other jobs.
    """
    log.write(f"$ {shlex.join(cmd)}\n")
    log.flush()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {shlex.join(cmd)}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def train_usage(codec_dir: Path, split: str = "train") -> dict[str, Any]:
    """Codebook usage / perplexity of the codec's codes on a whole split (encoder + quantizer only)."""
    import torch

    from omnitok.codecs.base import load_codec
    from omnitok.eval.codec_data import load_images, to_float
    from omnitok.eval.image_codec import codebook_stats
    from omnitok.io.image import to_channels

    torch.set_num_threads(1)
    codec = load_codec(codec_dir).eval()
    x = load_images("emoji", split, 64, progress=False)
    codes = []
    with torch.no_grad():
        for i in range(0, len(x), 128):
            xb = to_channels(to_float(x[i : i + 128]), codec.config["in_channels"])
            codes.append(codec.encode(xb))
    c = torch.cat(codes)
    out = codebook_stats(c, codec.codebook_size)
    out["tokens"] = int(c.numel())
    if c.shape[-1] > 1:  # per-level usage (RVQ)
        out["per_level_usage"] = [codebook_stats(c[..., i : i + 1], codec.codebook_size)["usage"]
                                  for i in range(c.shape[-1])]
    return out


def do_run(slug: str, k: int, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    label, qcfg, implicit_k = quantizer_config(slug, k, args.rvq_per_level)
    run_dir = base / f"{slug}-K{k}"
    row_path = run_dir / "row.json"
    if row_path.exists():
        print(f"[skip] {slug} K={k}: {row_path} exists", flush=True)
        return json.loads(row_path.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    rel = run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir
    train_cmd = [OMNITOK, "train", "codec", "--preset", PRESET, "--out", str(rel),
                 "quantizer=" + json.dumps(qcfg, separators=(",", ":")), f"train.steps={args.steps}",
                 "train.threads=1", f"seed={args.seed}", "train.progress=false",
                 f"train.save_every={args.steps}", f"train.sample_every={args.steps}"]
    eval_dir = rel / "eval"
    eval_cmd = [OMNITOK, "eval", "codec", str(rel / "codec"), "--data", "emoji", "--split", "test",
                "--out", str(eval_dir)]
    train_wall = eval_wall = train_cpu = eval_cpu = None
    with (run_dir / "commands.log").open("a") as log:
        if not (run_dir / "codec" / "config.json").exists():
            cmd = train_cmd + (["--resume"] if list((run_dir / "checkpoints").glob("step-*/train_state.pt")) else [])
            print(f"[train] {slug} K={k}: {shlex.join(cmd)}", flush=True)
            train_wall, train_cpu = run_cmd(cmd, log)
        if not (run_dir / "eval" / "metrics.json").exists():
            print(f"[eval]  {slug} K={k}", flush=True)
            eval_wall, eval_cpu = run_cmd(eval_cmd, log)
    m = json.loads((run_dir / "eval" / "metrics.json").read_text())
    t0 = time.perf_counter()
    usage_tr = train_usage(run_dir / "codec")
    usage_train_seconds = time.perf_counter() - t0
    codec_cfg = json.loads((run_dir / "codec" / "config.json").read_text())
    final = (codec_cfg.get("train") or {}).get("final") or {}
    tokens_test = m["images"] * m["tokens_per_image"]
    row = {
        "slug": slug,
        "quantizer": label,
        "quantizer_config": qcfg,
        "K": k,
        "codebook_size_eval": m["codebook_size"],
        "implicit_codes": implicit_k,
        "num_codebooks": m["num_codebooks"],
        "bits_per_image": m["bits_per_image"],
        "steps": args.steps,
        "seed": args.seed,
        "train_seconds": m.get("train", {}).get("seconds"),
        "train_wall_seconds": train_wall,
        "train_cpu_seconds": train_cpu,
        "eval_seconds": m.get("eval_seconds"),
        "eval_cpu_seconds": eval_cpu,
        "eval_wall_seconds": eval_wall,
        "psnr": m["psnr"],
        "ssim": m["ssim"],
        "rfid": m.get("rfid"),
        "fid_images": m.get("fid_images"),
        "usage": m["usage"],
        "perplexity": m["perplexity"],
        "dead_codes": m["dead_codes"],
        "tokens_test": tokens_test,
        "usage_ceiling_test": 1 - math.exp(-tokens_test / m["codebook_size"]),
        "usage_train": usage_tr["usage"],
        "perplexity_train": usage_tr["perplexity"],
        "usage_train_detail": usage_tr,
        "usage_train_seconds": usage_train_seconds,
        "train_final": final,
        "run_dir": str(rel),
        "commands": {"train": shlex.join(train_cmd), "eval": shlex.join(eval_cmd),
                     "env": "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1, under the caller's nice"},
    }
    tmp = row_path.with_name(f"row.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(row, indent=2) + "\n")
    tmp.replace(row_path)  # atomic: a concurrent invocation never reads half a row
    return row


def all_rows(base: Path) -> list[dict[str, Any]]:
    """Every finished row under ``base`` (this step count and seed), ordered by K then SLUGS."""
    rows = [json.loads(p.read_text()) for p in base.glob("*-K*/row.json")]
    return sorted(rows, key=lambda r: (r["K"], SLUGS.index(r["slug"])))


def fmt(v: Any, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| K | quantizer | steps | train s | PSNR | SSIM | rFID | usage (test) | ppl (test) "
            "| usage (train) | ppl (train) |")
    lines = [head, "|" + "|".join(["---"] * 11) + "|"]
    for r in rows:
        lines.append(
            f"| {r['K']} | {r['quantizer']} | {r['steps']} | {fmt(r['train_seconds'], '.0f')} "
            f"| {r['psnr']:.2f} | {r['ssim']:.4f} | {fmt(r['rfid'], '.2f')} | {100 * r['usage']:.1f}% "
            f"| {r['perplexity']:.1f} | {100 * r['usage_train']:.1f}% | {r['perplexity_train']:.1f} |"
        )
    return "\n".join(lines)


def write_results(rows: list[dict[str, Any]], args: argparse.Namespace, started: float) -> None:
    import torch

    out = {
        "benchmark": "quantizer_table",
        "issue": 4,
        "preset": PRESET,
        "data": {"train": "emoji/train", "eval": "emoji/test"},
        "steps": args.steps,
        "seed": args.seed,
        "machine": {"platform": platform.platform(), "cpu_threads": os.cpu_count(), "device": "cpu",
                    "torch_threads_per_child": 1, "nice": os.nice(0)},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "command": shlex.join([sys.executable, *sys.argv]),
        "wall_seconds_this_invocation": time.perf_counter() - started,
        "notes": [
            "Same encoder/decoder (emoji64-f8 model), data, seed, batch, lr and steps for every row; "
            "only the preset's quantizer dict is replaced.",
            "VQ and RVQ use D = 8 and EMA codebooks; FSQ D = len(levels); LFQ/BSQ D = bits.",
            "RVQ: 2 levels of K/2 codes (total stored codes = K); bits per position 2*log2(K/2). "
            "Eval usage for RVQ pools both levels into one histogram of K/2 bins.",
            "usage_ceiling_test = 1 - exp(-tokens/K): expected usage of a uniform quantizer on emoji/test "
            "(22,912 tokens); usage_train is measured on emoji/train (409,344 tokens).",
            "train_seconds is the trainer's own wall clock (one thread, nice 19, on a 2-core machine "
            "shared with other jobs), so it includes time spent waiting for a core; train_cpu_seconds "
            "(user + system CPU of the training process, when this script ran the training) does not.",
        ],
        "runs": rows,
    }
    path = Path(args.out_json)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: invocations may run side by side
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=400, help="training steps per run (default 400)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default=None, help=f"comma-separated slugs out of {','.join(SLUGS)}")
    p.add_argument("--ks", default=",".join(map(str, KS)), help="comma-separated K values (1024,16384)")
    p.add_argument("--rvq-per-level", choices=("half", "sqrt"), default="half",
                   help="RVQ codes per level: K/2 (default) or sqrt(K)")
    p.add_argument("--runs-dir", default=str(ROOT / "runs" / "qtable"))
    p.add_argument("--out-json", default=str(ROOT / "benchmarks" / "results" / "quantizer_table_cpu.json"))
    args = p.parse_args()
    started = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    slugs = SLUGS if not args.only else tuple(s.strip() for s in args.only.split(",") if s.strip())
    for s in slugs:
        if s not in SLUGS:
            p.error(f"--only: unknown slug {s!r}; expected some of {SLUGS}")
    ks = tuple(int(v) for v in args.ks.split(","))
    for k in ks:
        if k not in FSQ_LEVELS:
            p.error(f"--ks: K must be among {sorted(FSQ_LEVELS)}, got {k}")
    suffix = "" if args.rvq_per_level == "half" else "-rvqsqrt"
    base = Path(args.runs_dir) / f"steps{args.steps}-seed{args.seed}{suffix}"
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for k in ks:
        for slug in slugs:
            try:
                rows.append(do_run(slug, k, args, base))
            except Exception as e:  # keep going; a failed run is retried next time
                failures.append(f"{slug} K={k}: {e}")
                print(f"[fail] {slug} K={k}: {e}", flush=True)
            table = all_rows(base)
            write_results(table, args, started)
            print(markdown(table), flush=True)
    print(f"\nwrote {args.out_json}")
    if failures:
        print("failures:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
