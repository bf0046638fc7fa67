"""A bidirectional pre-norm transformer over a padded batch of vectors, pooled to one vector per row.

Shared by the text and audio encoders: RMSNorm, rotary positions, SwiGLU (the LM's layers from ``omnitok.nn``),
a key-padding mask instead of the causal one, then the mean of the valid positions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from omnitok.nn.attention import Attention
from omnitok.nn.rmsnorm import RMSNorm
from omnitok.nn.rope import RotaryEmbedding
from omnitok.nn.swiglu import SwiGLU, swiglu_hidden_dim

__all__ = ["EncoderBlock", "TransformerEncoder", "masked_mean"]


def masked_mean(x: Tensor, valid: Tensor) -> Tensor:
    """x (B, T, C), valid bool (B, T) -> (B, C): the mean over valid positions (at least one per row)."""
    w = valid.to(x.dtype)[..., None]  # (B, T, 1)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


class EncoderBlock(nn.Module):
    """x + attn(norm(x)), then + mlp(norm(x)); attention sees every valid position (no causal mask)."""

    def __init__(self, dim: int, n_head: int) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(dim)
        self.attn = Attention(dim, n_head, n_head, dim // n_head)
        self.mlp_norm = RMSNorm(dim)
        self.mlp = SwiGLU(dim, swiglu_hidden_dim(dim, multiple_of=32))

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor) -> Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        return x + self.mlp(self.mlp_norm(x))


class TransformerEncoder(nn.Module):
    """(B, T, dim) with valid (B, T) -> pooled (B, dim)."""

    def __init__(self, dim: int, n_layer: int, n_head: int) -> None:
        super().__init__()
        if dim % n_head or (dim // n_head) % 2:
            raise ValueError(f"dim {dim} must split into {n_head} heads of even size")
        self.rope = RotaryEmbedding(dim // n_head)
        self.blocks = nn.ModuleList(EncoderBlock(dim, n_head) for _ in range(n_layer))
        self.norm = RMSNorm(dim)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        return masked_mean(self.tokens(x, valid), valid)

    def tokens(self, x: Tensor, valid: Tensor) -> Tensor:
        """(B, T, dim) -> the final normalised state of every position (B, T, dim), before pooling."""
        B, T, _ = x.shape
        positions = torch.arange(T, device=x.device).expand(B, T)
        cos, sin = self.rope(positions)  # (B, T, head_dim)
        # padding keys are hidden from every query; padded queries still see the valid keys (no empty row)
        mask = valid[:, None, None, :].expand(B, 1, T, T)  # (B, 1, T, T)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return self.norm(x)
