"""SwiGLU feed-forward (Shazeer 2020, arXiv 2002.05202): down(silu(gate(x)) * up(x))."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SwiGLU", "swiglu_hidden_dim"]


def swiglu_hidden_dim(dim: int, multiple_of: int = 256, ffn_mult: float = 8 / 3) -> int:
    """Llama / LlamaGen rule: ``ffn_mult * dim`` (2/3 of 4*dim) rounded up to ``multiple_of``."""
    hidden = int(ffn_mult * dim)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class SwiGLU(nn.Module):
    """Gated MLP with SiLU; weight names follow Llama (gate_proj, up_proj, down_proj) for easy export."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:  # (..., dim) -> (..., dim)
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
