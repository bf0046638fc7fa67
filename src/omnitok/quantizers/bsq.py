"""Binary Spherical Quantization (Zhao et al., arXiv 2406.07548).

Project to ``bits`` dims, l2-normalise onto the unit hypersphere, binarise each channel to
``sign(u_i) / sqrt(bits)`` (so codes are unit vectors too), project back. The codebook is implicit:
2^bits codes, index = the sign pattern (most significant bit = channel 0).

Entropy loss: the code distribution ``q(c | u) ~ exp(inv_temperature * <u, c>)`` over
c in {-1/sqrt(d), 1/sqrt(d)}^d factorises over bits, p(c_i > 0) = sigmoid(2 * inv_temperature * u_i
/ sqrt(d)); the per-sample entropy is exact and the codebook entropy uses the paper's per-bit
factorised approximation (Sec. 3.3; ``entropy_group_size=1``) -- or exact groups of up to
``entropy_group_size`` bits, see :func:`omnitok.quantizers._utils.factorized_bit_entropy`. Memory is
O(N * bits), never O(N * 2^bits).
"""

from __future__ import annotations

import math

from torch import Tensor

from omnitok.quantizers._binary import BinaryQuantizer


class BSQ(BinaryQuantizer):
    """Binary spherical quantizer with an implicit 2^bits codebook.

    Arguments: those of :class:`~omnitok.quantizers._binary.BinaryQuantizer` (``dim``, ``bits``, the loss weights
    as keywords; here ``commitment_weight`` weighs ||u - q||^2 with u the normalised latent, ``inv_temperature`` the
    sharpness of q(c | u)), with ``entropy_group_size`` 1 (the paper's per-bit factorisation; larger = exact groups
    of bits), and ``eps``: floor of the norm in the l2 normalisation.
    """

    def __init__(self, dim: int, bits: int, *, entropy_group_size: int = 1, eps: float = 1e-6,
                 **loss_weights: float) -> None:
        super().__init__(dim, bits, entropy_group_size=entropy_group_size, **loss_weights)
        self.eps = eps
        self.scale = 1.0 / math.sqrt(bits)
        self.value = self.scale  # codes in {-1/sqrt(d), 1/sqrt(d)}^d: unit vectors

    def normalise(self, z: Tensor) -> Tensor:
        return z / z.norm(dim=-1, keepdim=True).clamp_min(self.eps)  # (N, d) on the unit sphere

    def entropy_logits(self, u: Tensor) -> Tensor:
        # q(c | u) ~ exp(inv_temperature * <u, c>): p(c_i > 0) = sigmoid(2 * inv_temperature * u_i / sqrt(d))
        return 2 * self.inv_temperature * self.scale * u
