"""Digits text -> image, diffusion beside next-token decoding, in ONE run on one machine.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diffusion_vs_next_token.py \
        --diffusion runs/diffusion/digits-latent --lm runs/quickstart-ref/lm --vocab runs/quickstart-ref/vocab \
        [--per-digit 10] [--ddim 5,10,20,50,100] [--ddpm 1000] [--ddpm-prompts 50] [--batch-size 25]

Prompts: "the digit k" for k = 0..9, ``--per-digit`` each, ordered k = i mod 10 so that every batch holds every
digit. Rows, all on the same prompts:

* the latent diffusion model (:class:`omnitok.generation.diffusion.DiffusionPipeline`, as ``omnitok eval diffusion``
  and ``omnitok generate --method diffusion`` run it) with DDIM (eta 0) at each of ``--ddim`` steps and DDPM
  ancestral at ``--ddpm`` steps (only the first ``--ddpm-prompts`` prompts: it is slow), guidance ``--cfg``;
* the next-token LM: :func:`omnitok.generation.generate` (the path of ``omnitok eval model`` and ``omnitok
  generate``) with nothing overridden, so the model's recorded sampling defaults (its ``generation_config.json``:
  grid, CFG, top-k) apply.

Timing alternates: round b generates batch b with every row in turn (the order rotates each round), so load
changes on a shared machine fall on all rows alike; seconds per image = median over batches of batch wall time
(sampling + decoding to pixels) / batch size, after one untimed warm-up call per row, with ``torch.set_num_threads(--threads)``. Seeds: batch b of every
row uses seed ``--seed + b``. Judges: the digit CNN of ``omnitok eval`` (:mod:`omnitok.eval.judges.digit_classifier`)
and its Inception FID (:mod:`omnitok.eval.fid`) against the same held-out test digits (balanced, as many as the
prompts) for every row. Training wall time of each model comes from its own logs (diffusion: ``log.jsonl``; LM:
the quickstart's ``timings.json`` beside the LM folder, else its ``metrics.jsonl``). Writes JSON (``--out``,
default ``benchmarks/results/diffusion_vs_next_token_cpu.json``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _diffusion_train_info(run: Path) -> dict[str, Any]:
    """Steps and wall seconds of a diffusion run folder (its log.jsonl), parameters of its final model."""
    info: dict[str, Any] = {"folder": str(run)}
    log = run / "log.jsonl"
    if log.is_file():
        last = [json.loads(line) for line in log.read_text().splitlines() if line.strip()][-1]
        info |= {"steps": int(last["step"]), "train_seconds": round(float(last["seconds"]), 1)}
    return info


def _lm_train_info(lm: Path) -> dict[str, Any]:
    """Steps and wall seconds of an LM folder: the quickstart's timings.json (stage "lm") when it is a quickstart
    run, the last line of metrics.jsonl for the steps."""
    info: dict[str, Any] = {"folder": str(lm)}
    metrics = lm / "metrics.jsonl"
    if metrics.is_file():
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        steps = [r["step"] for r in rows if "step" in r]
        if steps:
            info["steps"] = int(max(steps))
    timings = lm.parent / "timings.json"
    if timings.is_file():
        t = json.loads(timings.read_text()).get("lm") or {}
        if "wall_s" in t:
            info |= {
                "train_seconds": float(t["wall_s"]),
                "train_cpu_seconds": t.get("cpu_s"),
                "trained": t.get("finished"),
            }
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--diffusion", required=True, help="latent diffusion run folder (or its final/)")
    p.add_argument("--lm", required=True, help="next-token LM folder (its final/ is loaded)")
    p.add_argument("--vocab", default=None, help="the LM's vocabulary (default: recorded by the model)")
    p.add_argument("--per-digit", type=int, default=10)
    p.add_argument("--ddim", default="5,10,20,50,100", help="DDIM step counts")
    p.add_argument("--ddpm", type=int, default=1000, help="DDPM ancestral steps (0: none)")
    p.add_argument("--ddpm-prompts", type=int, default=50, help="DDPM runs only the first N prompts")
    p.add_argument("--cfg", type=float, default=3.0, help="diffusion guidance scale")
    p.add_argument("--batch-size", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-root", default=None)
    p.add_argument("--no-fid", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from tqdm import tqdm

    from omnitok.eval.diffusion import load_pipeline, real_digits
    from omnitok.eval.judges.digit_classifier import load_or_train
    from omnitok.eval.model import load_model_and_vocab
    from omnitok.generation import generate
    from omnitok.generation.diffusion import find_diffusion_folder
    from omnitok.vocab import Text

    n = 10 * args.per_digit
    prompts = [f"the digit {WORDS[i % 10]}" for i in range(n)]
    labels = torch.tensor([i % 10 for i in range(n)])
    batches = [list(range(i, min(i + args.batch_size, n))) for i in range(0, n, args.batch_size)]
    n_ddpm = min(n, args.ddpm_prompts) if args.ddpm else 0
    if n_ddpm % args.batch_size:
        raise ValueError(
            f"--ddpm-prompts {args.ddpm_prompts}: must be a multiple of --batch-size {args.batch_size}"
        )

    folder = find_diffusion_folder(args.diffusion)
    pipe = load_pipeline(folder)
    lm, vocab, vocab_dir = load_model_and_vocab(
        str(Path(args.lm) / "final") if (Path(args.lm) / "final").is_dir() else args.lm, args.vocab, "cpu"
    )
    clf = load_or_train(None, data_root=args.data_root)

    rows: dict[str, dict[str, Any]] = {}
    for s in [int(v) for v in args.ddim.split(",") if v.strip()]:
        rows[f"ddim-{s}"] = {"method": "diffusion", "sampler": "ddim", "steps": s, "prompts": n}
    if args.ddpm:
        rows[f"ddpm-{args.ddpm}"] = {
            "method": "diffusion",
            "sampler": "ddpm",
            "steps": args.ddpm,
            "prompts": n_ddpm,
        }
    rows["next-token"] = {"method": "next-token", "prompts": n}
    images: dict[str, list[torch.Tensor]] = {k: [] for k in rows}
    per_image: dict[str, list[float]] = {k: [] for k in rows}
    forwards: dict[str, int] = {}

    def one(key: str, idx: list[int], b: int) -> None:
        r = rows[key]
        chunk = [prompts[i] for i in idx]
        t0 = time.perf_counter()
        if r["method"] == "diffusion":
            x, _ = pipe(
                chunk,
                sampler=r["sampler"],
                steps=r["steps"],
                cfg_scale=args.cfg,
                seed=args.seed + b,
                batch_size=len(chunk),
            )
            forwards[key] = r["steps"]
        else:
            out = generate(lm, vocab, [[Text(c)] for c in chunk], "image", seed=args.seed + b)
            x = torch.stack([seg.data for seg in out.outputs])
            forwards[key] = int(out.stats.get("forwards", 0)) if getattr(out, "stats", None) else 0
        per_image[key].append((time.perf_counter() - t0) / len(chunk))
        images[key].append(x.cpu())

    keys = list(rows)
    for key in keys:  # warm-up, untimed: one prompt per row (first calls pay for allocation and lazy set-up)
        r = rows[key]
        if r["method"] == "diffusion":
            pipe(
                prompts[:1],
                sampler=r["sampler"],
                steps=min(r["steps"], 5),
                cfg_scale=args.cfg,
                seed=args.seed,
            )
        else:
            generate(lm, vocab, [[Text(prompts[0])]], "image", seed=args.seed)
    total = sum(1 for b in range(len(batches)) for k in keys if rows[k]["prompts"] > batches[b][0])
    bar = tqdm(total=total, desc="batches", leave=False)
    load: list[float] = []
    for b, idx in enumerate(batches):
        order = keys[b % len(keys) :] + keys[: b % len(keys)]  # rotate who goes first
        load.append(os.getloadavg()[0])
        for key in order:
            if rows[key]["prompts"] > idx[0]:
                one(key, idx, b)
                bar.update(1)
    bar.close()

    recorded = (getattr(lm, "generation_config", None) or {}).get("sampling", {}).get("image", {})
    fid = None
    real_feats = None
    if not args.no_fid:
        from omnitok.eval.fid import InceptionFID

        fid = InceptionFID()
        real_feats = fid.features(real_digits(n, "test", 32, args.data_root))
    for key, r in rows.items():
        x = torch.cat(images[key])
        lab = labels[: len(x)]
        pred = clf.predict(x)
        r["accuracy"] = float((pred == lab).float().mean())
        r["per_digit"] = {str(k): float((pred[lab == k] == k).float().mean()) for k in range(10)}
        r["s_per_image_median"] = round(statistics.median(per_image[key]), 4)
        r["s_per_image"] = [round(v, 4) for v in per_image[key]]
        r["forwards_per_batch"] = forwards.get(key)
        if fid is not None:
            fid.real, fid.fake = (
                [real_feats],
                [fid.features(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x)],
            )
            r["fid"] = fid.score()
            r["fid_images"] = {"generated": len(x), "real": int(real_feats.shape[0])}
        if r["method"] == "diffusion":
            r["cfg"] = args.cfg
        else:
            r["sampling"] = recorded
    ref = rows["next-token"]["s_per_image_median"]
    for r in rows.values():
        r["time_vs_next_token"] = round(r["s_per_image_median"] / ref, 3) if ref else None

    dcfg = json.loads((folder / "config.json").read_text())
    result = {
        "benchmark": "diffusion_vs_next_token",
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "threads": args.threads,
            "load_average_per_round": [round(v, 2) for v in load],
        },
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "prompts": n,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "judge_test_accuracy": clf.test_accuracy,
        "models": {
            "diffusion": _diffusion_train_info(folder.parent if folder.name == "final" else folder)
            | {
                "parameters": sum(p.numel() for p in pipe.model.parameters()),
                "denoiser": dcfg["diffusion"]["denoiser"],
                "latent": dcfg["diffusion"].get("latent"),
                "scheduler": dcfg["diffusion"]["scheduler"],
            },
            "next-token": _lm_train_info(Path(args.lm))
            | {"parameters": sum(p.numel() for p in lm.parameters()), "vocab": str(vocab_dir)},
        },
        "rows": rows,
    }
    out = Path(args.out) if args.out else RESULTS / "diffusion_vs_next_token_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"wrote {out}")
    return 0


def markdown(result: dict[str, Any]) -> str:
    m = result["models"]
    lines = [
        "| model | sampler | steps | prompts | digit accuracy | FID | s / image (median) | x next-token | trained |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"].values():
        info = m["diffusion"] if r["method"] == "diffusion" else m["next-token"]
        trained = f"{info.get('steps', '?')} steps / {info.get('train_seconds', '?')} s"
        sampler = r.get("sampler", "cached, recorded defaults")
        steps = r.get("steps", r.get("forwards_per_batch", ""))
        fid = f"{r['fid']:.1f}" if "fid" in r else "-"
        lines.append(
            f"| {r['method']} | {sampler} | {steps} | {r['prompts']} | {r['accuracy']:.1%} | {fid} | "
            f"{r['s_per_image_median']:.4f} | {r['time_vs_next_token']} | {trained} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
