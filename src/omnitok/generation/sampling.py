"""Temperature, top-k, top-p and multinomial sampling on the device, written once for every modality.

Everything here is tensor-in, tensor-out with fixed shapes and no ``.item()``: nothing reads back to the host,
so a decode step that calls it can be captured as a CUDA graph. Multinomial sampling uses the exponential race
(``argmax(p / E)`` with ``E ~ Exp(1)`` is a sample of ``p``; as gpt-fast does) instead of ``torch.multinomial``,
which keeps the draw a plain fixed-shape kernel and makes its random-number use independent of the values.

Order of the processors (as Hugging Face ``generate``): temperature, then top-k, then top-p.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SamplingParams", "filter_logits", "probabilities", "sample", "sample_from_probs"]

NEG_INF = float("-inf")


@dataclass(frozen=True)
class SamplingParams:
    """temperature 0 = greedy (argmax); top_k 0 = off; top_p 1.0 = off."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        for name in ("temperature", "top_p"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def filter_logits(logits: Tensor, params: SamplingParams) -> Tensor:
    """logits (..., V) -> temperature-scaled logits with -inf outside top-k / top-p (a new tensor).

    Ids already at -inf (constraints) stay excluded; top-k / top-p never keep fewer than one id.
    """
    x = logits.float()
    if params.temperature > 0 and params.temperature != 1.0:
        x = x / params.temperature
    V = x.shape[-1]
    if 0 < params.top_k < V:
        kth = torch.topk(x, params.top_k, dim=-1).values[..., -1:]  # (..., 1)
        x = x.masked_fill(x < kth, NEG_INF)
    if params.top_p < 1.0:
        sorted_x, order = torch.sort(x, dim=-1, descending=True)
        cum = sorted_x.softmax(-1).cumsum(-1)
        # drop an id when the ids strictly before it already reach top_p (the first id is always kept)
        drop_sorted = (cum - sorted_x.softmax(-1)) >= params.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        x = x.masked_fill(drop, NEG_INF)
    return x


def probabilities(logits: Tensor, params: SamplingParams) -> Tensor:
    """The distribution a sample is drawn from: (..., V) float32 (one-hot of the argmax when greedy)."""
    if params.greedy:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    return filter_logits(logits, params).softmax(-1)


def sample_from_probs(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """probs (..., V) -> ids (...) long, one draw per row by the exponential race (no host sync)."""
    e = torch.empty_like(probs).exponential_(1.0, generator=generator)
    return (probs / e).argmax(-1)


def sample(logits: Tensor, params: SamplingParams, generator: torch.Generator | None = None) -> Tensor:
    """logits (..., V) -> ids (...) long: argmax when greedy, else a draw from :func:`probabilities`."""
    if params.greedy:
        return logits.argmax(-1)
    return sample_from_probs(filter_logits(logits, params).softmax(-1), generator)
