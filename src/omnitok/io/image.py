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
    "MAX_PIXELS",
    "decode_image",
    "encode_png",
    "image_to_rgb_array",
    "load_image",
    "resize_rgb",
    "resize_tensor",
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


#: the most pixels an image file may have (a 4096 x 4096 picture); checked from the header before decoding, so
#: a huge or hostile file costs nothing (Pillow's own decompression-bomb limit is 89 M pixels, a warning)
MAX_PIXELS = 4096 * 4096


def _high_depth_to_8bit(img) -> np.ndarray | None:
    """Greyscale of more than 8 bits (PIL modes I;16*, I, F) -> uint8 (H, W, 3) by the file's own bit depth;
    None for every other mode. (Pillow's ``convert("RGB")`` clips such values at 255: a 16-bit PNG would
    come out almost all white.)"""
    if not (img.mode.startswith("I;16") or img.mode in ("I", "F")):
        return None
    a = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16") or (img.mode == "I" and a.max(initial=0) > 255):
        a = a / 65535.0 * 255.0  # 16-bit samples (PNG stores 16-bit grey as I;16, or as I in older Pillow)
    elif img.mode == "F" and a.max(initial=0) <= 1.0:
        a = a * 255.0  # float images in [0, 1]
    grey = np.clip(np.round(a), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def image_to_rgb_array(img, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """A PIL image in any mode -> uint8 (H, W, 3), alpha composited onto ``background``; 16-bit greyscale
    scaled by its bit depth, palette images expanded."""
    Image = _pil()
    deep = _high_depth_to_8bit(img)
    if deep is not None:
        return deep
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


class _TooLarge(Exception):
    pass


def decode_image(data: bytes, size: int | tuple[int, int] | None = None, *, name: str = "image") -> Tensor:
    """Image bytes -> float32 (3, H, W) in [-1, 1], resized to ``size`` (int: square) when given."""
    Image = _pil()
    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:  # from the header: nothing decoded yet
                raise _TooLarge(f"{name}: image of {w} x {h} pixels is larger than the {MAX_PIXELS:,} pixels "
                                "omnitok reads; resize it first")
            img.load()
            rgb = image_to_rgb_array(img)
    except _TooLarge as e:
        raise ValueError(str(e)) from None
    except Exception as e:  # Pillow raises several error types for bad data
        raise ValueError(f"{name}: cannot decode image, corrupt or truncated ({e})") from e
    if size is not None:
        rgb = resize_rgb(rgb, size)
    t = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).float()  # (3, H, W) in [0, 255]
    return t / 127.5 - 1.0


def resize_tensor(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """float (C, H, W) in [-1, 1] -> (C, size_h, size_w) with Pillow's Lanczos filter (C = 1 or 3)."""
    u8 = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()  # (C, H, W)
    rgb = u8.expand(3, -1, -1) if u8.shape[0] == 1 else u8
    out = torch.from_numpy(resize_rgb(np.ascontiguousarray(rgb.permute(1, 2, 0).numpy()), size).copy())
    out = out.permute(2, 0, 1).float() / 127.5 - 1.0  # (3, h, w)
    return out[:1] if x.shape[0] == 1 else out


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
