"""Gumbel-softmax vector quantization (Jang et al., arXiv 1611.01144; as in DALL-E's dVAE and
taming-transformers' GumbelQuantize).

A linear layer gives logits over K codes; in training a Gumbel-softmax sample (temperature tau)
weights the codebook: ``hard=True`` uses the one-hot argmax forward with the soft sample's gradient
(straight-through), ``hard=False`` the soft mixture. In eval the code is ``argmax(logits)`` and the
latent its codeword. The auxiliary loss is KL(softmax(logits) || uniform), which keeps all codes alive.

Temperature: fixed with :meth:`set_temperature`, or annealed per training step as
``max(min_temperature, temperature * exp(-anneal_rate * step))`` (DALL-E's schedule shape).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnitok.quantizers._utils import UsageTracker, codes_usage_metrics
from omnitok.quantizers.base import Quantizer, QuantizerOutput


class GumbelVQ(Quantizer):
    """Gumbel-softmax quantizer over a learned codebook of K codewords.

    Args:
        dim: input (and output) feature size D.
        codebook_size: K.
        codebook_dim: size of each codeword (defaults to D); a projection maps it back to D otherwise.
        temperature: initial Gumbel-softmax temperature tau_0 (> 0).
        min_temperature: floor of the annealed temperature (defaults to ``temperature``: no annealing).
        anneal_rate: per-step exponential decay of tau (0 = constant).
        hard: straight-through one-hot (True) or soft mixture (False) in training.
        kl_weight: weight of KL(softmax(logits) || uniform).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        codebook_dim: int | None = None,
        temperature: float = 1.0,
        min_temperature: float | None = None,
        anneal_rate: float = 0.0,
        hard: bool = True,
        kl_weight: float = 5e-4,
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"GumbelVQ: dim must be >= 1, got dim={dim}")
        if codebook_size < 2:
            raise ValueError(f"GumbelVQ: codebook_size must be >= 2, got {codebook_size}")
        if temperature <= 0:
            raise ValueError(f"GumbelVQ: temperature must be > 0, got {temperature}")
        if min_temperature is not None and not 0 < min_temperature <= temperature:
            raise ValueError(
                f"GumbelVQ: min_temperature must be in (0, temperature={temperature}], got {min_temperature}"
            )
        if anneal_rate < 0:
            raise ValueError(f"GumbelVQ: anneal_rate must be >= 0, got {anneal_rate}")
        self.dim = dim
        self._size = codebook_size
        self.codebook_dim = dim if codebook_dim is None else codebook_dim
        self.hard = hard
        self.kl_weight = kl_weight
        self.initial_temperature = temperature
        self.min_temperature = temperature if min_temperature is None else min_temperature
        self.anneal_rate = anneal_rate
        self._fixed_temperature: float | None = None
        self.to_logits = nn.Linear(dim, codebook_size)
        self.codebook = nn.Embedding(codebook_size, self.codebook_dim)
        nn.init.normal_(self.codebook.weight, std=1.0 / math.sqrt(self.codebook_dim))
        self.project_out: nn.Module = (
            nn.Linear(self.codebook_dim, dim) if self.codebook_dim != dim else nn.Identity()
        )
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.tracker = UsageTracker(codebook_size)

    @property
    def codebook_size(self) -> int:
        return self._size

    # ----- temperature schedule ---------------------------------------------------------------
    @property
    def temperature(self) -> float:
        """The temperature the next training forward uses."""
        if self._fixed_temperature is not None:
            return self._fixed_temperature
        return self.temperature_at(int(self.step))

    def temperature_at(self, step: int) -> float:
        """Annealed temperature after ``step`` training steps."""
        return max(self.min_temperature, self.initial_temperature * math.exp(-self.anneal_rate * step))

    def set_temperature(self, temperature: float | None) -> None:
        """Fix the temperature (overrides annealing); ``None`` returns to the annealed schedule."""
        if temperature is not None and temperature <= 0:
            raise ValueError(f"GumbelVQ: temperature must be > 0, got {temperature}")
        self._fixed_temperature = temperature

    # ----- interface -------------------------------------------------------------------------
    def quantize(self, x: Tensor) -> QuantizerOutput:
        logits = self.to_logits(x)  # (N, K)
        log_q = F.log_softmax(logits, dim=-1)
        # KL(q || uniform) = sum_k q_k (log q_k + log K), averaged over N
        kl = (log_q.exp() * (log_q + math.log(self._size))).sum(-1).mean()
        loss = self.kl_weight * kl
        if self.training:
            tau = self.temperature
            self.step += 1
            soft = F.gumbel_softmax(logits, tau=tau, hard=self.hard, dim=-1)  # (N, K)
            codes = soft.argmax(-1, keepdim=True)  # (N, 1)
            latents = self.project_out(soft @ self.codebook.weight)  # (N, D)
            metrics = codes_usage_metrics(codes, self._size, self.tracker)
            metrics["temperature"] = torch.tensor(tau)
        else:
            codes = logits.argmax(-1, keepdim=True)  # (N, 1)
            latents = self.codes_to_latents_flat(codes)
            metrics = codes_usage_metrics(codes, self._size) if self.eval_metrics else {}
        metrics["kl_to_uniform"] = kl.detach()  # the loss term itself: no extra work
        return QuantizerOutput(latents, codes, loss, metrics)

    def codes_to_latents_flat(self, codes: Tensor) -> Tensor:
        return self.project_out(self.codebook(codes[:, 0]))  # (N, D)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, codebook_size={self._size}, hard={self.hard}"
