"""The one interface every quantizer implements.

A quantizer maps channel-last latents ``(B, ..., D)`` to discrete codes
``(B, ..., num_codebooks)`` and back. Every sibling returns a
:class:`QuantizerOutput`, so codecs can swap quantizers freely
(the same habit as audiocraft's ``QuantizedResult``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class QuantizerOutput:
    """What every quantizer returns.

    latents: (B, ..., D) quantized latents; straight-through (or rotation-trick) gradients in training.
    codes:   (B, ..., num_codebooks) int64 indices, each in [0, codebook_size).
    loss:    scalar auxiliary loss (commitment, codebook, entropy, ...), already weighted.
    metrics: detached scalars: usage, perplexity, dead codes, ... -- computed in training mode, and in eval
             mode only when asked for (:meth:`Quantizer.track_metrics`); otherwise empty or nearly so in eval,
             so inference pays for no histogram over the codebook.
    """

    latents: Tensor
    codes: Tensor
    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


class CodeSpace(ABC):
    """What a code tensor holds: ``num_codebooks`` indices per position, each in [0, ``codebook_size``).

    The one definition of the two sizes, shared by :class:`Quantizer` and the codec interface
    (``omnitok.codecs.base.Codec``)."""

    @property
    @abstractmethod
    def codebook_size(self) -> int:
        """Number of distinct codes per codebook."""

    @property
    def num_codebooks(self) -> int:
        """Number of code indices per position (per latent vector of a quantizer)."""
        return 1


class Quantizer(nn.Module, CodeSpace):
    """Base class: validates input, defines the shared API.

    Subclasses implement :attr:`codebook_size` (and :attr:`num_codebooks` when not 1), :meth:`quantize` on a flat
    ``(N, D)`` tensor and :meth:`codes_to_latents_flat` on ``(N, num_codebooks)`` codes.
    """

    #: input feature dimension D
    dim: int
    #: compute usage metrics in eval mode too (training always does); set with :meth:`track_metrics`
    eval_metrics: bool = False

    # ----- public API -------------------------------------------------------------------------
    @property
    def wants_metrics(self) -> bool:
        """Whether the next forward computes usage metrics: in training, or in eval when asked for."""
        return self.training or self.eval_metrics

    def track_metrics(self, on: bool = True) -> Quantizer:
        """Compute usage / perplexity metrics in eval mode too (``on``) or only in training (``False``), for
        this quantizer and every quantizer inside it (RVQ levels, PQ groups); returns ``self``."""
        for m in self.modules():
            if isinstance(m, Quantizer):
                m.eval_metrics = on
        return self

    def forward(self, x: Tensor) -> QuantizerOutput:
        """Quantize channel-last latents ``x`` of shape (B, ..., D)."""
        check_latents(x, self.dim, type(self).__name__)
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.dim)  # (N, D)
        out = self.quantize(flat)
        return QuantizerOutput(
            latents=out.latents.reshape(*lead, self.dim),
            codes=out.codes.reshape(*lead, self.num_codebooks),
            loss=out.loss,
            metrics=out.metrics,
        )

    def forward_channel_first(self, x: Tensor) -> QuantizerOutput:
        """Quantize channel-first latents (B, D, *spatial); latents come back channel-first."""
        out = self(to_channel_last(x))
        return QuantizerOutput(to_channel_first(out.latents), out.codes, out.loss, out.metrics)

    def codes_to_latents(self, codes: Tensor) -> Tensor:
        """Map codes (B, ..., num_codebooks) back to latents (B, ..., D)."""
        check_codes(codes, self.num_codebooks, self.codebook_size, type(self).__name__)
        lead = codes.shape[:-1]
        flat = codes.reshape(-1, self.num_codebooks).long()
        return self.codes_to_latents_flat(flat).reshape(*lead, self.dim)

    # ----- to implement ----------------------------------------------------------------------
    @abstractmethod
    def quantize(self, x: Tensor) -> QuantizerOutput:
        """x: (N, D) -> QuantizerOutput with latents (N, D) and codes (N, num_codebooks)."""

    @abstractmethod
    def codes_to_latents_flat(self, codes: Tensor) -> Tensor:
        """codes: (N, num_codebooks) long -> latents (N, D)."""


# ----- validation helpers ---------------------------------------------------------------------
def check_latents(x: Tensor, dim: int, who: str) -> None:
    """Raise ValueError naming the problem for a latent tensor that a quantizer cannot take."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{who}: latents must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{who}: latents must be shaped (B, ..., D) with D={dim}, got shape {tuple(x.shape)}")
    if x.shape[-1] != dim:
        raise ValueError(
            f"{who}: latents last dimension must be D={dim} (channel-last; use forward_channel_first for "
            f"(B, D, H, W)), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{who}: latents must be a floating-point tensor, got dtype {x.dtype}")
    # one reduction in the common case; the elementwise check only runs when something is non-finite
    if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{who}: latents contain {bad} NaN/inf values; expected finite values")


def check_codes(codes: Tensor, num_codebooks: int, codebook_size: int, who: str) -> None:
    """Raise ValueError for codes with the wrong trailing dimension, dtype or range."""
    if not isinstance(codes, Tensor):
        raise ValueError(f"{who}: codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.is_floating_point() or codes.dtype == torch.bool:
        raise ValueError(f"{who}: codes must be an integer tensor, got dtype {codes.dtype}")
    if codes.dim() < 1 or codes.shape[-1] != num_codebooks:
        raise ValueError(
            f"{who}: codes last dimension must be num_codebooks={num_codebooks}, got shape {tuple(codes.shape)}"
        )
    if codes.numel():
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi >= codebook_size:
            raise ValueError(
                f"{who}: codes must lie in [0, {codebook_size}), got values in [{lo}, {hi}]"
            )


def to_channel_last(x: Tensor) -> Tensor:
    """(B, D, *spatial) -> (B, *spatial, D)."""
    return x.movedim(1, -1)


def to_channel_first(x: Tensor) -> Tensor:
    """(B, *spatial, D) -> (B, D, *spatial)."""
    return x.movedim(-1, 1)
