"""All-gather of embedding batches across ranks with gradients, for contrastive losses (open_clip ``gather_features``).

Every rank holds ``b`` rows; the gathered (world * b, D) tensor is ordered by rank. The backward sums the gradient
of the gathered tensor over all ranks and hands each rank the rows it contributed, so when every rank's loss covers
only its *own* rows against all columns (``clip_loss`` / ``siglip_loss``) the per-rank losses add up to the loss
of the whole batch and each rank's rows get exactly that loss's gradient.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["gather", "world"]


def world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(x: Tensor) -> tuple[Tensor, int]:
    """x (b, ...) on every rank -> (all ranks' rows (world * b, ...), index of this rank's first row).

    Gradients flow back to ``x`` when it requires them; integer tensors (labels) are gathered without autograd.
    Every rank must hold the same number of rows.
    """
    rank, size = world()
    if size == 1:
        return x, 0
    if x.requires_grad:
        return _GatherWithGrad.apply(x), rank * x.shape[0]
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts), rank * x.shape[0]


class _GatherWithGrad(torch.autograd.Function):
    """(b, ...) per rank -> (world * b, ...); backward: the sum over ranks of the gathered gradient, own rows."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        rank, size = world()
        parts = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = (rank * x.shape[0], (rank + 1) * x.shape[0])
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start, end = ctx.rows
        return grad[start:end]
