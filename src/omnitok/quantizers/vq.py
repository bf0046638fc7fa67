"""Vector quantization (VQ-VAE, van den Oord et al. 2017, arXiv 1711.00937) with the fixes the
field learned since: EMA codebooks with Laplace smoothing, k-means initialisation, dead-code
restart, cosine / low-dimensional l2-normalised codes (LlamaGen, arXiv 2406.06525) and the
rotation trick (arXiv 2410.06424).

The nearest-code search is blocked (:mod:`omnitok.quantizers._search`), so K = 2^18 codes work.
Under torch.distributed every rank keeps the same codebook: EMA sums and counts and the k-means
statistics are all-reduced, restart vectors are drawn once on rank 0 and broadcast, and every rank
runs the same collectives in the same order whatever its batch size (even 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnitok.quantizers._search import DEFAULT_BLOCK_BYTES, nearest_code
from omnitok.quantizers._utils import (
    UsageTracker,
    all_reduce_sum,
    code_histogram,
    rotation_trick,
    sample_rows_synced,
    straight_through,
    usage_metrics,
)
from omnitok.quantizers.base import Quantizer, QuantizerOutput

DISTANCES = ("euclidean", "cosine")
LEARNING = ("ema", "gradient")
ESTIMATORS = ("ste", "rotation")


# ----- argument checks shared by the codebook quantizers ------------------------------------------
def check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value  # type: ignore[return-value]


def check_float(name: str, value: object, lo: float, hi: float | None = None, hi_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        bound = f"in [{lo}, {hi}{')' if hi_open else ']'}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def apply_estimator(z: Tensor, q: Tensor, estimator: str) -> Tensor:
    """Forward value q with gradients to z (straight-through or rotation trick); q itself when no
    gradient is needed, so eval outputs equal ``codes_to_latents`` bit for bit."""
    q = q.detach()  # the codebook learns from the losses only, never through the latents
    if not (torch.is_grad_enabled() and z.requires_grad):
        return q
    return rotation_trick(z, q) if estimator == "rotation" else straight_through(z, q)


@torch.no_grad()
def kmeans(
    x: Tensor, num_clusters: int, iters: int, cosine: bool = False, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> tuple[Tensor, Tensor] | None:
    """Lloyd's k-means over the union of every rank's ``x`` (N_r, C).

    Returns (centroids (K, C), counts (K,)) identical on every rank, or None when no rank has data.
    Initial centroids are random data rows (drawn on rank 0, broadcast); each iteration all-reduces
    per-cluster sums and counts; empty clusters keep their centroid. A collective.
    """
    x = x.detach().float()
    centroids = sample_rows_synced(x, num_clusters)  # (K, C)
    if centroids is None:
        return None
    counts = torch.zeros(num_clusters, device=x.device)
    for step in range(iters + 1):
        idx = nearest_code(x, centroids, "dot" if cosine else "euclidean", block_bytes)  # (N,)
        stats = torch.zeros(num_clusters, x.shape[1] + 1, device=x.device)  # sums | count
        stats[:, :-1].index_add_(0, idx, x)
        stats[:, -1] = code_histogram(idx, num_clusters)
        all_reduce_sum(stats)
        counts = stats[:, -1]
        if step == iters:
            break
        new = stats[:, :-1] / counts.clamp_min(1.0)[:, None]
        if cosine:
            new = F.normalize(new, dim=-1)
        centroids = torch.where(counts[:, None] > 0, new, centroids)
    return centroids, counts


class VectorQuantizer(Quantizer):
    """Nearest-neighbour vector quantizer with one codebook of ``codebook_size`` codes.

    Args:
        dim: input feature dimension D.
        codebook_size: number of codes K (>= 2).
        codebook_dim: dimension of the codes; when it differs from ``dim`` the input goes through a
            linear projection in (D -> codebook_dim) and the code through one out (LlamaGen uses 8
            with ``distance="cosine"``).
        distance: "euclidean" or "cosine" (inputs and codes l2-normalised, nearest by angle).
        learning: "ema" (codebook = Laplace-smoothed EMA of assigned vectors) or "gradient"
            (codebook is a parameter trained by the codebook loss ``||sg(z) - q||^2``).
        decay: EMA decay of the cluster statistics (also of the usage used for restarts).
        commitment_weight: weight of ``||z - sg(q)||^2``.
        codebook_weight: weight of the codebook loss (``learning="gradient"`` only).
        kmeans_init: initialise the codebook by k-means on the first training batch.
        kmeans_iters: Lloyd iterations of that k-means.
        restart_threshold: a code is dead, and replaced by a random vector of the current batch,
            when its EMA usage falls below ``restart_threshold * (batch size / K)``, i.e. this
            fraction of uniform usage. 0 disables restarts.
        gradient_estimator: "ste" (straight-through) or "rotation" (arXiv 2410.06424).
        eps: Laplace smoothing of the EMA cluster sizes.

    Codes: (N, 1) in [0, K). Latents in eval equal ``codes_to_latents(codes)`` exactly.
    """

    #: bytes of one block of the (N, K) score matrix during the search; lower it to save memory
    search_block_bytes: int = DEFAULT_BLOCK_BYTES

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        codebook_dim: int | None = None,
        distance: str = "euclidean",
        learning: str = "ema",
        decay: float = 0.99,
        commitment_weight: float = 0.25,
        codebook_weight: float = 1.0,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        restart_threshold: float = 0.03,
        gradient_estimator: str = "ste",
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, 1)
        self._codebook_size = check_int("codebook_size", codebook_size, 2)
        self.codebook_dim = dim if codebook_dim is None else check_int("codebook_dim", codebook_dim, 1)
        self.distance = check_choice("distance", distance, DISTANCES)
        self.learning = check_choice("learning", learning, LEARNING)
        self.decay = check_float("decay", decay, 0.0, 1.0, hi_open=True)
        self.commitment_weight = check_float("commitment_weight", commitment_weight, 0.0)
        self.codebook_weight = check_float("codebook_weight", codebook_weight, 0.0)
        self.kmeans_init = bool(kmeans_init)
        self.kmeans_iters = check_int("kmeans_iters", kmeans_iters, 0)
        self.restart_threshold = check_float("restart_threshold", restart_threshold, 0.0)
        self.gradient_estimator = check_choice("gradient_estimator", gradient_estimator, ESTIMATORS)
        self.eps = check_float("eps", eps, 0.0)

        k, c = self._codebook_size, self.codebook_dim
        if self.codebook_dim != dim:
            self.proj_in: nn.Module = nn.Linear(dim, c)
            self.proj_out: nn.Module = nn.Linear(c, dim)
        else:
            self.proj_in = nn.Identity()
            self.proj_out = nn.Identity()
        init = torch.randn(k, c)
        if self.distance == "cosine":
            init = F.normalize(init, dim=-1)
        if self.learning == "ema":
            self.register_buffer("codebook", init)  # (K, C)
            self.register_buffer("embed_avg", init.clone())  # (K, C) EMA of assigned sums
        else:
            self.codebook = nn.Parameter(init)  # (K, C)
        self.register_buffer("cluster_size", torch.ones(k))  # (K,) EMA of assignment counts
        self.register_buffer("initted", torch.tensor(not self.kmeans_init))
        self.usage_tracker = UsageTracker(k)
        self._init_seen = False  # host-side cache of `initted`, saves a device sync per step

    @property
    def codebook_size(self) -> int:
        return self._codebook_size

    def _load_from_state_dict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._init_seen = False  # re-read `initted` from the loaded state
        super()._load_from_state_dict(*args, **kwargs)

    # ----- pieces -------------------------------------------------------------------------------
    def codes_space(self, x: Tensor) -> Tensor:
        """(N, D) input -> (N, C) vectors in code space (projected, l2-normalised for cosine)."""
        z = self.proj_in(x)
        return F.normalize(z, dim=-1) if self.distance == "cosine" else z

    def effective_codebook(self) -> Tensor:
        """(K, C) codes as used for lookup (l2-normalised for cosine); differentiable."""
        cb = self.codebook
        return F.normalize(cb, dim=-1) if self.distance == "cosine" else cb

    @torch.no_grad()
    def search(self, z: Tensor) -> Tensor:
        """(N, C) code-space vectors -> (N,) nearest code indices (blocked search)."""
        cb = self.effective_codebook().detach()
        return nearest_code(
            z.detach(), cb, "dot" if self.distance == "cosine" else "euclidean", self.search_block_bytes
        )

    @torch.no_grad()
    def encode_flat(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Pure lookup, no training updates: (N, D) -> (codes (N,), quantized latents (N, D))."""
        idx = self.search(self.codes_space(x))
        return idx, self.proj_out(self.effective_codebook()[idx])

    def codes_to_latents_flat(self, codes: Tensor) -> Tensor:
        return self.proj_out(self.effective_codebook()[codes[:, 0]])  # (N, D)

    # ----- training-time updates (collectives under torch.distributed) ------------------------
    @torch.no_grad()
    def _kmeans_init(self, z: Tensor) -> None:
        res = kmeans(
            z, self.codebook_size, self.kmeans_iters, self.distance == "cosine", self.search_block_bytes
        )
        if res is None:  # no rank had data: stay uninitialised, try again next batch
            return
        centroids, counts = res
        self.codebook.data.copy_(centroids)
        self.cluster_size.copy_(counts)
        if self.learning == "ema":
            self.embed_avg.copy_(centroids * counts[:, None])
        self.initted.fill_(True)

    @torch.no_grad()
    def _update(self, z: Tensor, idx: Tensor) -> Tensor:
        """EMA statistics (all-reduced) and dead-code restart. Returns global batch counts (K,)."""
        k = self.codebook_size
        z = z.detach().float()
        if self.learning == "ema":
            stats = torch.zeros(k, z.shape[1] + 1, device=z.device)  # per-code sums | count
            stats[:, :-1].index_add_(0, idx, z)
            stats[:, -1] = code_histogram(idx, k)
            all_reduce_sum(stats)
            counts, sums = stats[:, -1], stats[:, :-1]
            self.cluster_size.lerp_(counts, 1 - self.decay)
            self.embed_avg.lerp_(sums, 1 - self.decay)
            n = self.cluster_size.sum()
            smoothed = (self.cluster_size + self.eps) / (n + k * self.eps) * n  # Laplace smoothing
            new = self.embed_avg / smoothed[:, None]
            if self.distance == "cosine":
                new = F.normalize(new, dim=-1)
            self.codebook.copy_(new)
        else:
            counts = all_reduce_sum(code_histogram(idx, k).to(z.device))
            self.cluster_size.lerp_(counts, 1 - self.decay)
        if self.restart_threshold > 0:
            self._restart(z)
        return counts

    @torch.no_grad()
    def _restart(self, z: Tensor) -> None:
        k = self.codebook_size
        level = self.restart_threshold * self.cluster_size.sum() / k
        dead = self.cluster_size < level  # identical on every rank
        num_dead = int(dead.sum())  # the one host sync per step, needed to size the restart
        if num_dead == 0:
            return
        new = sample_rows_synced(z, num_dead)  # (num_dead, C), identical on every rank
        if new is None:
            return
        if self.distance == "cosine":
            new = F.normalize(new, dim=-1)
        self.codebook.data[dead] = new.to(self.codebook.dtype)
        self.cluster_size[dead] = level
        if self.learning == "ema":
            self.embed_avg[dead] = new * level

    # ----- forward ------------------------------------------------------------------------------
    def quantize(self, x: Tensor) -> QuantizerOutput:
        z = self.codes_space(x)  # (N, C)
        if self.training and not self._init_seen:
            if not bool(self.initted):
                self._kmeans_init(z)
            self._init_seen = bool(self.initted)
        idx = self.search(z)  # (N,)
        cb = self.effective_codebook()
        q = cb[idx]  # (N, C); differentiable w.r.t. the codebook in gradient learning
        if z.shape[0]:
            loss = self.commitment_weight * F.mse_loss(z, q.detach())
            if self.learning == "gradient":
                loss = loss + self.codebook_weight * F.mse_loss(q, z.detach())
        else:
            loss = z.sum() * 0.0
        latents = self.proj_out(apply_estimator(z, q, self.gradient_estimator))  # (N, D)
        metrics: dict[str, Tensor] = {}
        if self.training:
            counts = self._update(z, idx)
        elif self.eval_metrics:
            counts = code_histogram(idx, self.codebook_size)
        else:
            return QuantizerOutput(latents=latents, codes=idx[:, None], loss=loss, metrics=metrics)
        metrics = usage_metrics(counts)
        metrics.update(self.usage_tracker.update(counts))
        return QuantizerOutput(latents=latents, codes=idx[:, None], loss=loss, metrics=metrics)
