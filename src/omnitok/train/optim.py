"""AdamW's parameter groups as the LM and CLIP trainers build them: weight decay on matrices only."""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["decay_groups"]


def decay_groups(model: nn.Module, weight_decay: float, embedding: str = "embed_tokens") -> list[dict[str, Any]]:
    """Two AdamW groups: ``weight_decay`` on the matrices, none on vectors (norms, biases, scales) and on the
    embeddings (parameters whose name contains ``embedding``); each trainable parameter once (a tied head is its
    embedding)."""
    decay, no_decay, seen = [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.dim() < 2 or embedding in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
