"""Lookup-Free Quantization (MAGVIT-v2, Yu et al., arXiv 2310.05737).

Each of ``bits`` channels is quantized to its sign, -1 or +1; the code index is the bit pattern
(most significant bit = channel 0), so the codebook has 2^bits entries and is never stored.

The entropy loss (per-sample entropy minus codebook entropy) is computed *without* the (N, 2^bits)
matrix that MAGVIT-v2's formulation suggests: with codes c in {-1, 1}^d the code distribution
``softmax_c(-inv_temperature * ||z - c||^2)`` is a product of independent bits with
p(c_i = +1) = sigmoid(4 * inv_temperature * z_i), so

* the per-sample entropy is exactly a sum of d binary entropies, O(N d);
* the codebook (batch-average) entropy is computed exactly inside groups of at most
  ``entropy_group_size`` bits (an (N, 2^g) matrix each) and summed over groups: exact when
  ``bits <= entropy_group_size`` (default 6, so codebooks up to 64 codes get MAGVIT-v2's loss exactly), an
  upper bound otherwise that ignores only correlations *between* groups. Grouping keeps memory and
  time at O(N 2^g d / g) while seeing more of the joint than BSQ's per-bit factorisation
  (``entropy_group_size=1``, O(N d)). Why 6: at d = 16 groups of 8 cost 4x the exps of groups of
  (6, 5, 5) for a loss that is a bound either way. See
  :func:`omnitok.quantizers._utils.factorized_bit_entropy`.
"""

from __future__ import annotations

from torch import Tensor

from omnitok.quantizers._binary import BinaryQuantizer


class LFQ(BinaryQuantizer):
    """Sign quantizer with an implicit 2^bits codebook and MAGVIT-v2's entropy loss; codes in {-1, +1}^bits.

    Arguments and defaults: those of :class:`~omnitok.quantizers._binary.BinaryQuantizer` (``dim``, ``bits``, the
    loss weights, ``entropy_group_size=6``: see the module doc).
    """

    value = 1.0  # codes in {-1, +1}^bits

    def entropy_logits(self, u: Tensor) -> Tensor:
        # softmax_c(-inv_temperature * ||z - c||^2) over c in {-1, 1}^d: p(c_i = +1) = sigmoid(4 * inv_temperature * z_i)
        return 4 * self.inv_temperature * u
