"""Deterministic train/val/test splits by a hash of the example key.

An example's split depends only on its key (and an optional salt), never on the order it was built in or on
which other examples exist: building a slice (``--limit``) puts every example in the same split as a full build.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

__all__ = ["DEFAULT_SPLITS", "SPLIT_NAMES", "key_fraction", "parse_splits", "split_of"]

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_SPLITS: dict[str, float] = {"train": 0.90, "val": 0.05, "test": 0.05}


def key_fraction(key: str, salt: str = "") -> float:
    """A uniform number in [0, 1) from the first 8 bytes of sha256(salt + key)."""
    digest = hashlib.sha256((salt + key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def parse_splits(spec: str | Mapping[str, float] | None) -> dict[str, float]:
    """``"train=0.9,val=0.05,test=0.05"`` or a mapping -> normalised ordered dict of fractions."""
    if spec is None:
        return dict(DEFAULT_SPLITS)
    if isinstance(spec, str):
        out: dict[str, float] = {}
        for part in spec.split(","):
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"splits: expected name=fraction pairs like 'train=0.9,val=0.05', got {spec!r}")
            out[name.strip()] = float(value)
        spec = out
    fractions = {str(k): float(v) for k, v in spec.items()}
    if not fractions or any(v < 0 for v in fractions.values()) or sum(fractions.values()) <= 0:
        raise ValueError(f"splits: fractions must be >= 0 with a positive sum, got {fractions}")
    total = sum(fractions.values())
    return {k: v / total for k, v in fractions.items()}


def split_of(key: str, splits: Mapping[str, float] | None = None, salt: str = "") -> str:
    """The split a key belongs to (fractions need not be normalised)."""
    fractions = parse_splits(splits)
    u = key_fraction(key, salt)
    acc = 0.0
    last = next(reversed(fractions))
    for name, frac in fractions.items():
        acc += frac
        if u < acc:
            return name
    return last
