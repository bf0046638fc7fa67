"""``omnitok eval diffusion CKPT``: judge a text -> image diffusion model on digits, per sampler and step count.

    omnitok eval diffusion runs/diffusion/digits-latent --steps 5,10,20,50 --sampler ddim --cfg 3 \\
        --per-digit 10 --ddpm 1000 --fid --out diffusion-eval.json --samples eval-grids/

For each setting the prompts "the digit zero" .. "the digit nine" (``--per-digit`` images each, fixed seed) are
sampled in batches; the digit CNN of ``omnitok eval model``'s t2i task (:mod:`.judges.digit_classifier`, trained on
real digits only) reads every image, and accuracy is the share it reads as the prompted digit. ``--fid``: Inception
FID (:mod:`.fid`) against the same number of held-out test digits (biased upwards at these sizes; the count is
reported). Seconds per image are wall time of sampling + decoding on this machine, batch ``--batch-size``.

    omnitok eval diffusion runs/diffusion/emoji-latent --data emoji --steps 20 --cfg 3 \\
        --clip runs/clip/digits-emoji-speech/final --samples eval-grids/

``--data emoji``: every held-out emoji's name is a prompt (one image each, fixed seed); FID against those emoji,
beside the codec's reconstructions of them and real emoji of the other held-out split, and (``--clip``) CLIPScore
of each image with its own name against another image's name (:func:`evaluate_emoji`).
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any

import torch

from omnitok.align.api import encode_text
from omnitok.align.model import AlignModel
from omnitok.data.sources.digits import DIGIT_WORDS
from omnitok.eval import digit_images
from omnitok.eval.digit_images import DigitJudging, machine
from omnitok.generation.diffusion import DiffusionPipeline, TextEmbedder

__all__ = ["add_arguments", "emoji_table", "evaluate_diffusion", "evaluate_emoji", "load_pipeline", "real_digits",
           "real_emoji", "run"]



def load_pipeline(path: str | Path, device: str | torch.device = "cpu") -> DiffusionPipeline:
    """A diffusion model folder (or its run folder) as a pipeline; a model conditioned on CLIP text embeddings gets
    the text tower of its ``text_clip/`` folder (``omnitok train clip``)."""

    def clip_embedder(folder: Path, dev: str | torch.device) -> TextEmbedder:
        return functools.partial(encode_text, AlignModel.from_pretrained(folder, map_location=dev))

    return DiffusionPipeline.load(path, device, text_embedder=clip_embedder)


def real_digits(n: int, split: str, size: int, data_root: str | None) -> torch.Tensor:
    """n held-out digits balanced over the labels, (n, 3, size, size) in [-1, 1]."""
    from omnitok.eval.heldout import digit_items

    return torch.stack([item["image"] for item in digit_items(split, data_root, size, n)])


def evaluate_diffusion(ckpt: str, settings: list[tuple[str, int]], *, cfg_scale: float = 3.0, eta: float = 0.0,
                       per_digit: int = 10, seed: int = 0, batch_size: int = 50, fid: bool = False,
                       split: str = "test", data_root: str | None = None, judge_dir: str | None = None,
                       samples: str | None = None, progress: bool = True) -> dict[str, Any]:
    """settings: (sampler, steps) pairs -> {"rows": [{sampler, steps, accuracy, seconds_per_image, ...}], ...}."""
    from omnitok.eval.judges.digit_classifier import load_or_train
    from omnitok.generation.diffusion import find_diffusion_folder

    folder = find_diffusion_folder(ckpt)
    pipe = load_pipeline(folder)
    prompts = [f"the digit {DIGIT_WORDS[k]}" for k in range(10) for _ in range(per_digit)]
    labels = torch.tensor([k for k in range(10) for _ in range(per_digit)])
    judging = DigitJudging(load_or_train(judge_dir, data_root=data_root, progress=progress),
                           real_digits(len(prompts), split, 32, data_root) if fid else None)
    rows = []
    for sampler, steps in settings:
        images, stats = pipe(prompts, sampler=sampler, steps=steps, cfg_scale=cfg_scale, eta=eta, seed=seed,
                             batch_size=batch_size, progress=progress)
        row: dict[str, Any] = {"sampler": sampler, "steps": steps, "cfg": cfg_scale, "images": len(prompts),
                               **judging.reading(images, labels), "seconds": round(stats["seconds"], 2),
                               "seconds_per_image": round(stats["seconds_per_image"], 4)}
        judging.add_fid_and_grid(row, images, labels, Path(samples) / f"{sampler}-{steps}.png" if samples else None)
        rows.append(row)
        if progress:
            print(judging.progress_line(f"{sampler} {steps:>4} steps", row))
    cfg = json.loads((folder / "config.json").read_text())
    return {"ckpt": str(folder), "train": cfg.get("train"), "diffusion": cfg.get("diffusion"),
            "judge_test_accuracy": judging.clf.test_accuracy, "seed": seed, "per_digit": per_digit, "eta": eta,
            "machine": machine(), "rows": rows}


def real_emoji(split: str, size: int, data_root: str | None, limit: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """The held-out emoji of ``split`` in shard order: images (N, 3, size, size) in [-1, 1] and their names."""
    from omnitok.data.dataset import ShardDataset

    images, names = [], []
    for item in ShardDataset("emoji", split, root=data_root, image_size=size, rank=0, world_size=1):
        images.append(item["image"][:3])
        names.append(str(item.get("caption") or (item.get("meta") or {}).get("caption")))
        if limit is not None and len(images) >= limit:
            break
    if not images:
        raise ValueError(f"emoji/{split}: no images (is `omnitok data build emoji` done?)")
    return torch.stack(images), names


def _pair_grid(real: torch.Tensor, fake: torch.Tensor, cols: int, rows: int) -> torch.Tensor:
    """Rows of ``cols`` real images, each followed by the generated images of the same prompts, evenly spaced
    over the split so that flags, faces and objects all appear."""
    n = min(len(real), len(fake))
    pick = torch.linspace(0, n - 1, cols * rows).round().long()
    tiles = []
    for r in range(rows):
        idx = pick[r * cols : (r + 1) * cols]
        tiles += [real[i] for i in idx] + [fake[i] for i in idx]
    return torch.stack(tiles)


def evaluate_emoji(ckpt: str, settings: list[tuple[str, int]], *, cfg_scale: float = 3.0, eta: float = 0.0,
                   seed: int = 0, batch_size: int = 50, split: str = "test", data_root: str | None = None,
                   limit: int | None = None, clip: str | None = None, samples: str | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Emoji names -> image: one image per held-out emoji, prompted with its name (fixed seed); Inception FID
    against those held-out emoji, beside two references computed by the same code on the same images: the
    codec's reconstructions of them (what a perfect denoiser could reach) and as many real emoji of the other
    held-out split (the floor of FID at this count). ``clip``: an ``omnitok train clip`` model whose CLIPScore
    (``2.5 max(cos, 0)``, Hessel et al. arXiv 2104.08718) is reported for the generated images with their own
    names, with another image's name (shuffled), and for the real emoji with their names."""
    from omnitok.eval.fid import InceptionFID
    from omnitok.generation.diffusion import find_diffusion_folder, image_grid

    folder = find_diffusion_folder(ckpt)
    pipe = load_pipeline(folder)
    if pipe.image_codec is None:
        raise ValueError(f"{folder}: evaluate_emoji judges latent models (their codec's reconstructions are a row)")
    size = int(pipe.to_images(torch.zeros(1, *pipe.model.sample_shape)).shape[-1])  # the decoder's pixel size
    real, names = real_emoji(split, size, data_root, limit)
    other, _ = real_emoji("val" if split == "test" else "test", size, data_root, len(real))
    fid_net = InceptionFID()
    real_feats = fid_net.features(real, progress=progress)

    def fid_of(x: torch.Tensor) -> float:
        fid_net.real, fid_net.fake = [real_feats], [fid_net.features(x, progress=progress)]
        return fid_net.score()

    with torch.no_grad():
        recon = torch.cat([pipe.image_codec(real[i : i + 100]).recon.clamp(-1, 1) for i in range(0, len(real), 100)])
    mse = ((recon - real) ** 2).mean(dim=(1, 2, 3)) / 4  # images in [-1, 1] -> [0, 1]
    refs: dict[str, Any] = {
        "codec_reconstructions": {"fid": fid_of(recon), "psnr": float((-10 * torch.log10(mse.clamp_min(1e-10))).mean())},
        "real_other_split": {"fid": fid_of(other), "images": len(other)},
    }
    clip_model = None
    if clip:
        from omnitok.align.api import encode_image, encode_text
        from omnitok.align.model import AlignModel
        from omnitok.eval.clip import _clip_scores

        clip_model = AlignModel.from_pretrained(clip).eval()
        uniq = sorted(set(names))
        text_emb_of = dict(zip(uniq, encode_text(clip_model, uniq)))

        def clip_of(x: torch.Tensor) -> dict[str, Any]:
            return _clip_scores(encode_image(clip_model, x), names, text_emb_of, seed=seed)

        refs["real"] = {"clipscore": clip_of(real)}
        refs["codec_reconstructions"]["clipscore"] = clip_of(recon)
    rows = []
    for sampler, steps in settings:
        images, stats = pipe(names, sampler=sampler, steps=steps, cfg_scale=cfg_scale, eta=eta, seed=seed,
                             batch_size=batch_size, progress=progress)
        row: dict[str, Any] = {"sampler": sampler, "steps": steps, "cfg": cfg_scale, "images": len(images),
                               "fid": fid_of(images), "seconds": round(stats["seconds"], 2),
                               "seconds_per_image": round(stats["seconds_per_image"], 4)}
        if clip_model is not None:
            row["clipscore"] = clip_of(images)
        if samples:
            from omnitok.io.image import save_image

            path = Path(samples) / f"emoji-{sampler}-{steps}-cfg{cfg_scale:g}.png"
            save_image(image_grid(_pair_grid(real, images, 12, 3), cols=12), path)
            row["grid"] = str(path)
        rows.append(row)
        if progress:
            print(f"{sampler} {steps:>4} steps: FID {row['fid']:.1f}, {row['seconds_per_image']:.4f} s/image"
                  + (f", CLIPScore {row['clipscore']['true_mean']:.2f}" if "clipscore" in row else ""))
    cfg = json.loads((folder / "config.json").read_text())
    return {"ckpt": str(folder), "data": "emoji", "split": split, "train": cfg.get("train"),
            "diffusion": cfg.get("diffusion"), "clip": clip, "seed": seed, "size": size, "eta": eta,
            "references": refs, "machine": machine(), "rows": rows}


def markdown_table(result: dict[str, Any]) -> str:
    has_fid = any("fid" in r for r in result["rows"])
    head = "| sampler | steps | cfg | digit accuracy | " + ("FID | " if has_fid else "") + "s / image |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in result["rows"]:
        fid = f"{r['fid']:.1f} | " if has_fid and "fid" in r else ("- | " if has_fid else "")
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['cfg']:g} | {r['accuracy']:.1%} ({r['images']}) | {fid}"
                     f"{r['seconds_per_image']:.4f} |")
    return "\n".join(lines)


def emoji_table(result: dict[str, Any]) -> str:
    """The rows of :func:`evaluate_emoji` and its references as Markdown."""
    clip = "clipscore" in result["references"].get("real", {})
    head = "| images | sampler | steps | cfg | FID | " + ("CLIPScore own name / shuffled | " if clip else "") + "s / image |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def cs(r: dict[str, Any]) -> str:
        c = r.get("clipscore")
        return (f"{c['true_mean']:.2f} / {c['shuffled_mean']:.2f} | " if c else "- | ") if clip else ""

    refs = result["references"]
    lines.append(f"| real, other split | | | | {refs['real_other_split']['fid']:.1f} | {cs(refs.get('real', {}))}- |")
    lines.append(f"| codec reconstructions | | | | {refs['codec_reconstructions']['fid']:.1f} | "
                 f"{cs(refs['codec_reconstructions'])}- |")
    for r in result["rows"]:
        lines.append(f"| generated ({r['images']}) | {r['sampler']} | {r['steps']} | {r['cfg']:g} | {r['fid']:.1f} | "
                     f"{cs(r)}{r['seconds_per_image']:.4f} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ckpt", help="diffusion model folder, checkpoint or run folder")
    parser.add_argument("--data", default="digits", choices=["digits", "emoji"],
                        help="digits: judge accuracy (+ --fid); emoji: one image per held-out emoji name, FID")
    parser.add_argument("--clip", default=None, help="emoji: an `omnitok train clip` model for CLIPScore")
    parser.add_argument("--limit", type=int, default=None, help="emoji: only the first N held-out emoji")
    parser.add_argument("--steps", default="5,10,20,50", help="comma-separated step counts for --sampler")
    parser.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm", "euler"])
    parser.add_argument("--ddpm", type=int, default=0, help="also DDPM ancestral with this many steps (e.g. 1000)")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    digit_images.add_arguments(parser, "images per digit and setting", "write one grid PNG per setting here")


def run(args: argparse.Namespace) -> int:
    settings = [(args.sampler, n) for n in digit_images.parse_steps(args)]
    settings += [("ddpm", args.ddpm)] if args.ddpm else []
    if not settings:
        raise ValueError("nothing to evaluate: give --steps and/or --ddpm")
    if args.data == "emoji":
        res = evaluate_emoji(args.ckpt, settings, cfg_scale=args.cfg, eta=args.eta, seed=args.seed,
                             batch_size=args.batch_size, split=args.split, data_root=args.data_root,
                             limit=args.limit, clip=args.clip, samples=args.samples, progress=not args.no_progress)
        return digit_images.write_result(res, args.out, emoji_table(res))
    res = evaluate_diffusion(args.ckpt, settings, cfg_scale=args.cfg, eta=args.eta, per_digit=args.per_digit,
                             seed=args.seed, batch_size=args.batch_size, fid=args.fid, split=args.split,
                             data_root=args.data_root, judge_dir=args.judge_dir, samples=args.samples,
                             progress=not args.no_progress)
    return digit_images.write_result(res, args.out, markdown_table(res))
