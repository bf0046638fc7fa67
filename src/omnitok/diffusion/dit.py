"""DiT: a transformer over image patches with adaLN-zero conditioning (Peebles & Xie, arXiv 2212.09748).

The timestep and the pooled text embedding make one vector c; every block regresses (shift, scale, gate) for its
attention and MLP from c, with the regression initialised to zero so each block starts as the identity
(adaLN-zero, sec. 3.2). With ``cross_attention`` each block also attends to the text tokens (PixArt-alpha,
arXiv 2310.00426). Positions: fixed 2-D sine-cosine embeddings.

``forward(x (B, C, H, W), t (B,), context (B, L, Dc), context_mask (B, L), pooled (B, Dc)) -> (B, C, H, W)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from omnitok.diffusion.layers import Attention
from omnitok.nn.timestep import TimestepEmbedding, timestep_embedding

__all__ = ["DiT"]


def sincos_2d(h: int, w: int, dim: int) -> Tensor:
    """(h * w, dim) fixed positions: half the channels encode the row, half the column."""
    rows = timestep_embedding(torch.arange(h).repeat_interleave(w), dim // 2)
    cols = timestep_embedding(torch.arange(w).repeat(h), dim - dim // 2)
    return torch.cat([rows, cols], dim=1)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]  # x (B, N, D); shift, scale (B, D)


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, context_dim: int | None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm_x = nn.LayerNorm(dim) if context_dim else None
        self.cross = Attention(dim, heads, context_dim) if context_dim else None
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: Tensor, c: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=1)  # (B, D) each
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), sh1, sc1))
        if self.cross is not None:
            x = x + self.cross(self.norm_x(x), context, context_mask)
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), sh2, sc2))


class DiT(nn.Module):
    """Patchify -> adaLN-zero transformer blocks -> per-patch linear head -> unpatchify."""

    def __init__(self, in_channels: int, input_size: int, patch_size: int = 2, dim: int = 128, depth: int = 4,
                 heads: int = 4, context_dim: int = 64, cross_attention: bool = True) -> None:
        super().__init__()
        if input_size % patch_size:
            raise ValueError(f"dit: input_size {input_size} is not divisible by patch_size {patch_size}")
        self.in_channels, self.patch, self.grid = in_channels, patch_size, input_size // patch_size
        self.embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.register_buffer("pos", sincos_2d(self.grid, self.grid, dim)[None], persistent=False)  # (1, N, D)
        self.time = TimestepEmbedding(dim)
        self.pooled = nn.Linear(context_dim, dim)
        self.blocks = nn.ModuleList([DiTBlock(dim, heads, context_dim if cross_attention else None)
                                     for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.head = nn.Linear(dim, patch_size * patch_size * in_channels)
        for m in (self.ada[1], self.head):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, t: Tensor, context: Tensor, context_mask: Tensor, pooled: Tensor) -> Tensor:
        B, C, H, W = x.shape
        g, p = self.grid, self.patch
        if (g * p, g * p) != (H, W):
            raise ValueError(f"dit: built for {g * p}x{g * p} inputs, got {H}x{W}")
        h = self.embed(x).flatten(2).transpose(1, 2) + self.pos  # (B, N, D), N = g * g
        c = self.time(t) + self.pooled(pooled)  # (B, D)
        for block in self.blocks:
            h = block(h, c, context, context_mask)
        shift, scale = self.ada(c).chunk(2, dim=1)
        h = self.head(modulate(self.norm(h), shift, scale))  # (B, N, p * p * C)
        h = h.view(B, g, g, p, p, C).permute(0, 5, 1, 3, 2, 4)  # (B, C, g, p, g, p)
        return h.reshape(B, C, H, W)
