"""Code files: one codec's codes for one media file, as safetensors with string metadata.

A code file holds one int64 tensor ``codes`` shaped (*code_grid, num_codebooks) (no batch dimension) and
string metadata: ``omnitok_format`` (:data:`FORMAT`) plus whatever the writer passes (``omnitok encode``
writes ``modality``, ``codec_class``, ``codec_weights_sha256``, ``source``, ``input_shape``, ``fps`` /
``sample_rate``); non-string values are stored as JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["FORMAT", "SUFFIX", "read_codes", "write_codes"]

FORMAT = "codes/1"
SUFFIX = ".codes.safetensors"


def write_codes(path: str | os.PathLike, codes: Tensor, meta: dict[str, Any]) -> None:
    """codes (*grid, num_codebooks) int -> a code file at ``path`` (parents created)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    strmeta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    save_file({"codes": codes.detach().to(torch.int64).contiguous().cpu()}, str(path),
              metadata={"omnitok_format": FORMAT, **strmeta})


def read_codes(path: str | os.PathLike) -> tuple[Tensor, dict[str, str]]:
    """A code file -> (codes (*grid, num_codebooks) int64, metadata); ValueError naming the path."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such code file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            if "codes" not in set(f.keys()):  # noqa: SIM118
                raise ValueError(f"{path}: not an omnitok code file (no 'codes' tensor)")
            codes = f.get_tensor("codes")
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ValueError(f"{path}: cannot read code file (truncated or not safetensors?): {e}") from e
    if meta.get("omnitok_format") != FORMAT:
        raise ValueError(f"{path}: not an omnitok code file (omnitok_format={meta.get('omnitok_format')!r})")
    if codes.is_floating_point():
        raise ValueError(f"{path}: codes must be integers, got {codes.dtype}")
    return codes.long(), meta
