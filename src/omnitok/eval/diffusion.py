"""``omnitok eval diffusion CKPT``: judge a text -> image diffusion model on digits, per sampler and step count.

    omnitok eval diffusion runs/diffusion/digits-latent --steps 5,10,20,50 --sampler ddim --cfg 3 \\
        --per-digit 10 --ddpm 1000 --fid --out diffusion-eval.json --samples eval-grids/

For each setting the prompts "the digit zero" .. "the digit nine" (``--per-digit`` images each, fixed seed) are
sampled in batches; the digit CNN of ``omnitok eval model``'s t2i task (:mod:`.judges.digit_classifier`, trained on
real digits only) reads every image, and accuracy is the share it reads as the prompted digit. ``--fid``: Inception
FID (:mod:`.fid`) against the same number of held-out test digits (biased upwards at these sizes; the count is
reported). Seconds per image are wall time of sampling + decoding on this machine, batch ``--batch-size``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import torch

__all__ = ["add_arguments", "evaluate_diffusion", "run"]

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _real_digits(n: int, split: str, size: int, data_root: str | None) -> torch.Tensor:
    """n held-out digits balanced over the labels, (n, 3, size, size) in [-1, 1]."""
    from omnitok.data.dataset import ShardDataset

    per = -(-n // 10)
    groups: dict[int, list[torch.Tensor]] = {k: [] for k in range(10)}
    for item in ShardDataset("digits", split, root=data_root, image_size=size, rank=0, world_size=1):
        lab = int(item["label"])
        if len(groups[lab]) < per:
            groups[lab].append(item["image"])
        if all(len(g) >= per for g in groups.values()):
            break
    return torch.stack([groups[k][i] for i in range(per) for k in range(10) if i < len(groups[k])][:n])


def evaluate_diffusion(ckpt: str, settings: list[tuple[str, int]], *, cfg_scale: float = 3.0, eta: float = 0.0,
                       per_digit: int = 10, seed: int = 0, batch_size: int = 50, fid: bool = False,
                       split: str = "test", data_root: str | None = None, judge_dir: str | None = None,
                       samples: str | None = None, progress: bool = True) -> dict[str, Any]:
    """settings: (sampler, steps) pairs -> {"rows": [{sampler, steps, accuracy, seconds_per_image, ...}], ...}."""
    from omnitok.eval.judges.digit_classifier import load_or_train
    from omnitok.generation.diffusion import DiffusionPipeline, find_diffusion_folder, image_grid

    folder = find_diffusion_folder(ckpt)
    pipe = DiffusionPipeline.load(folder)
    clf = load_or_train(judge_dir, data_root=data_root, progress=progress)
    prompts = [f"the digit {WORDS[k]}" for k in range(10) for _ in range(per_digit)]
    labels = torch.tensor([k for k in range(10) for _ in range(per_digit)])
    fid_net, real_feats = None, None
    if fid:
        from omnitok.eval.fid import InceptionFID

        fid_net = InceptionFID()
        real = _real_digits(len(prompts), split, 32, data_root)
        real_feats = fid_net.features(real)
    rows = []
    for sampler, steps in settings:
        images, stats = pipe(prompts, sampler=sampler, steps=steps, cfg_scale=cfg_scale, eta=eta, seed=seed,
                             batch_size=batch_size, progress=progress)
        pred = clf.predict(images)
        row: dict[str, Any] = {"sampler": sampler, "steps": steps, "cfg": cfg_scale, "images": len(prompts),
                               "accuracy": float((pred == labels).float().mean()),
                               "per_digit": {str(k): float((pred[labels == k] == k).float().mean()) for k in range(10)},
                               "seconds": round(stats["seconds"], 2),
                               "seconds_per_image": round(stats["seconds_per_image"], 4)}
        if fid_net is not None:
            rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images  # greyscale pixel models
            fid_net.real, fid_net.fake = [real_feats], [fid_net.features(rgb)]
            row["fid"] = fid_net.score()
            row["fid_images"] = {"generated": len(images), "real": int(real_feats.shape[0])}
        if samples:
            from omnitok.io.image import save_image

            show = torch.stack([images[k * per_digit + i] for i in range(min(per_digit, 8)) for k in range(10)])
            path = Path(samples) / f"{sampler}-{steps}.png"
            save_image(image_grid(show, cols=10), path)
            row["grid"] = str(path)
        rows.append(row)
        if progress:
            print(f"{sampler} {steps:>4} steps: accuracy {row['accuracy']:.3f}, {row['seconds_per_image']:.4f} s/image"
                  + (f", FID {row['fid']:.1f}" if "fid" in row else ""))
    cfg = json.loads((folder / "config.json").read_text())
    return {"ckpt": str(folder), "train": cfg.get("train"), "diffusion": cfg.get("diffusion"),
            "judge_test_accuracy": clf.test_accuracy, "seed": seed, "per_digit": per_digit, "eta": eta,
            "machine": {"platform": platform.platform(), "torch": torch.__version__,
                        "threads": torch.get_num_threads()}, "rows": rows}


def markdown_table(result: dict[str, Any]) -> str:
    has_fid = any("fid" in r for r in result["rows"])
    head = "| sampler | steps | cfg | digit accuracy | " + ("FID | " if has_fid else "") + "s / image |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in result["rows"]:
        fid = f"{r['fid']:.1f} | " if has_fid and "fid" in r else ("- | " if has_fid else "")
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['cfg']:g} | {r['accuracy']:.1%} ({r['images']}) | {fid}"
                     f"{r['seconds_per_image']:.4f} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ckpt", help="diffusion model folder, checkpoint or run folder")
    parser.add_argument("--steps", default="5,10,20,50", help="comma-separated step counts for --sampler")
    parser.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm", "euler"])
    parser.add_argument("--ddpm", type=int, default=0, help="also DDPM ancestral with this many steps (e.g. 1000)")
    parser.add_argument("--cfg", type=float, default=3.0, help="classifier-free guidance scale (1 = off)")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    parser.add_argument("--per-digit", type=int, default=10, help="images per digit and setting")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fid", action="store_true", help="also Inception FID against held-out digits")
    parser.add_argument("--split", default="test", help="held-out split for FID")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--judge-dir", default=None, help="digit judge folder (default: the cache)")
    parser.add_argument("--samples", default=None, help="write one grid PNG per setting here")
    parser.add_argument("--out", default=None, help="write the JSON result here")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        steps = [int(s) for s in str(args.steps).split(",") if s.strip()]
    except ValueError as e:
        raise ValueError(f"--steps {args.steps!r}: expected comma-separated integers") from e
    settings = [(args.sampler, n) for n in steps] + ([("ddpm", args.ddpm)] if args.ddpm else [])
    if not settings:
        raise ValueError("nothing to evaluate: give --steps and/or --ddpm")
    res = evaluate_diffusion(args.ckpt, settings, cfg_scale=args.cfg, eta=args.eta, per_digit=args.per_digit,
                             seed=args.seed, batch_size=args.batch_size, fid=args.fid, split=args.split,
                             data_root=args.data_root, judge_dir=args.judge_dir, samples=args.samples,
                             progress=not args.no_progress)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(markdown_table(res))
    return 0
