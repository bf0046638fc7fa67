"""What a real microphone does to speech, applied to synthesised clips: speed, pitch, loudness, noise, a room.

Synthetic voices are clean, level and dry; a person speaking into a laptop is none of these. Each function
takes mono float32 audio ``(T,)`` and returns a new array (the input is never changed):

- :func:`speed`       resampling by a factor: faster and higher together, as Kaldi's 0.9 / 1.0 / 1.1 speed
                      perturbation (Ko et al. 2015, "Audio augmentation for speech recognition");
- :func:`pitch_shift` a phase-vocoder time stretch followed by resampling: higher or lower, same duration;
- :func:`gain`        loudness in dB, clipped to [-1, 1] as a sound card would;
- :func:`add_noise`   white, pink or brown noise at a signal-to-noise ratio in dB;
- :func:`reverb`      a synthetic room: an exponentially decaying noise tail of a given RT60 (the time the
                      tail takes to fall by 60 dB), mixed with the dry signal;
- :func:`band_limit`  a narrow-band channel: down to a lower capture rate and back up (a telephone or an 8 kHz
                      recorder keeps nothing above half its rate).

:func:`draw` picks one set of parameters from a seeded generator (each effect on with its own probability,
in ranges that keep digits intelligible) and :func:`apply` runs them in a fixed order (speed, pitch, room,
noise, band, gain). The parameters are a plain dict, stored in the example's meta so a clip says what was done to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from omnitok.io.audio import resample

__all__ = [
    "AugmentConfig",
    "add_noise",
    "apply",
    "band_limit",
    "draw",
    "gain",
    "noise",
    "pitch_shift",
    "reverb",
    "speed",
    "time_stretch",
]

NOISE_COLOURS = ("white", "pink", "brown")


def _mono(audio: np.ndarray, who: str) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{who}: expected non-empty mono audio of shape (T,), got shape {x.shape}")
    return x


def speed(audio: np.ndarray, factor: float, sample_rate: int = 16000) -> np.ndarray:
    """Play ``factor`` times faster (and higher): length T / factor. The factor is rounded to 0.01 so the
    resampling ratio stays a small fraction."""
    x = _mono(audio, "speed")
    if not 0.5 <= factor <= 2.0:
        raise ValueError(f"speed: factor must be in [0.5, 2], got {factor}")
    src = round(sample_rate * round(factor, 2))
    return resample(x, src, sample_rate) if src != sample_rate else x.copy()


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    win = np.hanning(n_fft + 1)[:-1]
    pad = np.pad(x, (n_fft, n_fft + hop), mode="reflect" if len(x) > n_fft + hop else "constant")
    n = 1 + (len(pad) - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(pad, n_fft)[::hop][:n] * win  # (F, n_fft)
    return np.fft.rfft(frames, axis=1)  # (F, n_fft // 2 + 1)


def time_stretch(audio: np.ndarray, rate: float, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Phase-vocoder time stretch (Flanagan & Golden 1966; Laroche & Dolson 1999 phase propagation):
    ``rate`` > 1 is shorter, the pitch stays. Output length round(T / rate)."""
    x = _mono(audio, "time_stretch").astype(np.float64)
    if not 0.25 <= rate <= 4.0:
        raise ValueError(f"time_stretch: rate must be in [0.25, 4], got {rate}")
    spec = _stft(x, n_fft, hop)  # (F, K)
    n_frames, bins = spec.shape
    steps = np.arange(0.0, n_frames - 1, rate)  # fractional frame positions read
    steps = steps[steps < n_frames - 1]  # a float arange can overshoot its stop by a rounding error
    omega = 2 * np.pi * hop * np.arange(bins) / n_fft  # expected phase advance per hop
    phase = np.angle(spec[0])
    win = np.hanning(n_fft + 1)[:-1]
    out_len = n_fft + hop * (len(steps) - 1)
    out = np.zeros(out_len)
    norm = np.zeros(out_len)
    for k, t in enumerate(steps):
        i = int(t)
        frac = t - i
        mag = (1 - frac) * np.abs(spec[i]) + frac * np.abs(spec[i + 1])
        frame = np.fft.irfft(mag * np.exp(1j * phase), n_fft) * win
        out[k * hop : k * hop + n_fft] += frame
        norm[k * hop : k * hop + n_fft] += win**2
        dphi = np.angle(spec[i + 1]) - np.angle(spec[i]) - omega
        dphi -= 2 * np.pi * np.round(dphi / (2 * np.pi))
        phase = phase + omega + dphi
    out = out / np.maximum(norm, 1e-3)
    out = out[n_fft : n_fft + round(len(x) / rate)]  # drop the front padding
    return np.pad(out, (0, max(0, round(len(x) / rate) - len(out)))).astype(np.float32)


def pitch_shift(audio: np.ndarray, semitones: float, sample_rate: int = 16000) -> np.ndarray:
    """Raise (or lower, negative) the pitch by ``semitones`` at the same duration: stretch by the frequency
    ratio, then resample back (rounded to 1/100 of the ratio). Length T, give or take a sample or two."""
    x = _mono(audio, "pitch_shift")
    if abs(semitones) > 12:
        raise ValueError(f"pitch_shift: semitones must be within +-12, got {semitones}")
    ratio = round(2.0 ** (semitones / 12.0), 2)
    if ratio == 1.0:
        return x.copy()
    slow = time_stretch(x, 1.0 / ratio)  # longer by ratio, same pitch
    y = resample(slow, round(sample_rate * ratio), sample_rate)  # back to T samples, pitch times ratio
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]


def gain(audio: np.ndarray, db: float) -> np.ndarray:
    """Scale by ``db`` decibels and clip to [-1, 1]."""
    x = _mono(audio, "gain")
    return np.clip(x * np.float32(10.0 ** (db / 20.0)), -1.0, 1.0)


def noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-RMS noise: ``white`` (flat), ``pink`` (1/f power) or ``brown`` (1/f^2 power),
    shaped in the frequency domain."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"noise: colour must be one of {NOISE_COLOURS}, got {colour!r}")
    w = rng.standard_normal(n)
    if colour != "white":
        spec = np.fft.rfft(w)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        spec /= f ** (0.5 if colour == "pink" else 1.0)  # amplitude 1/sqrt(f) = power 1/f
        spec[0] = 0.0
        w = np.fft.irfft(spec, n)
    return (w / max(float(np.sqrt(np.mean(w**2))), 1e-12)).astype(np.float32)


def add_noise(
    audio: np.ndarray, snr_db: float, rng: np.random.Generator, colour: str = "white"
) -> np.ndarray:
    """Add ``colour`` noise so that signal power / noise power = ``snr_db`` dB (silent input: unchanged)."""
    x = _mono(audio, "add_noise")
    p = float(np.mean(x.astype(np.float64) ** 2))
    if p == 0.0:
        return x.copy()
    scale = math.sqrt(p / 10.0 ** (snr_db / 10.0))
    return np.clip(x + scale * noise(len(x), colour, rng), -1.0, 1.0).astype(np.float32)


def reverb(
    audio: np.ndarray, rt60: float, rng: np.random.Generator, sample_rate: int = 16000, wet: float = 0.3
) -> np.ndarray:
    """Convolve with a synthetic room response: a unit direct path plus a noise tail decaying 60 dB in
    ``rt60`` seconds, scaled to ``wet`` of the direct energy; the result keeps the input's peak level and length."""
    x = _mono(audio, "reverb")
    if rt60 <= 0:
        return x.copy()
    n = max(2, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 6.9078: -60 dB at rt60
    tail[0] = 0.0
    tail *= math.sqrt(wet / max(float(np.sum(tail**2)), 1e-12))
    ir = tail
    ir[0] = 1.0
    m = len(x) + n - 1
    size = 1 << (m - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[: len(x)]
    peak_in, peak_out = float(np.abs(x).max()), float(np.abs(y).max())
    if peak_out > 0:
        y *= peak_in / peak_out
    return y.astype(np.float32)


def band_limit(audio: np.ndarray, capture_rate: int, sample_rate: int = 16000) -> np.ndarray:
    """Keep only what a recording at ``capture_rate`` Hz holds: resample down to it and back to ``sample_rate``
    (the anti-aliasing filter removes everything above ``capture_rate / 2``). Same length as the input."""
    x = _mono(audio, "band_limit")
    if not 2000 <= capture_rate <= sample_rate:
        raise ValueError(f"band_limit: capture_rate must be in [2000, {sample_rate}] Hz, got {capture_rate}")
    if capture_rate == sample_rate:
        return x.copy()
    y = resample(resample(x, sample_rate, capture_rate), capture_rate, sample_rate)
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)].astype(np.float32)


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of :func:`draw` (defaults keep spoken digits intelligible to pocketsphinx)."""

    p_speed: float = 0.5
    speed_range: tuple[float, float] = (0.9, 1.1)
    p_pitch: float = 0.4
    pitch_range: tuple[float, float] = (-3.0, 3.0)  # semitones
    p_reverb: float = 0.3
    rt60_range: tuple[float, float] = (0.1, 0.4)  # seconds: a small room to a living room
    p_noise: float = 0.5
    snr_range: tuple[float, float] = (10.0, 30.0)  # dB
    gain_range: tuple[float, float] = (-12.0, 3.0)  # dB, always applied
    p_band: float = 0.0  # off by default: clips drawn before it existed keep their effects
    band_range: tuple[int, int] = (8000, 12000)  # capture rate in Hz: a telephone-band recorder to 12 kHz


def draw(rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> dict[str, Any]:
    """One set of parameters: ``speed``, ``pitch`` (semitones), ``rt60`` (s), ``snr_db`` + ``noise``, ``gain_db``,
    ``band_hz`` (the capture rate; an effect that is off is left out). Every draw is made whether used or not, so
    the stream stays aligned; ``band_hz`` is drawn last, only when ``p_band > 0``, so the other effects of a key
    are the same with and without it."""
    u = rng.random(4)
    sp = round(float(rng.uniform(*config.speed_range)), 2)
    pi = round(float(rng.uniform(*config.pitch_range)), 1)
    rt = round(float(rng.uniform(*config.rt60_range)), 2)
    snr = round(float(rng.uniform(*config.snr_range)), 1)
    colour = NOISE_COLOURS[int(rng.integers(len(NOISE_COLOURS)))]
    g = round(float(rng.uniform(*config.gain_range)), 1)
    seed = int(rng.integers(2**31))
    out: dict[str, Any] = {}
    if u[0] < config.p_speed and sp != 1.0:
        out["speed"] = sp
    if u[1] < config.p_pitch and pi != 0.0:
        out["pitch"] = pi
    if u[2] < config.p_reverb:
        out["rt60"] = rt
    if u[3] < config.p_noise:
        out["snr_db"], out["noise"] = snr, colour
    out["gain_db"] = g
    out["seed"] = seed
    if config.p_band > 0:
        on = rng.random() < config.p_band
        band = int(round(float(rng.uniform(*config.band_range)), -3))
        if on and band < 16000:
            out["band_hz"] = band
    return out


def apply(audio: np.ndarray, params: dict[str, Any], sample_rate: int = 16000) -> np.ndarray:
    """Run the effects named in ``params`` (from :func:`draw`) in the order speed, pitch, room, noise, band,
    gain."""
    x = _mono(audio, "augment")
    rng = np.random.default_rng(int(params.get("seed", 0)))
    if "speed" in params:
        x = speed(x, float(params["speed"]), sample_rate)
    if "pitch" in params:
        x = pitch_shift(x, float(params["pitch"]), sample_rate)
    if "rt60" in params:
        x = reverb(x, float(params["rt60"]), rng, sample_rate)
    if "snr_db" in params:
        x = add_noise(x, float(params["snr_db"]), rng, str(params.get("noise", "white")))
    if "band_hz" in params:
        x = band_limit(x, int(params["band_hz"]), sample_rate)
    if "gain_db" in params:
        x = gain(x, float(params["gain_db"]))
    return x
