"""Multi-scale STFT discriminator (EnCodec, Défossez et al. 2022, arXiv 2210.13438 sec. 3.4).

Each scale takes the complex STFT (real and imaginary parts as two channels) at one window size and
runs a small 2-D conv stack over (frequency, time); it returns a logit map and its intermediate
feature maps. Losses: hinge for the discriminator and the generator, and an L1 feature-matching loss
normalised by the mean magnitude of the real features (EnCodec eq. 3 and 4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["MultiScaleSTFTDiscriminator", "discriminator_loss", "feature_matching_loss", "generator_loss"]


class STFTDiscriminator(nn.Module):
    """One scale: (B, 1, T) -> (logits (B, 1, F', N'), features [...])."""

    def __init__(self, n_fft: int, channels: int = 16, layers: int = 3) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs: list[nn.Module] = [weight_norm(nn.Conv2d(2, channels, (3, 9), padding=(1, 4)))]
        for i in range(layers):
            convs.append(weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), dilation=(2**i, 1),
                                               padding=(2**i, 4))))
        convs.append(weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.out = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        spec = torch.stft(x[:, 0], self.n_fft, self.hop, window=self.window, return_complex=True)  # (B, F, N)
        h = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # (B, 2, N, F)
        feats = []
        for conv in self.convs:
            h = nn.functional.leaky_relu(conv(h), 0.2)
            feats.append(h)
        return self.out(h), feats


class MultiScaleSTFTDiscriminator(nn.Module):
    """STFT discriminators at several window sizes; forward returns per-scale (logits, features)."""

    def __init__(self, fft_sizes: Sequence[int] = (1024, 512, 256), channels: int = 16) -> None:
        super().__init__()
        self.discs = nn.ModuleList(STFTDiscriminator(n, channels) for n in fft_sizes)

    def forward(self, x: Tensor) -> list[tuple[Tensor, list[Tensor]]]:  # x: (B, 1, T)
        return [d(x) for d in self.discs]


def discriminator_loss(real: list[tuple[Tensor, list[Tensor]]], fake: list[tuple[Tensor, list[Tensor]]]) -> Tensor:
    """Hinge loss: mean over scales of relu(1 - D(x)) + relu(1 + D(G(z)))."""
    loss = real[0][0].new_zeros(())
    for (lr, _), (lf, _) in zip(real, fake):
        loss = loss + torch.relu(1 - lr).mean() + torch.relu(1 + lf).mean()
    return loss / len(real)


def generator_loss(fake: list[tuple[Tensor, list[Tensor]]]) -> Tensor:
    """Hinge generator loss: mean over scales of relu(1 - D(G(z)))."""
    return sum(torch.relu(1 - lf).mean() for lf, _ in fake) / len(fake)


def feature_matching_loss(real: list[tuple[Tensor, list[Tensor]]], fake: list[tuple[Tensor, list[Tensor]]]) -> Tensor:
    """Mean over scales and layers of |f(x) - f(G(z))|_1 / mean |f(x)| (real features detached)."""
    total, count = real[0][0].new_zeros(()), 0
    for (_, fr), (_, ff) in zip(real, fake):
        for a, b in zip(fr, ff):
            a = a.detach()
            total = total + (a - b).abs().mean() / a.abs().mean().clamp_min(1e-5)
            count += 1
    return total / max(count, 1)
