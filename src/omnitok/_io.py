"""Checkpoint file helpers shared by every layer (codecs, model, trainers): no torch.nn, no omnitok imports."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from torch import Tensor

__all__ = ["CheckpointError", "load_safetensors", "read_json", "sha256_file", "write_json_atomic"]


class CheckpointError(ValueError):
    """A checkpoint folder is missing, truncated, or disagrees with its config."""


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


def load_safetensors(path: str | os.PathLike[str], map_location: str = "cpu") -> dict[str, Tensor]:
    """Load a safetensors file with a clear error for a missing or truncated file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: missing weights file")
    try:
        return load_file(str(path), device=map_location)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot read weights (truncated or corrupt?): {e}") from e


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; a missing or malformed file raises CheckpointError naming it."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e
