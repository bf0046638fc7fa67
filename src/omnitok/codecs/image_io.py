"""Image and video files <-> codec tensors, with predictable channel conversion.

Conversion rules (applied by every loader in omnitok's image/video codecs):

* any PIL mode is first made RGB: greyscale (L, I, F) is replicated to R = G = B; palette images are
  expanded; an alpha channel (RGBA, LA, P with transparency) is composited onto a WHITE background;
* a codec built with ``in_channels=1`` then takes ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B``;
* pixel values map linearly from [0, 255] to [-1, 1]; outputs are clamped back to [0, 255] and rounded.

Sizes are never changed silently: a size the codec cannot take raises ValueError (see ``code_grid``);
``resize`` / ``crop`` here are explicit options.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["load_image", "load_video", "save_image", "save_video", "to_channels"]

LUMA = (0.299, 0.587, 0.114)


def to_channels(x: Tensor, channels: int) -> Tensor:
    """(..., C, H, W) with C in {1, 3, 4} -> (..., channels, H, W); see the module docstring for the rules.

    Alpha (C = 4, values in [-1, 1]) is composited onto white before any other step.
    """
    c = x.shape[-3]
    if c == 4:
        rgb, a = x[..., :3, :, :], (x[..., 3:, :, :] + 1) / 2
        x = rgb * a + (1 - a)  # white is +1
        c = 3
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    if c == 3 and channels == 1:
        w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x * w).sum(-3, keepdim=True)
    raise ValueError(f"to_channels: cannot convert {c} channels to {channels} (expected 1, 3 or 4 channels)")


def load_image(path: str | os.PathLike, channels: int = 3) -> Tensor:
    """An image file -> float (channels, H, W) in [-1, 1]; ValueError naming the path when unreadable."""
    from omnitok.data.media import decode_image

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such image file")
    x = decode_image(path.read_bytes(), name=str(path))  # (3, H, W), alpha on white, grey replicated
    return to_channels(x, channels)


def save_image(x: Tensor, path: str | os.PathLike) -> None:
    """float (C, H, W) in [-1, 1] (C = 1 or 3) -> PNG (or any Pillow format by suffix)."""
    from PIL import Image

    u8 = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    arr = u8[0].numpy() if u8.shape[0] == 1 else u8.permute(1, 2, 0).numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(path)


def load_video(path: str | os.PathLike, channels: int = 3) -> tuple[Tensor, float]:
    """An mp4 file -> (float (channels, T, H, W) in [-1, 1], fps)."""
    from omnitok.data.video_io import read_mp4

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such video file")
    frames = read_mp4(path.read_bytes(), name=str(path))  # (T, H, W, 3) uint8
    fps = _video_fps(path)
    x = torch.from_numpy(np.array(frames, copy=True)).permute(3, 0, 1, 2).float() / 127.5 - 1  # (3, T, H, W)
    return to_channels(x.transpose(0, 1), channels).transpose(0, 1), fps


def _video_fps(path: Path) -> float:
    try:
        import av

        with av.open(str(path)) as box:
            rate = box.streams.video[0].average_rate
            return float(rate) if rate else 8.0
    except Exception:  # fps is cosmetic; decoding errors were raised by read_mp4 already
        return 8.0


def save_video(x: Tensor, path: str | os.PathLike, fps: float = 8.0) -> None:
    """float (C, T, H, W) in [-1, 1] -> mp4 (H.264 via omnitok.data.video_io.write_mp4)."""
    from omnitok.data.video_io import write_mp4

    x = to_channels(x.detach().float().cpu().transpose(0, 1), 3)  # (T, 3, H, W)
    u8 = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(write_mp4(u8, fps, name=str(path)))
