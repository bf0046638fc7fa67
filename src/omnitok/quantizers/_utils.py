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


# ----- helpers added for the scalar / binary / gumbel quantizers (fsq, lfq, bsq, gumbel) ------------
#: codebooks larger than this get sparse (torch.unique) usage metrics and no running-window tracker
DENSE_USAGE_LIMIT = 1 << 20


def straight_through_exact(x: Tensor, q: Tensor) -> Tensor:
    """Straight-through whose forward value is *bitwise* q: ``q + (x - x.detach())``.

    ``x + (q - x).detach()`` rounds (a + (b - a) != b in floating point), so eval latents could
    differ from ``codes_to_latents(codes)`` in the last bit; here the added term is exactly zero.
    """
    return q + (x - x.detach())


def codes_usage_metrics(
    codes: Tensor, codebook_size: int, tracker: UsageTracker | None = None
) -> dict[str, Tensor]:
    """Batch usage metrics (+ running-window metrics when a tracker is given) for codes in [0, K).

    Codebooks above :data:`DENSE_USAGE_LIMIT` (implicit codebooks such as FSQ with many levels)
    are counted with ``torch.unique`` instead of a (K,) histogram.
    """
    codes = codes.detach().reshape(-1)
    if codebook_size <= DENSE_USAGE_LIMIT:
        counts = code_histogram(codes, codebook_size)
        metrics = usage_metrics(counts)
        if tracker is not None:
            metrics.update(tracker.update(counts))
        return metrics
    _, counts = torch.unique(codes, return_counts=True)
    counts = counts.float()
    p = counts / counts.sum().clamp_min(1.0)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    used = float(counts.numel())
    return {
        "usage": torch.tensor(used / codebook_size),
        "perplexity": entropy.exp(),
        "dead_codes": torch.tensor(float(codebook_size) - used),
    }


def binary_entropy_from_logits(logits: Tensor) -> Tensor:
    """Elementwise entropy (nats) of Bernoulli(sigmoid(logits)), stable for large |logits|."""
    p = torch.sigmoid(logits)
    # H = -p log p - (1-p) log(1-p) = softplus(l) - p * l
    return torch.nn.functional.softplus(logits) - p * logits


def split_bits(num_bits: int, group_size: int) -> list[int]:
    """Split ``num_bits`` into ceil(num_bits / group_size) balanced groups, each <= group_size."""
    if group_size < 1:
        raise ValueError(f"entropy_group_size must be >= 1, got {group_size}")
    n_groups = -(-num_bits // group_size)
    base, extra = divmod(num_bits, n_groups)
    return [base + 1 if g < extra else base for g in range(n_groups)]


def factorized_bit_entropy(
    logits: Tensor, group_size: int = 1, chunk: int = 16384
) -> tuple[Tensor, Tensor]:
    """Entropy terms of the LFQ / BSQ entropy loss without an (N, 2^d) matrix.

    ``logits`` (N, d) are per-bit logits: p(bit_i = 1 | x_n) = sigmoid(logits[n, i]). Under this
    parametrisation the code distribution q(c | x_n) over the 2^d codes is a product of independent bits
    (MAGVIT-v2's softmax over -||z - c||^2 factorises exactly this way for c in {-1, 1}^d).

    Returns ``(per_sample, codebook)``:
      per_sample = mean_n H(q(. | x_n)) -- *exact*: a sum of d binary entropies.
      codebook   = H(mean_n q(. | x_n)) -- the batch average is no longer a product, so the bits are
                   split into groups of at most ``group_size`` bits; each group's 2^g-way average is
                   computed exactly (an (N, 2^g) matrix, in chunks of ``chunk`` rows) and the group
                   entropies are summed. Exact when group_size >= d; an upper bound otherwise
                   (subadditivity of entropy), tight when groups are independent in the batch.
                   group_size=1 is BSQ's per-bit factorised approximation (arXiv 2406.07548, Sec. 3.3).
    """
    n, d = logits.shape
    per_sample = binary_entropy_from_logits(logits).sum(-1).mean()
    if group_size == 1:  # per-bit marginals: H(mean_n p_i) summed over bits, O(N d)
        p_mean = torch.sigmoid(logits).mean(0).clamp(1e-7, 1 - 1e-7)  # (d,)
        codebook = -(p_mean * p_mean.log() + (1 - p_mean) * (1 - p_mean).log()).sum()
        return per_sample, codebook
    sizes = split_bits(d, group_size)
    # block-diagonal (d, S) pattern, S = sum_g 2^g: column j of group g is that group's sub-code j,
    # so one matmul gives every group's log q(sub-code | x) side by side
    pattern = logits.new_zeros(d, sum(1 << g for g in sizes))
    r0 = c0 = 0
    for g in sizes:
        pattern[r0 : r0 + g, c0 : c0 + (1 << g)] = index_to_bits(torch.arange(1 << g, device=logits.device), g).T
        r0, c0 = r0 + g, c0 + (1 << g)
    # log q(sub-code | x) = sum_bits [b log p1 + (1 - b) log p0] = logits @ pattern + sum_group log p0,
    # since log p1 - log p0 = logits exactly
    member = torch.block_diag(*[logits.new_ones(g, 1) for g in sizes])  # (d, G) bit -> its group
    column_group = torch.repeat_interleave(
        torch.arange(len(sizes), device=logits.device),
        torch.tensor([1 << g for g in sizes], device=logits.device),
    )  # (S,) group of each column
    log_p0 = torch.nn.functional.logsigmoid(-logits)  # (N, d) log p(bit = 0)
    total = logits.new_zeros(pattern.shape[1])
    for lg, l0 in zip(logits.split(chunk), log_p0.split(chunk)):  # (n_c, d) each
        log_q = torch.addmm((l0 @ member)[:, column_group], lg, pattern)  # (n_c, S)
        total = total + log_q.exp().sum(0)
    avg = total / n  # (S,) per group: the batch-average distribution over its 2^g sub-codes
    codebook = -(avg * torch.log(avg.clamp_min(1e-12))).sum()  # sum of the group entropies
    return per_sample, codebook


def bits_to_index(bits: Tensor) -> Tensor:
    """(..., d) {0,1} bits (bool or integer), most significant first -> (...,) int64 index."""
    d = bits.shape[-1]
    if bits.device.type == "cpu":
        # one integer matrix-vector product: exact, and 2-3x faster on a CPU than a (..., d) int64 product
        # and a sum; int32 while the index fits (d <= 31). CUDA has no integer mv, hence the other branch.
        dtype = torch.int32 if d <= 31 else torch.long
        weights = 1 << torch.arange(d - 1, -1, -1, dtype=dtype)  # (d,)
        return torch.mv(bits.reshape(-1, d).to(dtype), weights).long().reshape(bits.shape[:-1])
    weights = 1 << torch.arange(d - 1, -1, -1, device=bits.device, dtype=torch.long)
    return (bits.long() * weights).sum(-1)


def index_to_bits(index: Tensor, d: int) -> Tensor:
    """(...,) int64 index in [0, 2^d) -> (..., d) {0,1} int64 bits, most significant first."""
    shifts = torch.arange(d - 1, -1, -1, device=index.device, dtype=torch.long)
    return (index.long().unsqueeze(-1) >> shifts) & 1


# ----- distributed helpers for codebook quantizers (vq.py, rvq.py, aq.py) -----------------------
def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def all_gather_rows(t: Tensor) -> Tensor:
    """Concatenate every rank's rows (N_r, ...) in rank order; ranks may hold different N_r.

    Sizes are all-gathered first, each rank pads to the largest, then the padding is dropped.
    A collective: every rank must call it (also with N_r = 0). Outside torch.distributed: t.
    """
    if not is_distributed():
        return t
    world = dist.get_world_size()
    n = torch.tensor([t.shape[0]], dtype=torch.long, device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    counts = [int(s) for s in sizes]
    longest = max(counts)
    padded = t.new_zeros((longest, *t.shape[1:]))
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts)], dim=0)


@torch.no_grad()
def sample_rows_synced(x: Tensor, num: int) -> Tensor | None:
    """``num`` rows drawn at random from the union of all ranks' ``x`` (N_r, C), identical on
    every rank: each rank offers up to ``num`` distinct random rows, rank 0 draws from the pool
    (without replacement when it is large enough) and broadcasts. Returns None (on every rank)
    when no rank has any row. A collective: every rank must call it with the same ``num``.
    """
    x = x.detach()
    offer = x[torch.randperm(x.shape[0], device=x.device)[:num]]  # (<= num, C)
    pool = all_gather_rows(offer)  # (P, C), the same P on every rank
    if pool.shape[0] == 0:
        return None
    if get_rank() == 0:
        if pool.shape[0] >= num:
            rows = pool[torch.randperm(pool.shape[0], device=x.device)[:num]].contiguous()
        else:
            # Fewer distinct rows than requested (e.g. a batch smaller than K): every row once, then
            # repeats with Gaussian jitter of 0.2 x the per-dimension std, so the repeated codes are distinct
            # and can split the region between them instead of dying as exact duplicates.
            extra = num - pool.shape[0]
            rep = pool[torch.randint(pool.shape[0], (extra,), device=x.device)]
            std = pool.float().std(0, keepdim=True) if pool.shape[0] > 1 else torch.ones_like(pool[:1])
            rep = rep + (0.2 * std * torch.randn(rep.shape, device=x.device)).to(pool.dtype)
            rows = torch.cat([pool[torch.randperm(pool.shape[0], device=x.device)], rep]).contiguous()
    else:
        rows = torch.empty((num, *x.shape[1:]), dtype=x.dtype, device=x.device)
    return broadcast(rows, 0)
