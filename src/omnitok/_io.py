"""Checkpoint file helpers shared by every layer (codecs, model, trainers): no torch.nn, no omnitok imports."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from torch import Tensor

__all__ = ["CheckpointError", "fsync_dir", "fsync_replace", "latest_checkpoint", "load_safetensors", "read_json",
           "sha256_file", "write_json_atomic"]


class CheckpointError(ValueError):
    """A checkpoint folder is missing, truncated, or disagrees with its config."""


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_replace(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Flush ``tmp`` to disk, rename it to ``path`` and flush the folder entry: after a power cut the file is
    the old one or the complete new one, never a renamed but empty or half-written one."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """fsync a folder (its entries: renames into it). A no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON to ``path.tmp``, fsync it and rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    fsync_replace(tmp, path)


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


def model_folder(path: str | os.PathLike[str], what: str) -> Path:
    """A model folder (``model.safetensors``), a training checkpoint folder, or a run folder (its ``final/``, else its
    newest checkpoint holding weights); ``what`` names the model in the error, e.g. "diffusion model"."""
    p = Path(path)
    if (p / "model.safetensors").is_file():
        return p
    if (p / "final" / "model.safetensors").is_file():
        return p / "final"
    ckpts = sorted((p / "checkpoints").glob("step_*")) if (p / "checkpoints").is_dir() else []
    ckpts = [c for c in ckpts if (c / "model.safetensors").is_file()]
    if ckpts:
        return ckpts[-1]
    raise ValueError(f"--ckpt {path}: expected a {what} folder (config.json + model.safetensors), a "
                     "training checkpoint, or a run folder with final/ or checkpoints/")


def latest_checkpoint(out_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint folder under ``<out_dir>/checkpoints`` (or ``out_dir`` itself): the one
    ``checkpoints/latest.json`` names, else the last ``step_*`` folder; None when there is none."""
    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file() and (out_dir / "optimizer.safetensors").is_file():
        return out_dir
    root = out_dir / "checkpoints"
    latest = root / "latest.json"
    if latest.is_file():
        try:
            path = root / json.loads(latest.read_text())["path"]
            if path.is_dir():
                return path
        except (json.JSONDecodeError, KeyError):
            pass
    done = sorted(p for p in root.glob("step_*") if p.is_dir()) if root.is_dir() else []
    return done[-1] if done else None
