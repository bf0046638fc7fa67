"""The symmetric InfoNCE loss of CLIP (Radford et al. 2021, arXiv 2103.00020, fig. 3), with label-aware targets.

``logits = scale * a @ b.T``; the loss is the mean of cross-entropy over rows (a -> b) and over columns (b -> a).
The usual targets are the diagonal: pair i is the only positive of row i. With few distinct captions (ten digits)
a batch holds many pairs of the same class, and the diagonal then pushes apart an image and a caption that say the
same thing. ``targets`` chooses what to do about it (given ``labels``, one id per pair):

* ``diagonal``  the plain CLIP loss; labels unused;
* ``label``     every pair with the same label is a positive, with equal weight (soft targets; SupCon-style,
                Khosla et al. 2020, arXiv 2004.11362, as used by UniCL, Yang et al. 2022, arXiv 2204.03610);
* ``dedup``     only the first pair of each label in the (global) batch takes part; the rest are dropped.

Under torch.distributed the embeddings are gathered (``align/gather.py``) and each rank returns the part of the
loss that its own rows make; the parts of all ranks add up to the loss of the whole batch (tested).
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnitok.align.gather import gather

__all__ = ["TARGETS", "clip_loss", "first_of_label", "soft_targets"]

TARGETS = ("diagonal", "label", "dedup")


def soft_targets(row_labels: Tensor, col_labels: Tensor) -> Tensor:
    """(n,), (m,) -> (n, m) float: 1 / (number of positives) where the labels agree, else 0."""
    same = (row_labels[:, None] == col_labels[None, :]).float()
    return same / same.sum(1, keepdim=True).clamp_min(1.0)


def first_of_label(labels: Tensor) -> Tensor:
    """(n,) -> bool (n,): True at the first occurrence of each label."""
    n = labels.shape[0]
    earlier = (labels[:, None] == labels[None, :]) & (torch.arange(n)[None, :] < torch.arange(n)[:, None])
    return ~earlier.any(1)


def _cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Sum over rows of -sum_j target_ij log softmax(logits)_ij; logits and target (n, m)."""
    return -(target * logits.log_softmax(-1)).sum()


def clip_loss(a: Tensor, b: Tensor, logit_scale: Tensor, labels: Tensor | None = None,
              targets: str = "diagonal") -> Tensor:
    """a, b (n, D) L2-normalised pairs (row i of a goes with row i of b); logit_scale a scalar (the inverse
    temperature, already exp'd and clamped); labels (n,) long when ``targets`` is ``label`` or ``dedup``.

    Returns a scalar: the mean of the a -> b and b -> a cross-entropies over the (global) batch, or, under
    torch.distributed, this rank's share of it.
    """
    if targets not in TARGETS:
        raise ValueError(f"targets must be one of {TARGETS}, got {targets!r}")
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"a and b must be (n, D) of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if targets != "diagonal" and labels is None:
        raise ValueError(f"targets={targets!r} needs labels")
    a_all, start = gather(a)
    b_all, _ = gather(b)
    n, n_all = a.shape[0], a_all.shape[0]
    rows = torch.arange(start, start + n, device=a.device)  # this rank's rows in the global batch
    if targets == "diagonal":
        target = torch.zeros(n, n_all, device=a.device, dtype=a.dtype)
        target[torch.arange(n), rows] = 1.0
        keep_all = torch.ones(n_all, dtype=torch.bool, device=a.device)
    else:
        labels_all, _ = gather(labels)
        if targets == "label":
            target = soft_targets(labels_all[rows], labels_all).to(a.dtype)
            keep_all = torch.ones(n_all, dtype=torch.bool, device=a.device)
        else:  # dedup: the first pair of each label stays, its only positive is its own partner
            keep_all = first_of_label(labels_all.cpu()).to(a.device)
            target = torch.zeros(n, n_all, device=a.device, dtype=a.dtype)
            target[torch.arange(n), rows] = 1.0
    keep = keep_all[rows]  # (n,) this rank's rows that take part
    cols = keep_all[None, :]
    neg = torch.finfo(a.dtype).min
    logits_ab = (logit_scale * a @ b_all.T).masked_fill(~cols, neg)  # (n, n_all): a -> every b
    logits_ba = (logit_scale * b @ a_all.T).masked_fill(~cols, neg)  # (n, n_all): b -> every a
    total = _cross_entropy(logits_ab[keep], target[keep]) + _cross_entropy(logits_ba[keep], target[keep])
    return total / (2 * keep_all.sum().clamp_min(1))
