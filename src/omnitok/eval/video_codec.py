"""Evaluate a video codec on a held-out split: per-frame PSNR / SSIM (mean over frames and clips, and
per frame index), codebook usage / perplexity, tokens per clip, compression ratio; writes a grid of
original / reconstructed frames."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from omnitok.codecs.base import Codec
from omnitok.eval.codec_data import load_videos, to_float
from omnitok.eval.image_codec import codebook_stats
from omnitok.eval.metrics import psnr, ssim

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(codec: Codec, data: str, split: str, out_dir: Path, limit: int | None = None,
             size: int | None = None, frames: int | None = None, batch_size: int = 8) -> dict[str, Any]:
    from omnitok.eval.grids import video_grid
    from omnitok.io.image import save_image, to_channels

    dcfg = (getattr(codec, "train_config", None) or {}).get("data") or {}
    size = size or dcfg.get("size") or 32
    frames = frames or dcfg.get("frames") or 1 + 4 * codec.config["temporal_stride"]
    where = dcfg.get("where") if data == dcfg.get("name") else None
    x = load_videos(data, split, size, frames, limit, where)  # (N, T, 3, H, W) uint8
    device = next(codec.parameters()).device
    ps, ss, codes, first = [], [], [], None
    for i in tqdm(range(0, len(x), batch_size), desc="reconstruct", leave=False):
        xb = to_channels(to_float(x[i : i + batch_size]), codec.config["in_channels"]).transpose(1, 2).to(device)
        c = codec.encode(xb)
        rb = codec.decode(c).clamp(-1, 1)
        b, ch, t, h, w = xb.shape
        rf, xf = (v.transpose(1, 2).reshape(b * t, ch, h, w).cpu() for v in (rb, xb))  # frames
        ps.append(psnr(rf, xf).reshape(b, t))
        ss.append(ssim(rf, xf).reshape(b, t))
        codes.append(c.cpu())
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
        "temporal_stride": codec.config["temporal_stride"],
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
    out_dir.mkdir(parents=True, exist_ok=True)
    save_image(video_grid(*first), out_dir / "recon_grid.png")
    result["grid"] = str(out_dir / "recon_grid.png")
    return result
