"""Classifier-free guidance (Ho & Salimans, arXiv 2207.12598) with both branches in ONE forward pass.

The batch holds the conditional rows first and the unconditional rows (the prompt with its condition replaced
by ``<|uncond|>``) after them: ``[c_0 .. c_{B-1}, u_0 .. u_{B-1}]`` (LlamaGen's layout). Both halves receive the
same sampled token each step. Guided logits are ``u + s (c - u)``, computed as ``torch.lerp(u, c, s)`` so that
``s = 1`` returns the conditional logits bit for bit.

The scale may vary over the generated positions (precomputed as a (S,) tensor, so no host work per step):

* ``constant``: ``s`` everywhere;
* ``linear``: from 1 at the first position to ``s`` at the last (LlamaGen's ``cfg_schedule="linear"``);
* an ``interval`` (lo, hi) in [0, 1] of the positions outside which the scale is 1 (guidance in a limited
  interval, Kynkaanniemi et al., arXiv 2404.07724).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["SCHEDULES", "batch_rows", "guidance_scales", "guide", "split_halves"]

SCHEDULES = ("constant", "linear")


def batch_rows(ids: Tensor, scales: Tensor | None) -> tuple[int, int, int, bool]:
    """ids (N, P) prompts -> (N, P, B, guided): with guidance (``scales`` given) the N = 2B rows are the B
    conditional rows, then their B unconditional ones; without it N = B."""
    N, P = ids.shape
    guided = scales is not None
    return N, P, N // 2 if guided else N, guided


def guidance_scales(scale: float, num_steps: int, schedule: str = "constant",
                    interval: Sequence[float] | None = None) -> Tensor:
    """(num_steps,) float32 guidance scale per generated position."""
    if schedule not in SCHEDULES:
        raise ValueError(f"cfg_schedule: expected one of {SCHEDULES}, got {schedule!r}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    s = torch.full((num_steps,), float(scale))
    if schedule == "linear":
        frac = torch.arange(num_steps, dtype=torch.float32) / max(num_steps - 1, 1)
        s = 1.0 + (float(scale) - 1.0) * frac
    if interval is not None:
        lo, hi = (float(x) for x in interval)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"cfg_interval: expected 0 <= lo <= hi <= 1, got {interval!r}")
        frac = (torch.arange(num_steps, dtype=torch.float32) + 0.5) / num_steps
        s = torch.where((frac >= lo) & (frac <= hi), s, torch.ones_like(s))
    return s


def split_halves(logits: Tensor) -> tuple[Tensor, Tensor]:
    """(2B, ...) -> conditional (B, ...), unconditional (B, ...)."""
    B = logits.shape[0] // 2
    return logits[:B], logits[B:]


def guide(logits: Tensor, scale: Tensor | float) -> Tensor:
    """(2B, ..., V) batched [cond; uncond] logits -> (B, ..., V) guided logits ``u + scale (c - u)``.

    scale: a float, or a tensor broadcastable to (B, ..., 1) (e.g. (B, 1) per row, (B, L, 1) per position).
    """
    cond, uncond = split_halves(logits.float())
    if not isinstance(scale, Tensor):
        scale = torch.tensor(float(scale), device=logits.device)
    return torch.lerp(uncond, cond, scale.to(cond.dtype))
