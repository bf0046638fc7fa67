"""Discrete bottlenecks: one algorithm per file, one interface (:class:`Quantizer`)."""

from omnitok.quantizers.base import QuantizerOutput, Quantizer

__all__ = ["Quantizer", "QuantizerOutput"]
