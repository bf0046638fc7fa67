"""Product VQ (Jégou et al. 2011, product quantization): D split into G groups, one codebook each.

Codes: (B, ..., G), code g indexes group g's codebook; K^G distinct latents from G * K codes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from omnitok.quantizers.base import Quantizer, QuantizerOutput
from omnitok.quantizers.vq import VectorQuantizer, check_int


class ProductVQ(Quantizer):
    """``groups`` independent :class:`VectorQuantizer` s, each on D / groups channels.

    Args:
        dim: feature dimension D, divisible by ``groups``.
        codebook_size: codes per group K.
        groups: number of groups G (>= 1).
        **vq_kwargs: passed to every group's :class:`VectorQuantizer` (``codebook_dim`` is then the
            per-group code dimension).

    The loss is the mean of the groups' losses; metrics ``group{g}/...`` and their mean.
    """

    def __init__(self, dim: int, codebook_size: int, groups: int, **vq_kwargs: Any) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, 1)
        check_int("codebook_size", codebook_size, 2)
        self.groups = check_int("groups", groups, 1)
        if dim % groups:
            raise ValueError(f"groups must divide dim={dim}, got groups={groups}")
        self.group_dim = dim // groups
        self.quantizers = nn.ModuleList(
            VectorQuantizer(self.group_dim, codebook_size, **vq_kwargs) for _ in range(groups)
        )

    @property
    def codebook_size(self) -> int:
        return self.quantizers[0].codebook_size

    @property
    def num_codebooks(self) -> int:
        return self.groups

    def quantize(self, x: Tensor) -> QuantizerOutput:
        parts = x.split(self.group_dim, dim=-1)  # G x (N, D/G)
        outs = [q.quantize(p) for q, p in zip(self.quantizers, parts)]
        metrics: dict[str, Tensor] = {}
        for g, o in enumerate(outs):
            metrics.update({f"group{g}/{k}": v for k, v in o.metrics.items()})
        if all("usage" in o.metrics for o in outs):  # training, or eval with track_metrics()
            for key in ("usage", "perplexity", "dead_codes"):
                metrics[key] = torch.stack([o.metrics[key] for o in outs]).mean()
        return QuantizerOutput(
            latents=torch.cat([o.latents for o in outs], dim=-1),  # (N, D)
            codes=torch.cat([o.codes for o in outs], dim=-1),  # (N, G)
            loss=torch.stack([o.loss for o in outs]).mean(),
            metrics=metrics,
        )

    def codes_to_latents_flat(self, codes: Tensor) -> Tensor:
        return torch.cat(
            [q.codes_to_latents_flat(codes[:, g : g + 1]) for g, q in enumerate(self.quantizers)], dim=-1
        )
