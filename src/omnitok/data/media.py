"""Decoding and encoding helpers shared by sources and loaders, and the declared tensor layouts.

Layouts (what :class:`omnitok.data.dataset.ShardDataset` yields):
    image  float32 (3, H, W) in [-1, 1]     from PNG / WebP / JPEG (RGBA composited onto white)
    audio  float32 (1, T) in [-1, 1]        from FLAC / WAV, mono, at the requested sample rate
    video  float32 (T, 3, H, W) in [-1, 1]  from mp4 (PyAV)
Audio I/O and resampling live in :mod:`omnitok.data.audio_io` (numpy windowed-sinc, no torchaudio);
mp4 I/O lives in :mod:`omnitok.data.video_io`. Every decoder raises ValueError on corrupt input.
"""

from __future__ import annotations

import io

import numpy as np
import torch

__all__ = [
    "IMAGE_EXTS",
    "AUDIO_EXTS",
    "VIDEO_EXTS",
    "TEXT_EXTS",
    "decode_audio",
    "decode_image",
    "decode_text",
    "decode_video",
    "encode_png",
    "image_to_rgb_array",
    "resize_rgb",
    "tensor_to_uint8",
]

IMAGE_EXTS = ("png", "webp", "jpg", "jpeg")
AUDIO_EXTS = ("flac", "wav")
VIDEO_EXTS = ("mp4",)
TEXT_EXTS = ("txt",)


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


def decode_image(data: bytes, size: int | tuple[int, int] | None = None, *, name: str = "image") -> torch.Tensor:
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


def decode_audio(data: bytes, sample_rate: int | None = None, *, name: str = "audio") -> tuple[torch.Tensor, int]:
    """FLAC/WAV bytes -> (float32 (1, T) in [-1, 1], sample rate), resampled to ``sample_rate`` when given."""
    from omnitok.data.audio_io import read_audio

    wave, sr = read_audio(data, target_sr=sample_rate, name=name)  # (T,)
    return torch.from_numpy(np.array(wave, dtype=np.float32, copy=True)).float().unsqueeze(0), sr


def decode_video(data: bytes, size: int | tuple[int, int] | None = None, num_frames: int | None = None,
                 *, name: str = "video") -> torch.Tensor:
    """mp4 bytes -> float32 (T, 3, H, W) in [-1, 1]; frames resized to ``size``; first ``num_frames``
    frames kept (a shorter clip is padded by repeating its last frame)."""
    from omnitok.data.video_io import read_mp4

    frames = read_mp4(data, name=name)  # (T, H, W, 3) uint8
    if num_frames is not None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if frames.shape[0] >= num_frames:
            frames = frames[:num_frames]
        else:
            pad = np.repeat(frames[-1:], num_frames - frames.shape[0], axis=0)
            frames = np.concatenate([frames, pad], axis=0)
    if size is not None:
        frames = np.stack([resize_rgb(f, size) for f in frames])
    t = torch.from_numpy(np.array(frames, copy=True)).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    return t / 127.5 - 1.0


def decode_text(data: bytes, *, name: str = "text") -> str:
    """UTF-8 bytes -> str (ValueError on invalid UTF-8)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{name}: text is not valid UTF-8 ({e})") from e


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (3, H, W) or (T, 3, H, W) in [-1, 1] -> uint8 (H, W, 3) or (T, H, W, 3)."""
    x = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()
