"""Attention blocks the denoisers and the text encoder share: bidirectional self-attention, cross-attention to text
tokens under a padding mask, and a pre-norm transformer block."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Attention", "TransformerBlock", "key_mask"]


def key_mask(mask: Tensor | None) -> Tensor | None:
    """(B, L) bool, True = a real token -> (B, 1, 1, L) for SDPA (every row must keep at least one key)."""
    return None if mask is None else mask[:, None, None, :]


class Attention(nn.Module):
    """Multi-head attention; self-attention when ``context`` is None, else queries from x, keys/values from context."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention: dim {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(context_dim or dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """x (B, N, D); context (B, L, Dc) or None; mask (B, L) bool over the keys -> (B, N, D)."""
        B, N, D = x.shape
        ctx = x if context is None else context
        q = self.q(x).view(B, N, self.heads, D // self.heads).transpose(1, 2)  # (B, H, N, Dh)
        k, v = self.kv(ctx).view(B, ctx.shape[1], 2, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask(mask))  # (B, H, N, Dh)
        return self.out(y.transpose(1, 2).reshape(B, N, D))


class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention to ``context``, GELU MLP (4x)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm_x = nn.LayerNorm(dim) if context_dim else None
        self.cross = Attention(dim, heads, context_dim) if context_dim else None
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor, mask: Tensor | None = None, context: Tensor | None = None,
                context_mask: Tensor | None = None) -> Tensor:
        """x (B, N, D); mask (B, N) over x's own tokens; context (B, L, Dc) with context_mask (B, L)."""
        x = x + self.attn(self.norm1(x), mask=mask)
        if self.cross is not None and context is not None:
            x = x + self.cross(self.norm_x(x), context, context_mask)
        return x + self.mlp(self.norm2(x))
