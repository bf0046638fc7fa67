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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnitok.quantizers._utils import (
    DENSE_USAGE_LIMIT,
    UsageTracker,
    bits_to_index,
    codes_usage_metrics,
    factorized_bit_entropy,
    index_to_bits,
    straight_through_exact,
)
from omnitok.quantizers.base import Quantizer, QuantizerOutput


class BSQ(Quantizer):
    """Binary spherical quantizer with an implicit 2^bits codebook.

    Args:
        dim: input feature size D; projections D -> bits -> D when ``dim != bits``.
        bits: code length d; codebook_size = 2^d (at most 62).
        entropy_weight: weight of (per-sample entropy - diversity_gamma * codebook entropy).
        diversity_gamma: weight of the codebook-entropy term.
        commitment_weight: weight of ||u - q||^2 (mean over elements), u the normalised latent.
        inv_temperature: sharpness of q(c | u) in the entropy loss.
        entropy_group_size: 1 = the paper's per-bit factorisation; larger = exact groups of bits.
        eps: floor of the norm in the l2 normalisation.

    The entropy loss is only computed in training mode; in eval the loss is the commitment term.
    """

    def __init__(
        self,
        dim: int,
        bits: int,
        entropy_weight: float = 0.1,
        diversity_gamma: float = 1.0,
        commitment_weight: float = 0.25,
        inv_temperature: float = 100.0,
        entropy_group_size: int = 1,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if not 1 <= bits <= 62:
            raise ValueError(f"BSQ: bits must be in [1, 62] (codebook 2^bits), got bits={bits}")
        if dim < 1:
            raise ValueError(f"BSQ: dim must be >= 1, got dim={dim}")
        if entropy_group_size < 1:
            raise ValueError(f"BSQ: entropy_group_size must be >= 1, got {entropy_group_size}")
        self.dim = dim
        self.bits = bits
        self.entropy_weight = entropy_weight
        self.diversity_gamma = diversity_gamma
        self.commitment_weight = commitment_weight
        self.inv_temperature = inv_temperature
        self.entropy_group_size = entropy_group_size
        self.eps = eps
        self.scale = 1.0 / math.sqrt(bits)
        self.project_in: nn.Module = nn.Linear(dim, bits) if dim != bits else nn.Identity()
        self.project_out: nn.Module = nn.Linear(bits, dim) if dim != bits else nn.Identity()
        self._size = 1 << bits
        self.tracker = UsageTracker(self._size) if self._size <= DENSE_USAGE_LIMIT else None

    @property
    def codebook_size(self) -> int:
        return self._size

    def quantize(self, x: Tensor) -> QuantizerOutput:
        z = self.project_in(x)  # (N, d)
        u = z / z.norm(dim=-1, keepdim=True).clamp_min(self.eps)  # (N, d) on the unit sphere
        positive = u > 0
        q = torch.where(positive, self.scale, -self.scale).to(u.dtype)  # (N, d), unit norm
        codes = bits_to_index(positive).unsqueeze(-1)  # (N, 1)
        latents = self.project_out(straight_through_exact(u, q))  # (N, D)

        loss = self.commitment_weight * F.mse_loss(u, q)
        metrics = codes_usage_metrics(codes, self._size, self.tracker if self.training else None)
        if self.training and self.entropy_weight > 0:
            logits = 2 * self.inv_temperature * self.scale * u  # (N, d) per-bit logits
            per_sample, codebook = factorized_bit_entropy(logits, self.entropy_group_size)
            loss = loss + self.entropy_weight * (per_sample - self.diversity_gamma * codebook)
            metrics["per_sample_entropy"] = per_sample.detach()
            metrics["codebook_entropy"] = codebook.detach()
        return QuantizerOutput(latents, codes, loss, metrics)

    def codes_to_latents_flat(self, codes: Tensor) -> Tensor:
        return self.project_out(self.index_to_code(codes[:, 0]))

    def index_to_code(self, index: Tensor) -> Tensor:
        """(...,) index in [0, 2^bits) -> (..., bits) unit code in {-1/sqrt(d), 1/sqrt(d)}^d."""
        bits = index_to_bits(index, self.bits)
        return torch.where(bits.bool(), self.scale, -self.scale).to(self._float_dtype())

    def code_to_index(self, code: Tensor) -> Tensor:
        """(..., bits) code (its sign is used) -> (...,) index in [0, 2^bits)."""
        return bits_to_index(code > 0)

    def _float_dtype(self) -> torch.dtype:
        for p in self.parameters():
            return p.dtype
        return torch.get_default_dtype()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, bits={self.bits}, entropy_group_size={self.entropy_group_size}"
