"""Image files and bytes <-> arrays and tensors, with predictable channel conversion.

Conversion rules (applied by every image and video loader in omnitok):

* any PIL mode is first made RGB: greyscale (L, I, F) is replicated to R = G = B; palette images are
  expanded; an alpha channel (RGBA, LA, P with transparency) is composited onto a WHITE background;
* a codec built with ``in_channels=1`` then takes ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B``
  (:func:`to_channels`);
* pixel values map linearly from [0, 255] to [-1, 1]; outputs are clamped back to [0, 255] and rounded.

Sizes are never changed silently: a size a codec cannot take raises ValueError (see ``code_grid``);
``resize`` / ``crop`` are explicit options. Every decoder raises ValueError naming the input on corrupt data.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "IMAGE_EXTS",
    "decode_image",
    "encode_png",
    "image_to_rgb_array",
    "load_image",
    "resize_rgb",
    "save_image",
    "tensor_to_uint8",
    "to_channels",
]

IMAGE_EXTS = ("png", "webp", "jpg", "jpeg")  # the image members a data shard may hold
LUMA = (0.299, 0.587, 0.114)


def _pil():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("omnitok image I/O needs Pillow: pip install 'omnitok[data]'") from e
    return Image


def encode_png(array: np.ndarray) -> bytes:
    """uint8 (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA -> PNG bytes (deterministic, zlib level 9)."""
    Image = _pil()
    a = np.asarray(array)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"encode_png expects uint8 (H, W), (H, W, 3) or (H, W, 4), got {a.dtype} {a.shape}")
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", optimize=False, compress_level=9)
    return buf.getvalue()


def image_to_rgb_array(img, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """A PIL image in any mode -> uint8 (H, W, 3), alpha composited onto ``background``."""
    Image = _pil()
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        img = Image.alpha_composite(base, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def resize_rgb(array: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size_h, size_w, 3) with Pillow's Lanczos filter (antialiased)."""
    Image = _pil()
    h, w = (size, size) if isinstance(size, int) else size
    if array.shape[:2] == (h, w):
        return array
    return np.asarray(Image.fromarray(array).resize((w, h), Image.Resampling.LANCZOS), dtype=np.uint8)


def decode_image(data: bytes, size: int | tuple[int, int] | None = None, *, name: str = "image") -> Tensor:
    """Image bytes -> float32 (3, H, W) in [-1, 1], resized to ``size`` (int: square) when given."""
    Image = _pil()
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = image_to_rgb_array(img)
    except Exception as e:  # Pillow raises several error types for bad data
        raise ValueError(f"{name}: cannot decode image, corrupt or truncated ({e})") from e
    if size is not None:
        rgb = resize_rgb(rgb, size)
    t = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).float()  # (3, H, W) in [0, 255]
    return t / 127.5 - 1.0


def tensor_to_uint8(x: Tensor) -> np.ndarray:
    """float (3, H, W) or (T, 3, H, W) in [-1, 1] -> uint8 (H, W, 3) or (T, H, W, 3)."""
    x = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


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
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such image file")
    x = decode_image(path.read_bytes(), name=str(path))  # (3, H, W), alpha on white, grey replicated
    return to_channels(x, channels)


def save_image(x: Tensor, path: str | os.PathLike) -> None:
    """float (C, H, W) in [-1, 1] (C = 1 or 3) -> PNG (or any Pillow format by suffix)."""
    Image = _pil()
    u8 = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    arr = u8[0].numpy() if u8.shape[0] == 1 else u8.permute(1, 2, 0).numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(path)
