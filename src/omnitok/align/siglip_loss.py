"""The pairwise sigmoid loss of SigLIP (Zhai et al. 2023, arXiv 2303.15343, alg. 1): every (i, j) pair is a
binary problem, positive when i == j (or, with ``labels``, when the labels agree), with a learned scale and bias.

No softmax over the batch, so small batches lose less (the paper's sec. 4). Under torch.distributed each rank
scores its own rows against all gathered columns and returns that part of the loss; the parts add up to the loss
of the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from omnitok.align.gather import gather

__all__ = ["siglip_loss"]


def siglip_loss(a: Tensor, b: Tensor, logit_scale: Tensor, logit_bias: Tensor,
                labels: Tensor | None = None) -> Tensor:
    """a, b (n, D) L2-normalised pairs; logit_scale, logit_bias scalars (the paper initialises them to 10 and
    -10); labels (n,) long for label-aware positives, None for the diagonal.

    Returns ``-sum_ij log sigmoid(z_ij * (scale * a_i . b_j + bias)) / n_global`` (z = +1 / -1), or this rank's
    share of it under torch.distributed.
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"a and b must be (n, D) of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    b_all, start = gather(b)
    n, n_all = a.shape[0], b_all.shape[0]
    if labels is None:
        positive = torch.zeros(n, n_all, dtype=torch.bool, device=a.device)
        positive[torch.arange(n), torch.arange(start, start + n)] = True
    else:
        labels_all, _ = gather(labels)
        positive = labels_all[start:start + n, None] == labels_all[None, :]  # (n, n_all)
    z = positive.to(a.dtype) * 2 - 1
    logits = logit_scale * a @ b_all.T + logit_bias  # (n, n_all)
    return -F.logsigmoid(z * logits).sum() / n_all
