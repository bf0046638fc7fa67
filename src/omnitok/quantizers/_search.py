"""Blocked nearest-code search: argmin / top-k over a codebook without the full (N, K) matrix.

The squared euclidean distance is computed in its matmul form
``||x||^2 - 2 x.c + ||c||^2``; ``||x||^2`` is constant per row so the argmin only needs
``||c||^2 - 2 x.c`` (one ``addmm`` per block). Blocks are sized from a memory budget
(default 256 MiB of scores), so K = 2^18 codes at N = 65,536 vectors needs a few hundred MiB
instead of 64 GiB. When a full row of K scores does not fit the budget the codebook is
chunked too and a running (min, argmin) is kept per row.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: default budget for one block of the (N, K) score matrix, in bytes
DEFAULT_BLOCK_BYTES = 256 * 2**20

_DISTANCES = ("euclidean", "cosine", "dot")


def _block_sizes(n: int, k: int, elem_bytes: int, block_bytes: int) -> tuple[int, int]:
    """Rows and columns of one score block so that rows * cols * elem_bytes <= block_bytes."""
    budget = max(block_bytes // elem_bytes, 1)
    min_rows = 64
    if k * min_rows <= budget:
        return max(min(n, budget // k), 1), k
    cols = max(budget // min_rows, 1)
    return max(min(n, min_rows), 1), cols


def _prepare(x: Tensor, codebook: Tensor, distance: str) -> tuple[Tensor, Tensor, Tensor | None, float]:
    """Return (queries, codes, per-code bias or None, alpha) so that score = bias + alpha * x.c
    is to be minimised."""
    if distance not in _DISTANCES:
        raise ValueError(f"distance must be one of {_DISTANCES}, got {distance!r}")
    if x.dim() != 2 or codebook.dim() != 2 or x.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"x must be (N, D) and codebook (K, D) with the same D, got {tuple(x.shape)} and {tuple(codebook.shape)}"
        )
    if codebook.dtype != x.dtype:
        codebook = codebook.to(x.dtype)
    if distance == "euclidean":
        return x, codebook, (codebook * codebook).sum(-1), -2.0
    if distance == "cosine":
        x = torch.nn.functional.normalize(x, dim=-1)
        codebook = torch.nn.functional.normalize(codebook, dim=-1)
    return x, codebook, None, -1.0  # maximise the inner product


@torch.no_grad()
def nearest_code(
    x: Tensor,
    codebook: Tensor,
    distance: str = "euclidean",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    return_scores: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Index of the nearest code for each row of ``x``.

    x: (N, D), codebook: (K, D) -> indices (N,) long.
    distance: "euclidean" (squared L2), "cosine" (both sides l2-normalised) or "dot"
    (largest inner product). With ``return_scores`` also returns the minimised score (N,):
    ``||c||^2 - 2 x.c`` for euclidean (add ``||x||^2`` for the squared distance), ``-x.c``
    otherwise. At most ``block_bytes`` of scores exist at any time.
    """
    x, cb, bias, alpha = _prepare(x.detach(), codebook.detach(), distance)
    n, k = x.shape[0], cb.shape[0]
    idx = torch.empty(n, dtype=torch.long, device=x.device)
    best = torch.empty(n, dtype=x.dtype, device=x.device)
    if n == 0 or k == 0:
        return (idx, best) if return_scores else idx
    rows, cols = _block_sizes(n, k, x.element_size(), block_bytes)
    cbt = cb.t()  # (D, K)
    scores = torch.empty(rows, min(cols, k), dtype=x.dtype, device=x.device)
    for r0 in range(0, n, rows):
        r1 = min(r0 + rows, n)
        xb = x[r0:r1]  # (nb, D)
        for c0 in range(0, k, cols):
            c1 = min(c0 + cols, k)
            s = scores[: r1 - r0, : c1 - c0]  # (nb, kb) view into the one buffer
            if bias is None:
                torch.mm(xb, cbt[:, c0:c1], out=s)
                s.mul_(alpha)
            else:
                torch.addmm(bias[c0:c1], xb, cbt[:, c0:c1], alpha=alpha, out=s)
            v, i = s.min(dim=1)  # (nb,)
            if c0 == 0:
                best[r0:r1] = v
                idx[r0:r1] = i
            else:
                better = v < best[r0:r1]
                best[r0:r1] = torch.where(better, v, best[r0:r1])
                idx[r0:r1] = torch.where(better, i + c0, idx[r0:r1])
    return (idx, best) if return_scores else idx


@torch.no_grad()
def topk_codes(
    x: Tensor,
    codebook: Tensor,
    k: int,
    distance: str = "euclidean",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest codes per row, best first: (scores (N, k), indices (N, k)).

    Scores are as in :func:`nearest_code` (smaller is nearer). Used by beam-search encoding.
    """
    x, cb, bias, alpha = _prepare(x.detach(), codebook.detach(), distance)
    n, kk = x.shape[0], cb.shape[0]
    if not 1 <= k <= kk:
        raise ValueError(f"k must be in [1, {kk}] (the codebook size), got {k}")
    out_v = torch.empty(n, k, dtype=x.dtype, device=x.device)
    out_i = torch.empty(n, k, dtype=torch.long, device=x.device)
    if n == 0:
        return out_v, out_i
    rows, cols = _block_sizes(n, kk, x.element_size(), block_bytes)
    cols = max(cols, k)
    cbt = cb.t()
    for r0 in range(0, n, rows):
        r1 = min(r0 + rows, n)
        xb = x[r0:r1]
        run_v: Tensor | None = None
        run_i: Tensor | None = None
        for c0 in range(0, kk, cols):
            c1 = min(c0 + cols, kk)
            if bias is None:
                s = torch.mm(xb, cbt[:, c0:c1]).mul_(alpha)
            else:
                s = torch.addmm(bias[c0:c1], xb, cbt[:, c0:c1], alpha=alpha)
            v, i = s.topk(min(k, c1 - c0), dim=1, largest=False, sorted=False)
            i = i + c0
            if run_v is not None:
                v = torch.cat([run_v, v], 1)
                i = torch.cat([run_i, i], 1)
                v, j = v.topk(k, dim=1, largest=False, sorted=False)
                i = i.gather(1, j)
            run_v, run_i = v, i
        assert run_v is not None and run_i is not None
        order = run_v.argsort(dim=1)
        out_v[r0:r1] = run_v.gather(1, order)
        out_i[r0:r1] = run_i.gather(1, order)
    return out_v, out_i


def naive_nearest_code(x: Tensor, codebook: Tensor, distance: str = "euclidean") -> Tensor:
    """Reference: full (N, K) distance matrix and argmin. For tests and benchmarks only."""
    if distance == "euclidean":
        return torch.cdist(x, codebook).argmin(dim=1)
    if distance == "cosine":
        x = torch.nn.functional.normalize(x, dim=-1)
        codebook = torch.nn.functional.normalize(codebook, dim=-1)
    return (x @ codebook.t()).argmax(dim=1)
