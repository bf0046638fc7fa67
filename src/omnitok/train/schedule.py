"""Learning-rate schedule: linear warmup, then cosine decay to ``min_lr_ratio * lr`` (GPT-3 / Llama recipe)."""

from __future__ import annotations

import math

import torch

__all__ = ["lr_at", "set_lr"]


def lr_at(step: float, lr: float, warmup_steps: int, max_steps: int, min_lr_ratio: float = 0.1) -> float:
    """Learning rate for optimizer step ``step`` (0-based; fractional when the schedule follows a time budget).

    Warmup: ``lr * (step + 1) / warmup_steps`` for step < warmup_steps; then cosine from ``lr`` down to
    ``min_lr_ratio * lr`` at ``max_steps``; constant ``min_lr_ratio * lr`` afterwards.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    min_lr = lr * min_lr_ratio
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def set_lr(optimizer: torch.optim.Optimizer, step: int, lr: float, warmup_steps: int, max_steps: int,
           min_lr_ratio: float = 0.1, elapsed: float = 0.0, max_seconds: float = 0.0) -> float:
    """Set every parameter group to the schedule's rate at ``step`` -> that rate. With a time budget
    (``max_seconds`` > 0) the schedule follows whichever of steps and ``elapsed`` seconds is further along."""
    at = max(step, max_steps * elapsed / max_seconds) if max_seconds > 0 else step
    rate = lr_at(at, lr, warmup_steps, max_steps, min_lr_ratio)
    for group in optimizer.param_groups:
        group["lr"] = rate
    return rate
