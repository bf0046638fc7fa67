"""Finite Scalar Quantization (Mentzer et al., arXiv 2309.15505).

Each of ``d = len(levels)`` channels is bounded and rounded to one of ``levels[i]`` integer values;
the codebook is implicit: every combination, ``prod(levels)`` codes. The index of a code is its
mixed-radix number (digit i in base ``levels[i]``, digit 0 least significant), so the maps
index <-> code are exact for ANY levels, odd or even, and an index is always in ``[0, prod(levels))``
(vector-quantize-pytorch issues #107 and #207 report negative / out-of-range indices).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from omnitok.quantizers._utils import (
    DENSE_USAGE_LIMIT,
    UsageTracker,
    codes_usage_metrics,
    straight_through_exact,
)
from omnitok.quantizers.base import Quantizer, QuantizerOutput

_MAX_CODEBOOK = 1 << 62  # indices are int64


class FSQ(Quantizer):
    """Finite scalar quantizer with an implicit ``prod(levels)`` codebook.

    Args:
        levels: number of values per channel, each >= 2 (e.g. ``[8, 8, 8, 5, 5, 5]`` = 64,000 codes).
        dim: input feature size D; when ``dim != len(levels) * num_codebooks`` linear projections map
            D -> codebook channels and back. Defaults to ``len(levels) * num_codebooks`` (no projection).
        num_codebooks: G independent FSQ groups over consecutive channel slices; codes are (..., G).
        eps: margin of the tanh bound, keeps ``round`` away from the half-way points at the edges.

    Channel i is bounded to ``tanh(z) * h`` with ``h = (L - 1) / 2 * (1 + eps)`` and rounded on a grid
    of L points spaced 1 apart and centred on 0: integers for odd L, half-integers (the half-level
    offset) for even L, so z = 0 sits at the centre of the range for every L (for L = 2 the decision
    boundary is z = 0, i.e. sign quantization). The value emitted is the grid point divided by
    ``(L - 1) / 2``: L evenly spaced values in [-1, 1]. The *digit* of a channel is its grid position
    ``0 .. L-1``.
    """

    def __init__(
        self,
        levels: Sequence[int],
        dim: int | None = None,
        num_codebooks: int = 1,
        eps: float = 1e-3,
    ) -> None:
        super().__init__()
        levels = list(levels)
        if not levels or any((not isinstance(v, int)) or isinstance(v, bool) or v < 2 for v in levels):
            raise ValueError(f"FSQ: levels must be a non-empty list of integers >= 2, got levels={levels}")
        if math.prod(levels) >= _MAX_CODEBOOK:
            raise ValueError(f"FSQ: prod(levels) must be < 2**62 so indices fit int64, got levels={levels}")
        if num_codebooks < 1:
            raise ValueError(f"FSQ: num_codebooks must be >= 1, got {num_codebooks}")
        if not (eps >= 0.0 and eps * (max(levels) - 1) < 1.0):
            raise ValueError(f"FSQ: eps must be in [0, 1 / (max(levels) - 1)) for levels={levels}, got {eps}")
        self.levels = levels
        self.groups = num_codebooks
        self.eps = eps
        self.codebook_dim = len(levels)
        inner = self.codebook_dim * num_codebooks
        self.dim = inner if dim is None else int(dim)
        if self.dim < 1:
            raise ValueError(f"FSQ: dim must be >= 1, got {dim}")
        self.project_in: nn.Module = nn.Linear(self.dim, inner) if self.dim != inner else nn.Identity()
        self.project_out: nn.Module = nn.Linear(inner, self.dim) if self.dim != inner else nn.Identity()

        lv = torch.tensor(levels, dtype=torch.long)
        basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.long), lv[:-1]]), 0)  # mixed radix
        self.register_buffer("_levels", lv, persistent=False)
        self.register_buffer("_basis", basis, persistent=False)
        centre = (lv.double() - 1) / 2  # (d,) digit of the grid centre
        self.register_buffer("_centre", centre.float(), persistent=False)
        self.register_buffer("_half", (centre * (1 + eps)).float(), persistent=False)
        self.register_buffer("_top", (lv - 1).float(), persistent=False)
        self._size = math.prod(levels)
        self.tracker = UsageTracker(self._size) if self._size <= DENSE_USAGE_LIMIT else None

    # ----- interface -------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self._size

    @property
    def num_codebooks(self) -> int:
        return self.groups

    def quantize(self, x: Tensor) -> QuantizerOutput:
        z = self.project_in(x)  # (N, G * d)
        n = z.shape[0]
        z = z.reshape(n, self.groups, self.codebook_dim)  # (N, G, d)
        grad = torch.is_grad_enabled() and z.requires_grad
        # Without a gradient no intermediate is needed again: bound, round, clamp and scale in place, in the
        # projection's output (never in the caller's x), with the same arithmetic as the out-of-place path.
        in_place = not grad and z.data_ptr() != x.data_ptr()
        b = self.bound(z, out=z if in_place else None)  # (N, G, d) continuous digit in (-0.5, L - 0.5)
        digits = b.detach().round() if grad else b.round_()
        digits.clamp_(min=torch.zeros_like(self._top), max=self._top)  # [0, L-1]
        codes = self.digits_to_index(digits)  # (N, G)
        scaled = self._scale(digits) if grad else self._scale_(digits)  # (N, G, d) grid values in [-1, 1]
        if grad:
            scaled = straight_through_exact(self._scale(b), scaled)
        latents = self.project_out(scaled.reshape(n, -1))  # (N, D)
        metrics: dict[str, Tensor] = {}
        if self.wants_metrics:
            metrics = codes_usage_metrics(codes, self._size, self.tracker if self.training else None)
        return QuantizerOutput(latents, codes, x.new_zeros(()), metrics)

    def codes_to_latents_flat(self, codes: Tensor) -> Tensor:
        digits = self.index_to_digits(codes)  # (N, G, d)
        scaled = self._scale(digits.to(self._float_dtype()))  # same arithmetic as quantize: bitwise equal
        return self.project_out(scaled.reshape(codes.shape[0], -1))

    # ----- the maps (public so they can be tested and reused) ---------------------------------
    def bound(self, z: Tensor, out: Tensor | None = None) -> Tensor:
        """(..., d) -> (..., d) continuous digit ``tanh(z) * h + (L - 1) / 2`` in (-0.5, L - 0.5); written into
        ``out`` when given (``out=z`` bounds in place)."""
        t = torch.tanh(z) if out is None else torch.tanh(z, out=out)
        return torch.addcmul(self._centre.to(z.dtype), t, self._half.to(z.dtype), out=out)

    def digits_to_index(self, digits: Tensor) -> Tensor:
        """(..., d) digits in [0, L) (integer or integer-valued float) -> (...,) mixed-radix index."""
        if digits.device.type == "cpu":
            # one mat-vec, faster than an int64 product + sum: in the digits' own float dtype while every partial
            # sum is an integer below 2^mantissa (exact in any order), else in int32 / int64
            if (digits.dtype == torch.float32 and self._size <= 2**24) or (
                digits.dtype == torch.float64 and self._size <= 2**53
            ):
                dtype = digits.dtype
            else:
                dtype = torch.int32 if self._size <= 2**31 else torch.long
            flat = digits.reshape(-1, self.codebook_dim).to(dtype)  # (M, d)
            return torch.mv(flat, self._basis.to(dtype)).long().reshape(digits.shape[:-1])
        return (digits.long() * self._basis).sum(-1)  # int64: exact (a float matmul could run in TF32)

    def index_to_digits(self, index: Tensor) -> Tensor:
        """(...,) index in [0, prod(levels)) -> (..., d) digits in [0, L)."""
        return (index.long().unsqueeze(-1) // self._basis) % self._levels

    def index_to_code(self, index: Tensor) -> Tensor:
        """(...,) index -> (..., d) code in [-1, 1] (before the output projection)."""
        return self._scale(self.index_to_digits(index).to(self._float_dtype()))

    def code_to_index(self, code: Tensor) -> Tensor:
        """(..., d) code values in [-1, 1] (grid points or near them) -> (...,) index, always in range."""
        centre = (self._levels - 1).to(code.dtype) / 2
        digits = (code * centre + centre).round()
        digits = torch.minimum(digits.clamp_min(0), 2 * centre)
        return self.digits_to_index(digits.long())

    # ----- internals -------------------------------------------------------------------------
    def _scale(self, digits: Tensor) -> Tensor:
        """digits (continuous or exact) -> values in [-1, 1]: (digit - c) / c with c = (L - 1) / 2."""
        centre = self._centre.to(digits.dtype)
        return (digits - centre) / centre

    def _scale_(self, digits: Tensor) -> Tensor:
        """:meth:`_scale` in place (the same two operations, so the same values)."""
        centre = self._centre.to(digits.dtype)
        return digits.sub_(centre).div_(centre)

    def _float_dtype(self) -> torch.dtype:
        for p in self.parameters():
            return p.dtype
        return torch.get_default_dtype()

    def extra_repr(self) -> str:
        return f"levels={self.levels}, dim={self.dim}, num_codebooks={self.groups}"
