"""Discrete bottlenecks: one algorithm per file, one interface (:class:`Quantizer`)."""

from omnitok.quantizers.aq import AdditiveVQ
from omnitok.quantizers.base import Quantizer, QuantizerOutput
from omnitok.quantizers.bsq import BSQ
from omnitok.quantizers.fsq import FSQ
from omnitok.quantizers.gumbel import GumbelVQ
from omnitok.quantizers.lfq import LFQ
from omnitok.quantizers.pq import ProductVQ
from omnitok.quantizers.registry import QUANTIZERS, build_quantizer
from omnitok.quantizers.rvq import ResidualVQ
from omnitok.quantizers.vq import VectorQuantizer

__all__ = [
    "BSQ",
    "QUANTIZERS",
    "FSQ",
    "LFQ",
    "AdditiveVQ",
    "GumbelVQ",
    "ProductVQ",
    "Quantizer",
    "QuantizerOutput",
    "ResidualVQ",
    "VectorQuantizer",
    "build_quantizer",
]
