"""The audio tower: waveforms -> log-mel -> strided convolutions -> transformer -> one embedding.

The front end follows Whisper (Radford et al. 2022, arXiv 2212.04356, sec. 2.2): log-mel at 100 frames/s, then
1-D convolutions (kernel 3) with GELU; here every one has stride 2 (three of them: 12.5 frames/s, enough for
spoken digits and 8x less attention than at 100), then a bidirectional transformer (``align/encoder.py``) and
the mean over the clip's frames, projected into the shared space.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnitok.align.encoder import TransformerEncoder
from omnitok.nn.mel import LogMel

__all__ = ["AudioEncoder"]


class AudioEncoder(nn.Module):
    """waveforms (B, T) float in [-1, 1] at ``sample_rate``, lengths (B,) samples -> (B, embed_dim)."""

    def __init__(self, embed_dim: int, sample_rate: int = 16000, n_mels: int = 64, dim: int = 128,
                 n_layer: int = 2, n_head: int = 4, max_seconds: float = 4.0, n_conv: int = 2) -> None:
        super().__init__()
        self.sample_rate, self.max_samples = sample_rate, int(max_seconds * sample_rate)
        self.logmel = LogMel(sample_rate, n_fft=sample_rate // 40, hop=sample_rate // 100, n_mels=n_mels)
        self.convs = nn.ModuleList(nn.Conv1d(n_mels if i == 0 else dim, dim, 3, stride=2, padding=1)
                                   for i in range(n_conv))
        self.encoder = TransformerEncoder(dim, n_layer, n_head)
        self.proj = nn.Linear(dim, embed_dim, bias=False)

    def forward(self, wave: Tensor, lengths: Tensor) -> Tensor:
        wave = wave[:, : self.max_samples]  # longer clips keep their first max_seconds
        lengths = lengths.clamp(max=wave.shape[1])
        h = self.logmel(wave)  # (B, n_mels, N)
        frames = self.logmel.frames(lengths)  # (B,)
        # frames past a clip's end are zeroed before each convolution, as the convolution's own padding would be,
        # so a clip's embedding does not depend on the clips it is batched with
        valid = torch.arange(h.shape[-1], device=h.device)[None] < frames[:, None]  # (B, N)
        for conv in self.convs:
            h = F.gelu(conv(h * valid[:, None]))  # (B, dim, ceil(N / 2))
            frames = (frames - 1) // 2 + 1
            valid = torch.arange(h.shape[-1], device=h.device)[None] < frames[:, None]
        h = h.transpose(1, 2)  # (B, N / 2^n_conv, dim)
        return self.proj(self.encoder(h, valid))
