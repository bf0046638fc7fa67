"""Residual VQ (SoundStream, arXiv 2107.03312): ``num_quantizers`` VQs on successive residuals,
with quantizer dropout so one model serves several bitrates.

Codes: ``forward(x)`` returns codes (B, ..., num_quantizers); ``forward(x, n_q=k)`` uses and
returns only the first k levels, codes (B, ..., k), and ``codes_to_latents`` accepts any
1 <= k <= num_quantizers levels (a lower bitrate). In training with quantizer dropout the latents
use only the first n levels (n drawn per batch, the same on every rank) and the codes of the
dropped levels are still filled in, by a plain lookup on the continuing residual, so codes always
have ``num_quantizers`` valid entries.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from omnitok.quantizers._utils import broadcast, code_histogram, is_distributed, usage_metrics
from omnitok.quantizers.base import (
    Quantizer,
    QuantizerOutput,
    check_codes,
    check_latents,
)
from omnitok.quantizers.vq import VectorQuantizer, check_float, check_int


class ResidualVQ(Quantizer):
    """``num_quantizers`` levels of :class:`VectorQuantizer` on successive residuals.

    Args:
        dim: feature dimension D.
        codebook_size: codes per level K.
        num_quantizers: number of levels n_q (>= 1).
        quantizer_dropout: probability, per training batch, of using only the first n levels,
            n uniform in [1, n_q] (SoundStream). 0 disables it.
        **vq_kwargs: passed to every level's :class:`VectorQuantizer` (distance, learning,
            decay, commitment_weight, kmeans_init, restart_threshold, codebook_dim, ...).

    The loss is the sum of the levels' losses. Metrics: ``level{i}/usage`` etc. per level, the
    mean over levels as ``usage`` / ``perplexity`` / ``dead_codes``, and ``active_quantizers``.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        num_quantizers: int,
        *,
        quantizer_dropout: float = 0.0,
        **vq_kwargs: Any,
    ) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, 1)
        check_int("codebook_size", codebook_size, 2)
        self.num_quantizers = check_int("num_quantizers", num_quantizers, 1)
        self.quantizer_dropout = check_float("quantizer_dropout", quantizer_dropout, 0.0, 1.0)
        self.levels = nn.ModuleList(
            VectorQuantizer(dim, codebook_size, **vq_kwargs) for _ in range(num_quantizers)
        )

    @property
    def codebook_size(self) -> int:
        return self.levels[0].codebook_size

    @property
    def num_codebooks(self) -> int:
        return self.num_quantizers

    # ----- public API with a bitrate argument ---------------------------------------------------
    def forward(self, x: Tensor, n_q: int | None = None) -> QuantizerOutput:  # type: ignore[override]
        """Quantize (B, ..., D) with the first ``n_q`` levels (all by default)."""
        check_latents(x, self.dim, type(self).__name__)
        n = self._check_n_q(n_q)
        lead = x.shape[:-1]
        out = self.quantize(x.reshape(-1, self.dim), n)
        return QuantizerOutput(
            latents=out.latents.reshape(*lead, self.dim),
            codes=out.codes.reshape(*lead, out.codes.shape[-1]),
            loss=out.loss,
            metrics=out.metrics,
        )

    def codes_to_latents(self, codes: Tensor) -> Tensor:
        """codes (B, ..., k) with 1 <= k <= num_quantizers -> latents (B, ..., D) from k levels."""
        k = codes.shape[-1] if isinstance(codes, Tensor) and codes.dim() else 0
        if not 1 <= k <= self.num_quantizers:
            raise ValueError(
                f"ResidualVQ: codes last dimension must be in [1, {self.num_quantizers}] "
                f"(num_quantizers levels), got shape {tuple(getattr(codes, 'shape', ()))}"
            )
        check_codes(codes, k, self.codebook_size, type(self).__name__)
        lead = codes.shape[:-1]
        return self.codes_to_latents_flat(codes.reshape(-1, k).long()).reshape(*lead, self.dim)

    def codes_to_latents_flat(self, codes: Tensor) -> Tensor:
        out = self.levels[0].codes_to_latents_flat(codes[:, :1])  # (N, D)
        for i in range(1, codes.shape[1]):  # same order of additions as quantize: bitwise equal
            out = out + self.levels[i].codes_to_latents_flat(codes[:, i : i + 1])
        return out

    # ----- internals ----------------------------------------------------------------------------
    def _check_n_q(self, n_q: int | None) -> int:
        if n_q is None:
            return self.num_quantizers
        if isinstance(n_q, bool) or not isinstance(n_q, int) or not 1 <= n_q <= self.num_quantizers:
            raise ValueError(f"n_q must be an integer in [1, {self.num_quantizers}], got {n_q!r}")
        return n_q

    def _dropout_levels(self, device: torch.device) -> int:
        """Levels to use in this training batch; drawn on rank 0 and broadcast so all ranks agree
        (every rank calls the broadcast each training step, whatever its data)."""
        n = self.num_quantizers
        if self.quantizer_dropout > 0:
            choice = torch.tensor([n], dtype=torch.long)
            if torch.rand(()) < self.quantizer_dropout:
                choice = torch.randint(1, n + 1, (1,))
            if is_distributed():
                choice = broadcast(choice.to(device), 0)
            n = int(choice)
        return n

    def quantize(self, x: Tensor, n_q: int | None = None) -> QuantizerOutput:
        n_req = self._check_n_q(n_q)
        n_use = min(n_req, self._dropout_levels(x.device)) if self.training else n_req
        residual = x  # (N, D)
        latents: Tensor | None = None
        loss = x.new_zeros(())
        codes: list[Tensor] = []
        metrics: dict[str, Tensor] = {}
        for i in range(n_use):
            out = self.levels[i].quantize(residual)
            residual = residual - out.latents
            latents = out.latents if latents is None else latents + out.latents
            loss = loss + out.loss
            codes.append(out.codes)
            metrics.update({f"level{i}/{k}": v for k, v in out.metrics.items()})
        if n_use < n_req:  # dropped levels: codes by plain lookup, no training updates
            with torch.no_grad():
                rest = residual.detach()
                for i in range(n_use, n_req):
                    idx, q = self.levels[i].encode_flat(rest)
                    rest = rest - q
                    codes.append(idx[:, None])
                    if self.wants_metrics:
                        metrics.update(
                            {
                                f"level{i}/{k}": v
                                for k, v in usage_metrics(code_histogram(idx, self.codebook_size)).items()
                            }
                        )
        if all(f"level{i}/usage" in metrics for i in range(n_req)):  # training, or eval with track_metrics()
            for key in ("usage", "perplexity", "dead_codes"):
                metrics[key] = torch.stack([metrics[f"level{i}/{key}"] for i in range(n_req)]).mean()
        metrics["active_quantizers"] = torch.tensor(float(n_use))  # a count, not a histogram: always there
        assert latents is not None  # n_use >= 1
        return QuantizerOutput(latents=latents, codes=torch.cat(codes, dim=1), loss=loss, metrics=metrics)
