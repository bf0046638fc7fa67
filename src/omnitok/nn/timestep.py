"""Sinusoidal timestep embeddings (Transformer positions applied to diffusion time; DDPM, Ho et al., arXiv 2006.11239,
appendix B) and the small MLP every denoiser puts after them."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["TimestepEmbedding", "timestep_embedding"]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """t (B,) float or int (fractional timesteps allowed) -> (B, dim): [cos(t w_i), sin(t w_i)], w_i geometric."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedding(nn.Module):
    """t (B,) -> (B, dim): sinusoidal features of width ``freq_dim`` through Linear-SiLU-Linear."""

    def __init__(self, dim: int, freq_dim: int = 128) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(t, self.freq_dim))
