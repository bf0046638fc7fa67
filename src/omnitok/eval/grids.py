"""Pictures of originals beside reconstructions: one image to save for a batch of images or clips."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["image_grid", "video_grid"]


def image_grid(orig: Tensor, recon: Tensor) -> Tensor:
    """(N, C, H, W) pairs -> one (C, H_grid, W_grid) image; each cell is original | reconstruction."""
    n = orig.shape[0]
    cols = max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / cols))
    c, h, w = orig.shape[1:]
    grid = torch.ones(c, rows * (h + 2), cols * (2 * w + 4))
    for i in range(n):
        r, q = divmod(i, cols)
        y, x = r * (h + 2), q * (2 * w + 4)
        grid[:, y : y + h, x : x + w] = orig[i].float().cpu()
        grid[:, y : y + h, x + w : x + 2 * w] = recon[i].float().cpu().clamp(-1, 1)
    return grid


def video_grid(orig: Tensor, recon: Tensor) -> Tensor:
    """(N, C, T, H, W) -> rows alternating original / reconstruction frames, one pair of rows per clip."""
    n, c, t, h, w = orig.shape
    grid = torch.ones(c, n * 2 * (h + 2), t * (w + 2))
    for i in range(n):
        for j, src in enumerate((orig, recon)):
            y = (2 * i + j) * (h + 2)
            for k in range(t):
                grid[:, y : y + h, k * (w + 2) : k * (w + 2) + w] = src[i, :, k].float().cpu().clamp(-1, 1)
    return grid
