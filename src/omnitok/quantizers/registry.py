"""The eight quantizer families by name: what codec presets write as ``quantizer: {name: ..., ...}`` and codec
folders record in their config.json, so a codec rebuilds its quantizer from a name and keyword arguments."""

from __future__ import annotations

from typing import Any

from omnitok.quantizers.aq import AdditiveVQ
from omnitok.quantizers.base import Quantizer
from omnitok.quantizers.bsq import BSQ
from omnitok.quantizers.fsq import FSQ
from omnitok.quantizers.gumbel import GumbelVQ
from omnitok.quantizers.lfq import LFQ
from omnitok.quantizers.pq import ProductVQ
from omnitok.quantizers.rvq import ResidualVQ
from omnitok.quantizers.vq import VectorQuantizer

__all__ = ["QUANTIZERS", "build_quantizer", "quantizer_class"]

#: quantizer name -> class: the eight families, one name each
QUANTIZERS: dict[str, type[Quantizer]] = {
    "vq": VectorQuantizer,
    "rvq": ResidualVQ,
    "pq": ProductVQ,
    "aq": AdditiveVQ,
    "fsq": FSQ,
    "lfq": LFQ,
    "bsq": BSQ,
    "gumbel": GumbelVQ,
}


def quantizer_class(name: str) -> type[Quantizer]:
    """The quantizer class called ``name`` (vq, rvq, pq, aq, fsq, lfq, bsq, gumbel)."""
    if name not in QUANTIZERS:
        raise ValueError(f"unknown quantizer {name!r}; expected one of {sorted(QUANTIZERS)}")
    return QUANTIZERS[name]


def build_quantizer(name: str, **kwargs: Any) -> Quantizer:
    """Instantiate quantizer ``name`` with constructor ``kwargs`` (a clear error for bad keywords). The instance
    records both as ``preset`` = ``(name, kwargs)``, which a codec saves in its config.json to rebuild it."""
    cls = quantizer_class(name)
    try:
        q = cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"quantizer {name!r} ({cls.__name__}): bad arguments {sorted(kwargs)}: {e}") from e
    q.preset = (name, dict(kwargs))
    return q
