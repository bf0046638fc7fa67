"""Additive VQ (Babenko & Lempitsky 2014, "Additive quantization"): a latent is the sum of M
full-dimensional codewords, one from each of M codebooks.

Encoding is greedy (codebook m picks the code nearest to the residual left by codebooks < m) or a
beam search that keeps the ``beam_width`` best partial sums after each codebook and returns the
best full sum; codebooks are visited in their fixed order 0..M-1. Unlike :class:`ResidualVQ`,
all codebooks are trained jointly by gradient on the loss of the *sum*
(``||sg(x) - sum_m c_m||^2``), so later codebooks are not tied to one residual distribution.
Codes: (B, ..., M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnitok.quantizers._search import DEFAULT_BLOCK_BYTES, nearest_code, topk_codes
from omnitok.quantizers._utils import UsageTracker, all_reduce_sum, code_histogram, usage_metrics
from omnitok.quantizers.base import Quantizer, QuantizerOutput
from omnitok.quantizers.vq import ESTIMATORS, apply_estimator, check_choice, check_float, check_int, kmeans


class AdditiveVQ(Quantizer):
    """Sum of ``num_codebooks`` codewords, each from its own (K, D) codebook.

    Args:
        dim: feature dimension D.
        codebook_size: codes per codebook K (>= 2).
        num_codebooks: number of codebooks M (>= 1).
        beam_width: 1 = greedy encoding; B > 1 = beam search with B hypotheses.
        commitment_weight: weight of ``||x - sg(q)||^2``.
        codebook_weight: weight of ``||sg(x) - q||^2`` (trains all codebooks jointly).
        kmeans_init: on the first training batch, codebook m is k-means of the residual left by
            codebooks < m (all-reduced under torch.distributed).
        kmeans_iters: Lloyd iterations of that k-means.
        gradient_estimator: "ste" or "rotation" (arXiv 2410.06424).
    """

    search_block_bytes: int = DEFAULT_BLOCK_BYTES

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        num_codebooks: int,
        *,
        beam_width: int = 1,
        commitment_weight: float = 0.25,
        codebook_weight: float = 1.0,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        gradient_estimator: str = "ste",
    ) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, 1)
        self._codebook_size = check_int("codebook_size", codebook_size, 2)
        self._num_codebooks = check_int("num_codebooks", num_codebooks, 1)
        self.beam_width = check_int("beam_width", beam_width, 1)
        self.commitment_weight = check_float("commitment_weight", commitment_weight, 0.0)
        self.codebook_weight = check_float("codebook_weight", codebook_weight, 0.0)
        self.kmeans_init = bool(kmeans_init)
        self.kmeans_iters = check_int("kmeans_iters", kmeans_iters, 0)
        self.gradient_estimator = check_choice("gradient_estimator", gradient_estimator, ESTIMATORS)
        scale = 1.0 / num_codebooks
        self.codebooks = nn.Parameter(torch.randn(num_codebooks, codebook_size, dim) * scale)  # (M, K, D)
        self.register_buffer("initted", torch.tensor(not self.kmeans_init))
        self.usage_trackers = nn.ModuleList(UsageTracker(codebook_size) for _ in range(num_codebooks))
        self._init_seen = False

    @property
    def codebook_size(self) -> int:
        return self._codebook_size

    @property
    def num_codebooks(self) -> int:
        return self._num_codebooks

    def _load_from_state_dict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._init_seen = False
        super()._load_from_state_dict(*args, **kwargs)

    # ----- encoding -----------------------------------------------------------------------------
    @torch.no_grad()
    def encode_flat(self, x: Tensor) -> Tensor:
        """(N, D) -> codes (N, M): greedy when beam_width == 1, else beam search."""
        x = x.detach()
        cbs = self.codebooks.detach().to(x.dtype)  # (M, K, D)
        if self.beam_width == 1:
            residual = x
            codes = []
            for m in range(self.num_codebooks):
                idx = nearest_code(residual, cbs[m], "euclidean", self.search_block_bytes)  # (N,)
                residual = residual - cbs[m][idx]
                codes.append(idx)
            return torch.stack(codes, dim=1)
        return self._beam_search(x, cbs)

    def _beam_search(self, x: Tensor, cbs: Tensor) -> Tensor:
        n, d = x.shape
        width = self.beam_width  # hypotheses kept after each codebook
        child_k = min(width, self.codebook_size)  # children expanded per hypothesis
        residual = x[:, None, :]  # (N, b, D); one hypothesis to start
        err = (x * x).sum(-1, keepdim=True)  # (N, b) squared error of each hypothesis
        codes = torch.zeros(n, 1, 0, dtype=torch.long, device=x.device)  # (N, b, m)
        for m in range(self.num_codebooks):
            b = residual.shape[1]
            s, i = topk_codes(residual.reshape(-1, d), cbs[m], child_k, "euclidean", self.search_block_bytes)
            cand = (err[:, :, None] + s.view(n, b, child_k)).view(n, b * child_k)  # ||r - c||^2
            keep = min(width, b * child_k)
            err, sel = cand.topk(keep, dim=1, largest=False)  # (N, keep)
            parent = torch.div(sel, child_k, rounding_mode="floor")  # (N, keep)
            child = i.view(n, b * child_k).gather(1, sel)  # (N, keep)
            residual = residual.gather(1, parent[:, :, None].expand(n, keep, d)) - cbs[m][child]
            codes = torch.cat([codes.gather(1, parent[:, :, None].expand(n, keep, m)), child[:, :, None]], 2)
        best = (residual * residual).sum(-1).argmin(dim=1)  # exact final errors pick the winner
        return codes[torch.arange(n, device=x.device), best]  # (N, M)

    def codes_to_latents_flat(self, codes: Tensor) -> Tensor:
        out = self.codebooks[0][codes[:, 0]]
        for m in range(1, self.num_codebooks):
            out = out + self.codebooks[m][codes[:, m]]
        return out  # (N, D)

    # ----- training -----------------------------------------------------------------------------
    @torch.no_grad()
    def _kmeans_init(self, x: Tensor) -> None:
        residual = x.detach().float()
        for m in range(self.num_codebooks):
            res = kmeans(residual, self.codebook_size, self.kmeans_iters, False, self.search_block_bytes)
            if res is None:
                return
            centroids = res[0]
            self.codebooks.data[m] = centroids.to(self.codebooks.dtype)
            residual = (
                residual - centroids[nearest_code(residual, centroids, "euclidean", self.search_block_bytes)]
            )
        self.initted.fill_(True)

    def quantize(self, x: Tensor) -> QuantizerOutput:
        if self.training and not self._init_seen:
            if not bool(self.initted):
                self._kmeans_init(x)
            self._init_seen = bool(self.initted)
        codes = self.encode_flat(x)  # (N, M)
        q = self.codes_to_latents_flat(codes)  # (N, D), differentiable w.r.t. the codebooks
        if x.shape[0]:
            loss = self.commitment_weight * F.mse_loss(x, q.detach())
            loss = loss + self.codebook_weight * F.mse_loss(q, x.detach())
        else:
            loss = (x.sum() + q.sum()) * 0.0
        latents = apply_estimator(x, q, self.gradient_estimator)
        metrics: dict[str, Tensor] = {}
        if not self.wants_metrics:
            return QuantizerOutput(latents=latents, codes=codes, loss=loss, metrics=metrics)
        per: list[dict[str, Tensor]] = []
        for m in range(self.num_codebooks):
            counts = code_histogram(codes[:, m], self.codebook_size).to(x.device)
            if self.training:
                counts = all_reduce_sum(counts)
            stats = usage_metrics(counts)
            stats.update(self.usage_trackers[m].update(counts))
            per.append(stats)
            metrics.update({f"codebook{m}/{k}": v for k, v in stats.items()})
        for key in per[0]:
            metrics[key] = torch.stack([p[key] for p in per]).mean()
        return QuantizerOutput(latents=latents, codes=codes, loss=loss, metrics=metrics)
