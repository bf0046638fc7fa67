"""Audio files in and out: FLAC / WAV through ``soundfile``, mono downmix, and a numpy resampler.

Everything here works on float32 numpy arrays in [-1, 1] of shape (T,) (mono). Stereo input is
downmixed by averaging the channels. Bad input raises ``ValueError`` naming the file or key:
undecodable or truncated bytes, empty audio, NaN/inf samples.

Resampling is band-limited windowed-sinc interpolation (Kaiser window), evaluated as a polyphase
filter bank: the ratio ``target/orig`` is reduced to ``up/down``, one filter per output phase, and
the input is read in strides of ``down`` — the same construction as torchaudio's
``sinc_interp_kaiser`` and Julius O. Smith's "Digital Audio Resampling"
(https://ccrma.stanford.edu/~jos/resample/). The cut-off is ``rolloff * min(orig, target) / 2`` so
downsampling does not alias. Only numpy is needed (scipy is not a dependency); torch only for
:func:`decode_audio`, which returns a tensor.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "AUDIO_EXTS",
    "decode_audio",
    "downmix",
    "encode_audio",
    "read_audio",
    "resample",
    "write_flac",
    "write_wav",
]

AudioSource = bytes | bytearray | memoryview | str | os.PathLike
AUDIO_EXTS = ("flac", "wav")  # the audio members a data shard may hold


def _soundfile():
    try:
        import soundfile
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("omnitok audio I/O needs soundfile: pip install 'omnitok[data]'") from e
    return soundfile


def downmix(audio: np.ndarray) -> np.ndarray:
    """(T,) or (T, C) -> (T,) float32, averaging the channels."""
    audio = np.asarray(audio)
    if audio.ndim == 1:
        return audio.astype(np.float32, copy=False)
    if audio.ndim != 2:
        raise ValueError(f"audio must have shape (T,) or (T, channels), got {audio.shape}")
    return audio.mean(axis=1, dtype=np.float64).astype(np.float32)


def _sinc_kernels(
    down: int, up: int, lowpass_width: int, rolloff: float, beta: float
) -> tuple[np.ndarray, int]:
    """Polyphase Kaiser-windowed sinc kernels: (up, K) float64 and the half-width in input samples."""
    base = min(down, up) * rolloff  # cut-off, in units where the input rate is ``down``
    width = math.ceil(lowpass_width * down / base)
    idx = np.arange(-width, width + down, dtype=np.float64) / down  # (K,)
    # t[i, k]: distance (in input-rate periods scaled by the cut-off) from input tap k to output phase i
    t = (-np.arange(up, dtype=np.float64)[:, None] / up + idx[None, :]) * base  # (up, K)
    t = np.clip(t, -lowpass_width, lowpass_width)
    window = np.i0(beta * np.sqrt(1.0 - (t / lowpass_width) ** 2)) / np.i0(beta)
    t = t * math.pi
    sinc = np.where(t == 0, 1.0, np.sin(t) / np.where(t == 0, 1.0, t))
    return sinc * window * (base / down), width


def resample(
    audio: np.ndarray,
    orig_sr: int,
    target_sr: int,
    *,
    lowpass_width: int = 16,
    rolloff: float = 0.95,
    beta: float = 8.6,
) -> np.ndarray:
    """Band-limited resampling of mono (T,) audio from ``orig_sr`` to ``target_sr`` Hz.

    Kaiser-windowed sinc with ``lowpass_width`` zero crossings per side (beta 8.6: about -90 dB
    side lobes) and cut-off ``rolloff * min(orig_sr, target_sr) / 2``. Output length is
    ``ceil(T * target_sr / orig_sr)``. Returns float32 (T',). Equal rates return the input unchanged.
    """
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got orig_sr={orig_sr}, target_sr={target_sr}")
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"resample expects mono audio of shape (T,), got {x.shape}; downmix first")
    if orig_sr == target_sr:
        return x
    g = math.gcd(int(orig_sr), int(target_sr))
    down, up = int(orig_sr) // g, int(target_sr) // g
    kernels, width = _sinc_kernels(down, up, lowpass_width, rolloff, beta)  # (up, K)
    n = x.shape[0]
    target_len = math.ceil(up * n / down)
    padded = np.pad(x.astype(np.float64), (width, width + down))
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernels.shape[1])[::down]  # (M, K)
    out = (frames @ kernels.T).reshape(-1)  # (M * up,)
    return out[:target_len].astype(np.float32)


def _check_riff(data: bytes, name: str) -> None:
    """libsndfile silently reads a truncated WAV; check the data chunk's declared size ourselves."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk == b"data":
            # 0 and sizes near 2**31 / 2**32 mark a streamed WAV of unknown length (espeak-ng --stdout, sox -)
            if 0 < size < 0x7FFF0000 and pos + 8 + size > len(data):
                raise ValueError(
                    f"{name}: truncated WAV (data chunk declares {size} bytes, {len(data) - pos - 8} present)"
                )
            return
        pos += 8 + size + (size & 1)


def read_audio(
    source: AudioSource,
    *,
    target_sr: int | None = None,
    name: str | None = None,
) -> tuple[np.ndarray, int]:
    """Decode FLAC / WAV / OGG bytes or a path to mono float32 (T,) and its sample rate.

    Stereo is downmixed (channel mean). With ``target_sr`` the audio is resampled to it (see
    :func:`resample`) and ``target_sr`` is returned. Raises ``ValueError`` naming ``name`` (or the path)
    for undecodable or truncated data, empty audio, and NaN / inf samples.
    """
    sf = _soundfile()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "audio bytes"
    else:
        path = Path(source)
        label = name or str(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ValueError(f"{label}: cannot read audio file ({e})") from e
    if not data:
        raise ValueError(f"{label}: empty audio file (0 bytes)")
    _check_riff(data, label)
    try:
        audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)  # (T, C)
    except Exception as e:  # libsndfile raises its own error types (LibsndfileError, RuntimeError)
        raise ValueError(f"{label}: cannot decode audio, corrupt or truncated ({e})") from e
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise ValueError(f"{label}: audio contains no samples")
    mono = downmix(audio)
    if not np.isfinite(mono).all():
        raise ValueError(f"{label}: audio contains NaN or infinite samples")
    peak = float(np.abs(mono).max())
    if peak > 1.0 + 1e-3:  # only float files can hold such values; codecs expect [-1, 1]
        warnings.warn(f"{label}: samples reach {peak:.4g}, outside [-1, 1] (a float file at the wrong scale?); "
                      "scaled down by that peak", stacklevel=2)
        mono = (mono / peak).astype(np.float32)
    if target_sr is not None and target_sr != sr:
        mono = resample(mono, int(sr), int(target_sr))
        sr = int(target_sr)
    return mono, int(sr)


def decode_audio(data: bytes, sample_rate: int | None = None, *, name: str = "audio") -> tuple[Tensor, int]:
    """FLAC/WAV bytes -> (float32 (1, T) in [-1, 1], sample rate), resampled to ``sample_rate`` when given."""
    import torch

    wave, sr = read_audio(data, target_sr=sample_rate, name=name)  # (T,)
    return torch.from_numpy(np.array(wave, dtype=np.float32, copy=True)).float().unsqueeze(0), sr


def _prepare(audio: np.ndarray, sample_rate: int, name: str) -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim == 2:
        x = downmix(x)
    if x.ndim != 1:
        raise ValueError(f"{name}: audio must have shape (T,) or (T, channels), got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: cannot write empty audio")
    if sample_rate <= 0:
        raise ValueError(f"{name}: sample_rate must be positive, got {sample_rate}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: audio contains NaN or infinite samples")
    return np.clip(x, -1.0, 1.0)


def encode_audio(
    audio: np.ndarray, sample_rate: int, *, format: str = "FLAC", subtype: str = "PCM_16", name: str = "audio"
) -> bytes:
    """Mono (T,) or (T, C) float audio in [-1, 1] -> encoded bytes (downmixed, clipped to [-1, 1])."""
    sf = _soundfile()
    x = _prepare(audio, sample_rate, name)
    buf = io.BytesIO()
    sf.write(buf, x, int(sample_rate), format=format, subtype=subtype)
    return buf.getvalue()


def write_flac(audio: np.ndarray, sample_rate: int, *, subtype: str = "PCM_16", name: str = "audio") -> bytes:
    """Mono float audio -> FLAC bytes (16-bit by default)."""
    return encode_audio(audio, sample_rate, format="FLAC", subtype=subtype, name=name)


def write_wav(audio: np.ndarray, sample_rate: int, *, subtype: str = "PCM_16", name: str = "audio") -> bytes:
    """Mono float audio -> WAV bytes (16-bit by default)."""
    return encode_audio(audio, sample_rate, format="WAV", subtype=subtype, name=name)
