"""Mel filterbank and a log-mel front end in plain torch (no torchaudio).

HTK mel scale with slaney-style area normalisation; the codec losses (``codecs/losses/spectral.py``) and the
CLAP audio encoder (``align/audio_encoder.py``) share the filterbank.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LogMel", "hz_to_mel", "mel_filterbank", "mel_to_hz"]


def hz_to_mel(f: Tensor | float) -> Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(
    n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> Tensor:
    """Triangular mel filters (n_mels, n_fft // 2 + 1), each normalised to unit area (slaney)."""
    f_max = f_max if f_max is not None else sample_rate / 2
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (F,)
    mels = torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2, dtype=torch.float64)
    hz = mel_to_hz(mels)  # (n_mels + 2,)
    lower, center, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (freqs[None] - lower) / (center - lower).clamp_min(1e-9)
    down = (upper - freqs[None]) / (upper - center).clamp_min(1e-9)
    fb = torch.clamp(torch.minimum(up, down), min=0.0)  # (n_mels, F)
    fb = fb * (2.0 / (upper - lower))  # slaney area normalisation
    return fb.float()


class LogMel(nn.Module):
    """Waveforms (B, T) -> log10 mel power (B, n_mels, frames), frames = T // hop + 1 (centred, zero padded).

    Whisper's normalisation (Radford et al. 2022, arXiv 2212.04356, sec. 2.2): floor at the clip's maximum
    minus 8 (80 dB), then ``(x + 4) / 4`` so the values sit near [-1, 1].
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int = 400, hop: int = 160, n_mels: int = 64) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("fb", mel_filterbank(n_fft, n_mels, sample_rate), persistent=False)

    def frames(self, samples: Tensor) -> Tensor:
        """Number of frames for ``samples`` samples (any integer tensor)."""
        return samples // self.hop + 1

    def forward(self, x: Tensor) -> Tensor:
        spec = torch.stft(x.float(), self.n_fft, hop_length=self.hop, win_length=self.n_fft, window=self.window,
                          center=True, pad_mode="constant", return_complex=True)  # (B, F, N)
        mel = torch.einsum("mf,bfn->bmn", self.fb, spec.abs().pow(2))  # (B, n_mels, N)
        logmel = mel.clamp_min(1e-10).log10()
        logmel = torch.maximum(logmel, logmel.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (logmel + 4.0) / 4.0
