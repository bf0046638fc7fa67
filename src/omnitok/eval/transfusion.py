"""``omnitok eval transfusion CKPT``: judge a Transfusion model both ways on held-out digits.

    omnitok eval transfusion runs/transfusion/digits --steps 10,20,50 --cfg 3 --per-digit 10 --fid \\
        --out runs/transfusion/eval.json --samples runs/transfusion/eval-grids

Text -> image: the prompts "the digit zero" .. "the digit nine" (``--per-digit`` each, seed ``--seed``) at each step
count (DDIM, eta 0, guidance ``--cfg``); the digit CNN of ``omnitok eval`` (:mod:`.judges.digit_classifier`, trained
on real digits only) reads every image; accuracy is the share read as the prompted digit. ``--fid``: Inception FID
(:mod:`.fid`) against as many held-out test digits (balanced over the labels; biased upwards at these sizes, the count
is reported). Image -> text: ``--per-digit`` held-out test digits per label, captioned greedily from their clean
latents by the same model; accuracy is the share of captions that name the right digit
(:func:`.judges.digit_text.digit_from_text`). Seconds per image: wall time of sampling + decoding in batches of
``--batch-size`` on this machine.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import torch

from omnitok.data.sources.digits import DIGIT_WORDS
from omnitok.eval.judges.digit_classifier import load_or_train
from omnitok.eval.judges.digit_text import digit_from_text
from omnitok.generation.hybrid import HybridPipeline, find_hybrid_folder

__all__ = ["add_arguments", "evaluate_transfusion", "held_out_digits", "run"]



def held_out_digits(per_digit: int, split: str, size: int, data_root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (10 * per_digit, 3, size, size) in [-1, 1], labels (10 * per_digit,)), label = i mod 10."""
    from omnitok.data.dataset import ShardDataset

    groups: dict[int, list[torch.Tensor]] = {k: [] for k in range(10)}
    for item in ShardDataset("digits", split, root=data_root, image_size=size, rank=0, world_size=1):
        lab = int(item["label"])
        if len(groups[lab]) < per_digit:
            groups[lab].append(item["image"])
        if all(len(g) >= per_digit for g in groups.values()):
            break
    short = [k for k, g in groups.items() if len(g) < per_digit]
    if short:
        raise ValueError(f"digits/{split}: fewer than {per_digit} images of digit(s) {short}")
    images = torch.stack([groups[i % 10][i // 10] for i in range(10 * per_digit)])
    return images, torch.tensor([i % 10 for i in range(10 * per_digit)])


def evaluate_transfusion(ckpt: str, steps: list[int], *, cfg_scale: float = 3.0, per_digit: int = 10, seed: int = 0,
                         batch_size: int = 50, fid: bool = False, split: str = "test", data_root: str | None = None,
                         judge_dir: str | None = None, samples: str | None = None,
                         progress: bool = True) -> dict[str, Any]:
    """-> {"t2i": [{steps, accuracy, fid, seconds_per_image, ...}], "i2t": {accuracy, ...}, "train": ..., ...}."""
    folder = find_hybrid_folder(ckpt)
    pipe = HybridPipeline.load(folder)
    clf = load_or_train(judge_dir, data_root=data_root, progress=progress)
    n = 10 * per_digit
    prompts = [f"the digit {DIGIT_WORDS[i % 10]}" for i in range(n)]
    labels = torch.tensor([i % 10 for i in range(n)])
    real, real_labels = held_out_digits(per_digit, split, pipe.image_side(), data_root)
    fid_net, real_feats = None, None
    if fid:
        from omnitok.eval.fid import InceptionFID

        fid_net = InceptionFID()
        real_feats = fid_net.features(real)
    rows = []
    for k in steps:
        images, stats = pipe.text_to_image(prompts, steps=k, cfg_scale=cfg_scale, seed=seed, batch_size=batch_size,
                                           progress=progress)
        pred = clf.predict(images)
        row: dict[str, Any] = {"steps": k, "sampler": "ddim", "cfg": cfg_scale, "images": n,
                               "accuracy": float((pred == labels).float().mean()),
                               "per_digit": {str(d): float((pred[labels == d] == d).float().mean()) for d in range(10)},
                               "forwards_per_image": k, "seconds_per_image": round(stats["seconds_per_image"], 4)}
        if fid_net is not None:
            fid_net.real, fid_net.fake = [real_feats], [fid_net.features(images)]
            row["fid"] = fid_net.score()
            row["fid_images"] = {"generated": n, "real": int(real_feats.shape[0])}
        if samples:
            from omnitok.generation.diffusion import image_grid
            from omnitok.io.image import save_image

            show = torch.stack([images[i * 10 + d] for i in range(min(per_digit, 8)) for d in range(10)])
            path = Path(samples) / f"ddim-{k}.png"
            save_image(image_grid(show, cols=10), path)
            row["grid"] = str(path)
        rows.append(row)
        if progress:
            print(f"text -> image, {k:>3} steps: accuracy {row['accuracy']:.3f}, {row['seconds_per_image']:.4f} s/image"
                  + (f", FID {row['fid']:.1f}" if "fid" in row else ""))
    caps, st = pipe.image_to_text(real, batch_size=batch_size)
    said = [digit_from_text(c) for c in caps]
    i2t = {"images": n, "accuracy": sum(int(s == int(lab)) for s, lab in zip(said, real_labels)) / n,
           "seconds_per_image": round(st["seconds_per_image"], 4),
           "examples": [{"label": int(real_labels[i]), "caption": caps[i]} for i in range(min(n, 20))]}
    if progress:
        print(f"image -> text: accuracy {i2t['accuracy']:.3f}")
    cfg = json.loads((folder / "config.json").read_text())
    return {"ckpt": str(folder), "train": cfg.get("train"), "hybrid": cfg.get("hybrid"),
            "parameters": pipe.model.num_params(), "judge_test_accuracy": clf.test_accuracy, "seed": seed,
            "split": split, "per_digit": per_digit,
            "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
            "t2i": rows, "i2t": i2t}


def markdown_table(result: dict[str, Any]) -> str:
    has_fid = any("fid" in r for r in result["t2i"])
    lines = ["| DDIM steps | forwards / image | text -> image digit accuracy | " + ("FID | " if has_fid else "")
             + "s / image |", "|---:|---:|---:|" + ("---:|" if has_fid else "") + "---:|"]
    for r in result["t2i"]:
        fid = f"{r['fid']:.1f} | " if "fid" in r else ""
        lines.append(f"| {r['steps']} | {r['forwards_per_image']} | {r['accuracy']:.1%} ({r['images']}) | {fid}"
                     f"{r['seconds_per_image']:.4f} |")
    i = result["i2t"]
    lines.append(f"\nimage -> text: {i['accuracy']:.1%} of {i['images']} held-out digits captioned with the right digit "
                 f"({i['seconds_per_image']:.4f} s / image)")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ckpt", help="Transfusion model folder, checkpoint or run folder")
    parser.add_argument("--steps", default="10,20,50", help="comma-separated DDIM step counts")
    parser.add_argument("--cfg", type=float, default=3.0, help="classifier-free guidance scale (1 = off)")
    parser.add_argument("--per-digit", type=int, default=10, help="prompts and captioned images per digit")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fid", action="store_true", help="also Inception FID against held-out digits")
    parser.add_argument("--split", default="test", help="held-out split")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--judge-dir", default=None, help="digit judge folder (default: the cache)")
    parser.add_argument("--samples", default=None, help="write one grid PNG per step count here")
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
    if not steps:
        raise ValueError("--steps: give at least one step count")
    res = evaluate_transfusion(args.ckpt, steps, cfg_scale=args.cfg, per_digit=args.per_digit, seed=args.seed,
                               batch_size=args.batch_size, fid=args.fid, split=args.split, data_root=args.data_root,
                               judge_dir=args.judge_dir, samples=args.samples, progress=not args.no_progress)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(markdown_table(res))
    return 0
