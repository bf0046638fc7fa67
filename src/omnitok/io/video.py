"""Video clips in and out as real mp4 (H.264) bytes through PyAV.

``write_mp4(frames (T, H, W, 3) uint8, fps) -> bytes`` encodes with libx264 (CRF 18, yuv420p by
default: the profile every player reads); when the installed PyAV wheel has no H.264 encoder it
falls back to MPEG-4 Part 2 (``mpeg4``, fixed quantiser) and says so with a warning.
``read_mp4(bytes) -> (T, H, W, 3) uint8`` decodes every frame. Corrupt or truncated data raises
``ValueError`` naming the clip.

Frames whose height or width is odd are padded by one edge pixel for yuv420p, and cropped back on
read (the true size is stored in the container's ``comment`` tag as ``omnitok_size=WxH``).

Tensors: :func:`decode_video` gives a data shard's layout float (T, 3, H, W); :func:`load_video` /
:func:`save_video` give a video codec's layout float (C, T, H, W); both in [-1, 1].
"""

from __future__ import annotations

import io
import os
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from omnitok.io.image import resize_rgb, to_channels

__all__ = [
    "VIDEO_EXTS",
    "decode_video",
    "h264_available",
    "load_video",
    "read_mp4",
    "save_video",
    "video_codec",
    "write_mp4",
]

VIDEO_EXTS = ("mp4",)  # the video members a data shard may hold


def _av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("omnitok video I/O needs PyAV: pip install 'omnitok[data]'") from e
    return av


def h264_available() -> bool:
    """True when PyAV can encode H.264 (libx264)."""
    return "libx264" in _av().codecs_available


def video_codec() -> str:
    """The encoder write_mp4 uses here: 'libx264', or 'mpeg4' when libx264 is missing."""
    return "libx264" if h264_available() else "mpeg4"


_warned_fallback = False


def write_mp4(
    frames: np.ndarray,
    fps: float,
    *,
    crf: int = 18,
    pix_fmt: str = "yuv420p",
    preset: str = "medium",
    name: str = "video",
) -> bytes:
    """Encode (T, H, W, 3) uint8 RGB frames as an mp4 and return its bytes.

    H.264 via libx264 with constant quality ``crf`` (0 = lossless, 18 = visually near-lossless),
    one thread and explicit timestamps; the bytes are usually, not always, the same on every run (see docs/data.md). ``pix_fmt`` 'yuv444p' keeps full colour
    resolution (fine for PyAV / ffmpeg, not every player). Falls back to 'mpeg4' when libx264 is absent.
    """
    global _warned_fallback
    av = _av()
    x = np.asarray(frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{name}: frames must have shape (T, H, W, 3), got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: cannot write a video with 0 frames")
    if x.dtype != np.uint8:
        raise ValueError(f"{name}: frames must be uint8, got {x.dtype}")
    if not fps or fps <= 0:
        raise ValueError(f"{name}: fps must be positive, got {fps}")
    t, h, w, _ = x.shape
    ph, pw = h + (h & 1), w + (w & 1)
    if (ph, pw) != (h, w):
        x = np.pad(x, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    codec = video_codec()
    if codec != "libx264" and not _warned_fallback:
        warnings.warn("PyAV has no libx264 encoder here; writing MPEG-4 Part 2 mp4 instead", stacklevel=2)
        _warned_fallback = True
    buf = io.BytesIO()
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = pw, ph
        stream.pix_fmt = pix_fmt if codec == "libx264" else "yuv420p"
        stream.codec_context.thread_count = 1
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": preset, "threads": "1"}  # x264 itself: one thread
        else:
            stream.codec_context.qscale = 2  # type: ignore[attr-defined]
            stream.codec_context.bit_rate = 0
        if (ph, pw) != (h, w):
            container.metadata["comment"] = f"omnitok_size={w}x{h}"
        for i, frame in enumerate(x):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 1) / rate  # explicit timestamps: the encoder must not guess them
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def read_mp4(source: bytes | bytearray | memoryview | str | Path, *, name: str | None = None) -> np.ndarray:
    """Decode an mp4 (bytes or path) to (T, H, W, 3) uint8 RGB frames.

    Raises ValueError naming ``name`` (or the path) when the data is empty, not a video, truncated
    (fewer frames than the container declares) or undecodable.
    """
    av = _av()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "video bytes"
    else:
        label = name or str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise ValueError(f"{label}: cannot read video file ({e})") from e
    if not data:
        raise ValueError(f"{label}: empty video file (0 bytes)")
    frames: list[np.ndarray] = []
    has_video, declared, size = True, 0, ""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            size = container.metadata.get("comment", "")
            if not container.streams.video:
                has_video = False
            else:
                stream = container.streams.video[0]
                declared = int(stream.frames or 0)
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]  # each (H, W, 3)
    except Exception as e:  # PyAV raises av.error.* (InvalidDataError, EOFError, ...)
        raise ValueError(f"{label}: cannot decode video, corrupt or truncated ({e})") from e
    if not has_video:
        raise ValueError(f"{label}: no video stream in the file")
    if not frames:
        raise ValueError(f"{label}: video has no decodable frames (corrupt or truncated)")
    if declared and len(frames) < declared:
        raise ValueError(f"{label}: truncated video ({len(frames)} of {declared} frames decoded)")
    out = np.stack(frames)  # (T, H, W, 3)
    if size.startswith("omnitok_size="):
        try:
            w, h = (int(v) for v in size.removeprefix("omnitok_size=").split("x"))
            out = out[:, :h, :w]
        except ValueError:
            pass
    return np.ascontiguousarray(out)


def decode_video(data: bytes, size: int | tuple[int, int] | None = None, num_frames: int | None = None,
                 *, name: str = "video") -> Tensor:
    """mp4 bytes -> float32 (T, 3, H, W) in [-1, 1]; frames resized to ``size``; first ``num_frames``
    frames kept (a shorter clip is padded by repeating its last frame)."""
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


def load_video(path: str | os.PathLike, channels: int = 3) -> tuple[Tensor, float]:
    """An mp4 file -> (float (channels, T, H, W) in [-1, 1], fps)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such video file")
    frames = read_mp4(path.read_bytes(), name=str(path))  # (T, H, W, 3) uint8
    fps = _video_fps(path)
    x = torch.from_numpy(np.array(frames, copy=True)).permute(3, 0, 1, 2).float() / 127.5 - 1  # (3, T, H, W)
    return to_channels(x.transpose(0, 1), channels).transpose(0, 1), fps


def _video_fps(path: Path) -> float:
    try:
        av = _av()
        with av.open(str(path)) as box:
            rate = box.streams.video[0].average_rate
            return float(rate) if rate else 8.0
    except Exception:  # fps is cosmetic; decoding errors were raised by read_mp4 already
        return 8.0


def save_video(x: Tensor, path: str | os.PathLike, fps: float = 8.0) -> None:
    """float (C, T, H, W) in [-1, 1] -> mp4 (H.264 via :func:`write_mp4`)."""
    x = to_channels(x.detach().float().cpu().transpose(0, 1), 3)  # (T, 3, H, W)
    u8 = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(write_mp4(u8, fps, name=str(path)))
