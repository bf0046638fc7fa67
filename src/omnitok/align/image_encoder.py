"""The image tower: a small ConvNet over pixels -> one embedding per image.

A stride-2 stem, then per stage a residual block (``nn.conv.ResBlock2d``) and a stride-2 convolution, global
average pooling, a linear projection into the shared space. Pixels are (B, 3, H, W) in [-1, 1], the layout of
``omnitok.data``; images of another size are resized to ``image_size`` first (``align/api.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from omnitok.nn.conv import ResBlock2d, group_norm

__all__ = ["ConvImageEncoder"]


class ConvImageEncoder(nn.Module):
    """(B, 3, H, W) -> (B, embed_dim), not normalised; ``widths`` gives one stride-2 stage per entry (after the
    stride-2 stem: a 32 px image ends at 32 / 2^(1 + len(widths)) px)."""

    def __init__(self, embed_dim: int, widths: Sequence[int] = (32, 64, 128), image_size: int = 32) -> None:
        super().__init__()
        self.image_size = image_size
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, stride=2, padding=1)]  # half resolution at once
        c = widths[0]
        for w in widths:
            layers += [ResBlock2d(c, w), group_norm(w), nn.SiLU(), nn.Conv2d(w, w, 3, stride=2, padding=1)]
            c = w
        self.net = nn.Sequential(*layers)
        self.norm = group_norm(c)
        self.proj = nn.Linear(c, embed_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = F.silu(self.norm(self.net(x)))  # (B, C, H / 2^(S+1), W / 2^(S+1))
        return self.proj(h.mean(dim=(2, 3)))
