"""Evaluate a video codec on a held-out split: per-frame PSNR / SSIM (mean over frames and clips, and per frame
index), codebook usage / perplexity, ids per clip, compression ratio, and on moving-digit clips what the judges read
in the reconstructions: the digit of every frame (:mod:`.judges.video_digits`) and the direction of motion
(:mod:`.judges.motion`), beside the same judges on the original clips. Writes a grid of original / reconstructed
frames.

:func:`check_judges` is the judges' own check on real clips: the clips as they are (digit per frame and direction
near 100%), with their frames shuffled (direction near chance or "none") and with one frame repeated (direction
"still"), so a figure from them means what it says.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from omnitok.codecs.base import Codec
from omnitok.eval.codec_data import load_videos, to_float, to_uint8
from omnitok.eval.image_codec import codebook_stats
from omnitok.eval.metrics import psnr, ssim

__all__ = ["check_judges", "evaluate", "judge_clips", "load_clips"]


def load_clips(data: str, split: str, size: int, frames: int, limit: int | None = None,
               where: dict[str, Any] | None = None) -> tuple[Tensor, list[dict[str, Any]]]:
    """A split's clips as uint8 (N, T, 3, size, size) and their meta (caption included), ``where``: meta filter."""
    from omnitok.data.dataset import ShardDataset

    clips, metas = [], []
    for ex in tqdm(ShardDataset(data, split, video_size=size, num_frames=frames), desc=f"load {data}/{split}",
                   leave=False):
        meta = dict(ex.get("meta") or {})
        if "video" not in ex or any(meta.get(k) != v for k, v in (where or {}).items()):
            continue
        meta.setdefault("caption", ex.get("caption"))
        clips.append(to_uint8(ex["video"]))
        metas.append(meta)
        if limit is not None and len(clips) >= limit:
            break
    if not clips:
        raise ValueError(f"dataset {data!r} split {split!r} has no videos" + (f" with {where}" if where else ""))
    return torch.stack(clips), metas


def single_digit(meta: dict[str, Any]) -> bool:
    """A clip of one moving digit (the clips whose digit and direction the judges read)."""
    return meta.get("kind") == "digits" and meta.get("motion") == "single" and len(str(meta.get("digits", ""))) == 1


def judge_clips(classifier: Any, videos: list[Tensor], metas: list[dict[str, Any]]) -> dict[str, Any]:
    """Digit per frame and direction of motion of ``videos`` (each (T, 3, H, W) in [-1, 1]) against the captions'
    digit and direction: {"frame_accuracy", "direction_accuracy", "directions": {answer: count}, "clips", "frames"}."""
    from omnitok.eval.judges.motion import caption_direction, direction_of_motion
    from omnitok.eval.judges.video_digits import frame_digits

    hits = frames = dir_hits = 0
    answers: dict[str, int] = {}
    for v, m in zip(videos, metas):
        pred = frame_digits(classifier, v)
        hits += int((pred == int(m["digits"])).sum())
        frames += len(pred)
        got = direction_of_motion(v)
        answers[got] = answers.get(got, 0) + 1
        dir_hits += int(got == caption_direction(m["caption"]))
    return {"frame_accuracy": hits / max(frames, 1), "direction_accuracy": dir_hits / max(len(videos), 1),
            "directions": dict(sorted(answers.items())), "clips": len(videos), "frames": frames}


def check_judges(classifier: Any, videos: Tensor, metas: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """The judges on real single-digit clips ``videos`` (N, T, 3, H, W) in [-1, 1]: as they are, with their frames
    in a random order (one permutation per clip, ``seed``), and as one frame (the middle one) repeated."""
    keep = [i for i, m in enumerate(metas) if single_digit(m)]
    if not keep:
        raise ValueError("check_judges: no single-digit clip among the clips given")
    gen = torch.Generator().manual_seed(seed)
    real = [videos[i] for i in keep]
    ms = [metas[i] for i in keep]
    shuffled = [v[torch.randperm(len(v), generator=gen)] for v in real]
    t = real[0].shape[0]
    repeated = [v[t // 2 : t // 2 + 1].expand_as(v) for v in real]
    return {"real": judge_clips(classifier, real, ms), "shuffled_frames": judge_clips(classifier, shuffled, ms),
            "repeated_frame": judge_clips(classifier, repeated, ms)}


@torch.no_grad()
def evaluate(codec: Codec, data: str, split: str, out_dir: Path, limit: int | None = None,
             size: int | None = None, frames: int | None = None, batch_size: int = 8,
             judges: bool = True, classifier: Any = None) -> dict[str, Any]:
    """Reconstruct ``split`` of ``data`` and measure it (see the module's docstring); ``classifier``: the digit
    judge (default: the cached one, :func:`omnitok.eval.judges.digit_classifier.load_or_train`)."""
    from omnitok.eval.grids import video_grid
    from omnitok.io.image import save_image, to_channels

    dcfg = (getattr(codec, "train_config", None) or {}).get("data") or {}
    size = size or dcfg.get("size") or 32
    frames = frames or dcfg.get("frames") or 1 + 4 * int(codec.config.get("temporal_stride", 1))
    where = dcfg.get("where") if data == dcfg.get("name") else None
    if data == "synthetic":
        x, metas = load_videos(data, split, size, frames, limit, where), [{} for _ in range(limit or 64)]
    else:
        x, metas = load_clips(data, split, size, frames, limit, where)  # (N, T, 3, H, W) uint8
    device = next(codec.parameters()).device
    channels = int(codec.in_channels)
    ps, ss, codes, recons, first = [], [], [], [], None
    for i in tqdm(range(0, len(x), batch_size), desc="reconstruct", leave=False):
        xb = to_channels(to_float(x[i : i + batch_size]), channels).transpose(1, 2).to(device)
        c = codec.encode(xb)
        rb = codec.decode(c).clamp(-1, 1)
        b, ch, t, h, w = xb.shape
        rf, xf = (v.transpose(1, 2).reshape(b * t, ch, h, w).cpu() for v in (rb, xb))  # frames
        ps.append(psnr(rf, xf).reshape(b, t))
        ss.append(ssim(rf, xf).reshape(b, t))
        codes.append(c.cpu().reshape(b, -1, c.shape[-1]))
        recons.append(to_uint8(rb.transpose(1, 2).cpu()))  # (b, T, C, H, W)
        if first is None:
            first = (xb[:4].cpu(), rb[:4].cpu())
    p, s, codes = torch.cat(ps), torch.cat(ss), torch.cat(codes)
    grid = codec.code_grid((x.shape[2], x.shape[1], x.shape[3], x.shape[4]))
    tokens = math.prod(grid) * codec.num_codebooks
    bits = tokens * math.log2(codec.codebook_size)
    raw_bits = x[0].numel() * 8
    finite = torch.isfinite(p)
    result: dict[str, Any] = {
        "data": data,
        "split": split,
        "clips": len(x),
        "frames": frames,
        "frame_size": [x.shape[2], x.shape[3], x.shape[4]],
        "codec_class": type(codec).__name__,
        "code_grid": list(grid),
        "codebook_size": codec.codebook_size,
        "tokens_per_clip": tokens,
        "bits_per_clip": bits,
        "compression_ratio": raw_bits / bits,
        "psnr": float(p[finite].mean()),
        "psnr_per_frame": [float(p[:, k][finite[:, k]].mean()) for k in range(p.shape[1])],
        "ssim": float(s.mean()),
        **codebook_stats(codes, codec.codebook_size),
    }
    if "temporal_stride" in codec.config:
        result["temporal_stride"] = codec.config["temporal_stride"]
    kinds: dict[str, list[int]] = {}
    for i, m in enumerate(metas):
        kinds.setdefault(str(m.get("kind", "synthetic")), []).append(i)
    if len(kinds) > 1:
        result["per_kind"] = {k: {"clips": len(ix), "psnr": float(p[ix][finite[ix]].mean()),
                                  "ssim": float(s[ix].mean())} for k, ix in sorted(kinds.items())}
    single = [i for i, m in enumerate(metas) if single_digit(m)]
    if judges and single:
        from omnitok.eval.judges.digit_classifier import load_or_train

        clf = classifier if classifier is not None else load_or_train(progress=False)
        r = torch.cat(recons)
        ms = [metas[i] for i in single]
        result["judges"] = {
            "reconstructed": judge_clips(clf, [to_float(r[i]) for i in single], ms),
            "original": judge_clips(clf, [to_float(x[i]) for i in single], ms),
            "digit_judge_test_accuracy": getattr(clf, "test_accuracy", None),
        }
        result["judge_check"] = check_judges(clf, to_float(x[single]), ms)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_image(video_grid(*first), out_dir / "recon_grid.png")
    result["grid"] = str(out_dir / "recon_grid.png")
    return result
