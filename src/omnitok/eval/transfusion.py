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
from pathlib import Path
from typing import Any

import torch

from omnitok.data.sources.digits import DIGIT_WORDS
from omnitok.eval import digit_images
from omnitok.eval.digit_images import DigitJudging, machine
from omnitok.eval.judges.digit_classifier import load_or_train
from omnitok.eval.judges.digit_text import digit_from_text
from omnitok.generation.hybrid import HybridPipeline, find_hybrid_folder

__all__ = ["add_arguments", "evaluate_transfusion", "held_out_digits", "run"]



def held_out_digits(per_digit: int, split: str, size: int, data_root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (10 * per_digit, 3, size, size) in [-1, 1], labels (10 * per_digit,)), label = i mod 10."""
    from omnitok.eval.heldout import digit_items

    items = digit_items(split, data_root, size, 10 * per_digit)
    labels = torch.tensor([int(item["label"]) for item in items], dtype=torch.long)
    short = [k for k in range(10) if int((labels == k).sum()) < per_digit]
    if short:
        raise ValueError(f"digits/{split}: fewer than {per_digit} images of digit(s) {short}")
    return torch.stack([item["image"] for item in items]), labels


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
    judging = DigitJudging(clf, real if fid else None)
    rows = []
    for k in steps:
        images, stats = pipe.text_to_image(prompts, steps=k, cfg_scale=cfg_scale, seed=seed, batch_size=batch_size,
                                           progress=progress)
        row: dict[str, Any] = {"steps": k, "sampler": "ddim", "cfg": cfg_scale, "images": n,
                               **judging.reading(images, labels), "forwards_per_image": k,
                               "seconds_per_image": round(stats["seconds_per_image"], 4)}
        judging.add_fid_and_grid(row, images, labels, Path(samples) / f"ddim-{k}.png" if samples else None)
        rows.append(row)
        if progress:
            print(judging.progress_line(f"text -> image, {k:>3} steps", row))
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
            "split": split, "per_digit": per_digit, "machine": machine(), "t2i": rows, "i2t": i2t}


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
    digit_images.add_arguments(parser, "prompts and captioned images per digit", "write one grid PNG per step count here")


def run(args: argparse.Namespace) -> int:
    steps = digit_images.parse_steps(args)
    if not steps:
        raise ValueError("--steps: give at least one step count")
    res = evaluate_transfusion(args.ckpt, steps, cfg_scale=args.cfg, per_digit=args.per_digit, seed=args.seed,
                               batch_size=args.batch_size, fid=args.fid, split=args.split, data_root=args.data_root,
                               judge_dir=args.judge_dir, samples=args.samples, progress=not args.no_progress)
    return digit_images.write_result(res, args.out, markdown_table(res))
