"""``omnitok encode`` / ``omnitok decode``: media files <-> code files.

    omnitok encode photo.png clip.mp4 --codec runs/codec/emoji64-f8/codec [--out DIR_OR_FILE] [--crop] [--trim]
    omnitok decode photo.codes.safetensors --codec runs/codec/emoji64-f8/codec [--out FILE_OR_DIR]

Default outputs sit beside the input: ``photo.codes.safetensors`` and ``photo.decoded.png`` (never the
original file's name, so decoding cannot overwrite a source).

A code file (:mod:`omnitok.io.codes`) is a safetensors file with one int64 tensor ``codes`` shaped (*code_grid, num_codebooks)
(no batch dimension) and string metadata: ``omnitok_format`` ("codes/1"), ``modality``, ``codec_class``,
``codec_weights_sha256`` (the hash in the codec's config.json), ``source`` (input file name),
``input_shape`` (JSON), and ``fps`` / ``sample_rate`` for video / audio. ``decode`` refuses a code file
made by other weights (a different hash) unless ``--force``.

Images (.png .jpg .jpeg .webp .bmp .gif): greyscale replicated to RGB, alpha composited on white (see
:mod:`omnitok.io.image`); a size not divisible by the codec's f is an error unless ``--crop``
(centre crop to the largest multiple of f). Video (.mp4): T must be 1 + k * temporal_stride unless
``--trim`` (drop trailing frames to the most the codec takes). Audio (.wav .flac): handled by :class:`omnitok.codecs.audio.AudioCodec`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from torch import Tensor

from omnitok.codecs.base import Codec, load_codec
from omnitok.io.audio import encode_audio
from omnitok.io.codes import SUFFIX, read_codes, write_codes
from omnitok.io.image import load_image, save_image
from omnitok.io.video import load_video, save_video

__all__ = ["decode_file", "encode_file"]

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
VIDEO_EXTS = {".mp4"}
AUDIO_EXTS = {".wav", ".flac"}
OUTPUT_EXT = {"image": ".png", "video": ".mp4", "audio": ".wav"}


# ----- encode / decode one file ------------------------------------------------------------------
def _centre_crop(x: Tensor, f: int) -> Tensor:
    h, w = x.shape[-2:]
    nh, nw = h // f * f, w // f * f
    if nh == 0 or nw == 0:
        raise ValueError(f"image {h}x{w} is smaller than the codec's factor f={f}")
    top, left = (h - nh) // 2, (w - nw) // 2
    return x[..., top : top + nh, left : left + nw]


def encode_file(codec: Codec, path: str | Path, out: str | Path, crop: bool = False, trim: bool = False) -> Path:
    """Encode one media file into a code file at ``out``; return ``out``."""
    path, out = Path(path), Path(out)
    ext = path.suffix.lower()
    meta: dict[str, Any] = {"modality": codec.modality, "codec_class": type(codec).__name__,
                            "codec_weights_sha256": getattr(codec, "weights_sha256", None) or "",
                            "source": path.name}
    device = next(codec.parameters()).device
    if ext in AUDIO_EXTS:
        if codec.modality != "audio":
            raise ValueError(f"{path}: an audio file needs an audio codec, got a {codec.modality} codec")
        x = codec.load_audio(path)  # (1, 1, T)
        codes = codec.encode(x.to(device))[0]
        meta.update(sample_rate=codec.sample_rate, input_shape=list(x.shape[1:]))
    elif ext in IMAGE_EXTS:
        if codec.modality != "image":
            raise ValueError(f"{path}: an image file needs an image codec, got a {codec.modality} codec")
        x = load_image(path, codec.in_channels)  # (C, H, W)
        if crop:
            x = _centre_crop(x, codec.factor)
        try:
            codec.code_grid(tuple(x.shape))
        except ValueError as e:
            raise ValueError(f"{path}: {e} (or pass --crop)") from e
        codes = codec.encode(x[None].to(device))[0]
        meta["input_shape"] = list(x.shape)
    elif ext in VIDEO_EXTS:
        if codec.modality != "video":
            raise ValueError(f"{path}: a video file needs a video codec, got a {codec.modality} codec")
        x, fps = load_video(path, codec.in_channels)  # (C, T, H, W)
        if crop:
            x = _centre_crop(x, codec.factor)
        if trim:  # the most frames the codec takes (VideoCodec: 1 + k * stride; GlobalMotionCodec: 1 + k * w)
            t = x.shape[1]
            while t > 1 and not _takes(codec, (x.shape[0], t, *x.shape[2:])):
                t -= 1
            x = x[:, :t]
        try:
            codec.code_grid(tuple(x.shape))
        except ValueError as e:
            raise ValueError(f"{path}: {e} (or pass --trim / --crop)") from e
        codes = codec.encode(x[None].to(device))[0]
        meta.update(fps=fps, input_shape=list(x.shape))
    else:
        raise ValueError(
            f"{path}: unsupported file type {ext!r}; expected one of {sorted(IMAGE_EXTS | VIDEO_EXTS | AUDIO_EXTS)}"
        )
    write_codes(out, codes, meta)
    return out


def _takes(codec: Codec, shape: tuple[int, ...]) -> bool:
    try:
        codec.code_grid(shape)
    except ValueError:
        return False
    return True


def decode_file(codec: Codec, path: str | Path, out: str | Path, force: bool = False) -> Path:
    """Decode one code file into a media file at ``out`` (.png / .mp4 / .wav); return ``out``."""
    path, out = Path(path), Path(out)
    codes, meta = read_codes(path)
    if meta.get("modality") and meta["modality"] != codec.modality:
        raise ValueError(f"{path}: holds {meta['modality']} codes, but the codec is a {codec.modality} codec")
    made_by, have = meta.get("codec_weights_sha256") or "", getattr(codec, "weights_sha256", None) or ""
    if made_by and have and made_by != have and not force:
        raise ValueError(
            f"{path}: made by codec weights {made_by[:12]}..., but the codec given has {have[:12]}...; "
            "decode with the same codec folder (or --force)"
        )
    device = next(codec.parameters()).device
    y = codec.decode(codes[None].to(device))[0].cpu()
    out.parent.mkdir(parents=True, exist_ok=True)
    if codec.modality == "image":
        save_image(y, out)
    elif codec.modality == "video":
        save_video(y, out, fps=float(meta.get("fps", 8.0)))
    elif codec.modality == "audio":
        fmt = "FLAC" if out.suffix.lower() == ".flac" else "WAV"
        out.write_bytes(encode_audio(y.reshape(-1).numpy(), codec.sample_rate, format=fmt, name=str(out)))
    else:
        raise ValueError(f"decode: unsupported codec modality {codec.modality!r}")
    return out


# ----- CLI ---------------------------------------------------------------------------------------
def _load(args: argparse.Namespace) -> Codec:
    from omnitok.codecs.base import select_device

    return load_codec(args.codec).to(select_device(args.device))


def _targets(inputs: list[str], out: str | None, make_name) -> list[tuple[Path, Path]]:
    paths = [Path(p) for p in inputs]
    if out is None:
        return [(p, p.parent / make_name(p)) for p in paths]
    o = Path(out)
    if len(paths) == 1 and not o.is_dir() and o.suffix:
        return [(paths[0], o)]
    return [(p, o / make_name(p)) for p in paths]


def _strip(p: Path) -> str:
    name = p.name
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else p.stem


def add_arguments_encode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image (.png/.jpg), video (.mp4) or audio (.wav/.flac) files")
    parser.add_argument("--codec", required=True, help="codec folder (config.json + model.safetensors)")
    parser.add_argument("--out", default=None, help="output file (one input) or folder; default beside each input")
    parser.add_argument("--crop", action="store_true", help="centre-crop images/frames to a multiple of f")
    parser.add_argument("--trim", action="store_true", help="drop trailing video frames to T = 1 + k * stride")
    parser.add_argument("--device", default="auto")


def add_arguments_decode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="code files (*.codes.safetensors)")
    parser.add_argument("--codec", required=True, help="the codec folder that made the codes")
    parser.add_argument("--out", default=None, help="output file (one input) or folder; default beside each input")
    parser.add_argument("--force", action="store_true", help="decode even if the codec weights hash differs")
    parser.add_argument("--device", default="auto")


def run_encode(args: argparse.Namespace) -> int:
    codec = _load(args)
    for src, dst in _targets(args.inputs, args.out, lambda p: p.stem + SUFFIX):
        try:
            encode_file(codec, src, dst, crop=args.crop, trim=args.trim)
        except ValueError as e:
            print(f"omnitok encode: {e}", file=sys.stderr)
            return 1
        print(f"{src} -> {dst}")
    return 0


def run_decode(args: argparse.Namespace) -> int:
    codec = _load(args)
    ext = OUTPUT_EXT.get(codec.modality, ".bin")
    for src, dst in _targets(args.inputs, args.out, lambda p: _strip(p) + ".decoded" + ext):
        try:
            decode_file(codec, src, dst, force=args.force)
        except ValueError as e:
            print(f"omnitok decode: {e}", file=sys.stderr)
            return 1
        print(f"{src} -> {dst}")
    return 0
