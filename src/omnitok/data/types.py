"""The unit every data source yields and every shard stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Example:
    """One raw example, as stored in a WebDataset tar shard.

    key:   unique, stable id within the dataset (no dots or slashes), e.g. "digits-000123".
    files: extension -> encoded bytes, e.g. {"png": b"...", "flac": b"...", "mp4": b"..."}.
    meta:  JSON-serialisable dict stored as ``key.json``: caption or transcript, labels, source,
           licence, and source-specific fields (style, voice, duration, ...).
    """

    key: str
    files: dict[str, bytes]
    meta: dict[str, Any] = field(default_factory=dict)
