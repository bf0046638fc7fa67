"""Helpers shared by the quantizers: usage metrics, straight-through, rotation trick, distributed."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum a tensor across ranks in place (no-op outside torch.distributed); returns it."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast(t: Tensor, src: int = 0) -> Tensor:
    """Broadcast a tensor from ``src`` in place (no-op outside torch.distributed); returns it."""
    if is_distributed():
        dist.broadcast(t, src)
    return t


def straight_through(x: Tensor, q: Tensor) -> Tensor:
    """Forward value q, gradient passed to x unchanged (van den Oord et al., 2017)."""
    return x + (q - x).detach()


def rotation_trick(x: Tensor, q: Tensor, eps: float = 1e-6) -> Tensor:
    """Rotation trick (Fifty et al., arXiv 2410.06424): forward value q, gradient through a
    rotation + rescale that maps x onto q, treated as constant. x, q: (N, D)."""
    x_norm = x.norm(dim=-1, keepdim=True).clamp_min(eps)
    q_norm = q.norm(dim=-1, keepdim=True).clamp_min(eps)
    u = (x / x_norm).detach()
    v = (q / q_norm).detach()
    w = u + v
    w = w / w.norm(dim=-1, keepdim=True).clamp_min(eps)
    # R x = x - 2 w (w.x) + 2 v (u.x)   (Householder-style rotation taking u to v)
    rx = x - 2 * w * (w * x).sum(-1, keepdim=True) + 2 * v * (u * x).sum(-1, keepdim=True)
    scale = (q_norm / x_norm).detach()
    return scale * rx


def code_histogram(codes: Tensor, codebook_size: int) -> Tensor:
    """codes: any shape of ints in [0, K) -> (K,) float counts."""
    return torch.bincount(codes.reshape(-1), minlength=codebook_size).float()


def usage_metrics(counts: Tensor, prefix: str = "") -> dict[str, Tensor]:
    """From (K,) code counts: fraction of the codebook used, perplexity, dead codes."""
    total = counts.sum().clamp_min(1.0)
    p = counts / total
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    used = (counts > 0).float()
    return {
        f"{prefix}usage": used.mean().detach(),
        f"{prefix}perplexity": entropy.exp().detach(),
        f"{prefix}dead_codes": (1.0 - used).sum().detach(),
    }


class UsageTracker(torch.nn.Module):
    """Running-window code usage: an exponential moving count per code.

    ``update`` adds a batch histogram; a code is counted as used in the window while its
    decayed count stays above ``threshold``.
    """

    def __init__(self, codebook_size: int, decay: float = 0.99, threshold: float = 1e-3) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.decay = decay
        self.threshold = threshold
        self.register_buffer("counts", torch.zeros(codebook_size), persistent=False)

    @torch.no_grad()
    def update(self, batch_counts: Tensor) -> dict[str, Tensor]:
        self.counts.mul_(self.decay).add_(batch_counts.to(self.counts), alpha=1 - self.decay)
        used = (self.counts > self.threshold * (1 - self.decay)).float()
        p = self.counts / self.counts.sum().clamp_min(1e-12)
        entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
        return {
            "window_usage": used.mean(),
            "window_perplexity": entropy.exp(),
            "window_dead_codes": (1 - used).sum(),
        }
