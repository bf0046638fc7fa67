"""Rotary position embeddings (RoFormer, arXiv 2104.09864), 1-D and multi-axis (2-D / 3-D).

Convention: the *split-halves* ("rotate_half") layout of Hugging Face Llama / Qwen3 and of Meta's reference
once its weights are permuted: frequency ``i`` rotates the pair ``(x[i], x[i + D/2])``. Exported weights need no
permutation because the model uses this layout natively.

Multi-axis positions follow M-RoPE (Qwen2-VL, arXiv 2409.12191): the D/2 frequencies are split into
``sections`` (one per axis, e.g. (t, row, col) for video); frequency ``i`` of section ``a`` is driven by the
position on axis ``a``. Giving every axis the same 1-D position reduces exactly to 1-D RoPE, so text tokens
keep their ordinary positions while image / video codes get (row, col) / (t, row, col).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["RotaryEmbedding", "apply_rotary", "default_sections", "rotate_half"]


def default_sections(head_dim: int, axes: int) -> tuple[int, ...]:
    """Split the ``head_dim // 2`` frequencies as evenly as possible over ``axes`` (extra ones go last)."""
    half = head_dim // 2
    base, extra = divmod(half, axes)
    return tuple(base + (1 if a >= axes - extra else 0) for a in range(axes))


def rotate_half(x: Tensor) -> Tensor:
    """(..., D) -> (..., D): (x1, x2) -> (-x2, x1) on the two halves."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x: (B, H, T, D); cos, sin: (B, T, D) -> (B, H, T, D), computed in x's dtype like Hugging Face."""
    cos = cos.unsqueeze(1).to(x.dtype)  # (B, 1, T, D)
    sin = sin.unsqueeze(1).to(x.dtype)
    return x * cos + rotate_half(x) * sin


class RotaryEmbedding(nn.Module):
    """Turns integer positions into (cos, sin) tables.

    ``positions``: (B, T) for 1-D, or (A, B, T) for ``axes = A`` position axes; a (B, T) tensor given to a
    multi-axis embedding is used on every axis (plain 1-D behaviour).
    """

    def __init__(self, head_dim: int, theta: float = 10000.0, axes: int = 1,
                 sections: tuple[int, ...] | list[int] | None = None) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"head_dim must be even for rotary embeddings, got {head_dim}")
        if axes < 1:
            raise ValueError(f"axes must be >= 1, got {axes}")
        sections = tuple(sections) if sections else default_sections(head_dim, axes)
        if len(sections) != axes or sum(sections) != head_dim // 2:
            raise ValueError(f"sections {sections} must have {axes} entries summing to head_dim/2 = {head_dim // 2}")
        self.head_dim, self.theta, self.axes, self.sections = head_dim, theta, axes, sections
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (D/2,)
        # axis_mask[a, i] = 1 when frequency i is driven by axis a
        owner = torch.repeat_interleave(torch.arange(axes), torch.tensor(sections))
        self.register_buffer("axis_mask", (owner[None, :] == torch.arange(axes)[:, None]).float(), persistent=False)

    def forward(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        inv_freq = self.inv_freq.float()
        if positions.dim() == 2 or self.axes == 1:
            if positions.dim() == 3:
                raise ValueError(f"positions of shape {tuple(positions.shape)} given to a 1-D rotary embedding")
            freqs = positions.float()[..., None] * inv_freq  # (B, T, D/2)
        elif positions.dim() == 3 and positions.shape[0] == self.axes:
            # exact: every frequency gets exactly one non-zero term
            freqs = (positions.float()[..., None] * (inv_freq * self.axis_mask)[:, None, None, :]).sum(0)
        else:
            raise ValueError(
                f"positions must be (B, T) or ({self.axes}, B, T), got shape {tuple(positions.shape)}")
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, D)
        return emb.cos(), emb.sin()
