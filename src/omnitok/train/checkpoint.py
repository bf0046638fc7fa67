"""Atomic training checkpoints as folders; no pickle anywhere.

A checkpoint ``<out>/checkpoints/step_<N>/`` holds

* ``config.json``         ``{"model": ModelConfig, "train": {...}, "step": N, ...}`` (``Transformer.from_pretrained``
                          reads the ``model`` section, so a checkpoint is also a model folder);
* ``model.safetensors``   the weights;
* ``optimizer.safetensors`` + ``optimizer.json``  per-parameter tensors (``exp_avg``, ...) and the JSON rest;
* ``loader.json``         the batch source's ``state_dict()``;
* ``rng.safetensors``     torch CPU (and CUDA) generator states; ``rng.json`` Python / NumPy states.

The folder is written as ``.step_<N>.tmp`` and renamed in one ``os.replace``; ``latest.json`` (also replaced
atomically) points at the newest complete folder. A kill during a save leaves the previous checkpoint and
``latest.json`` untouched.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from omnitok._io import (
    CheckpointError,
    fsync_dir,
    fsync_replace,
    latest_checkpoint,
    load_safetensors,
    read_json,
    sha256_file,
)

__all__ = ["CHECKPOINT_FILES", "latest_checkpoint", "load_checkpoint", "rng_state", "save_checkpoint",
           "set_rng_state"]

CHECKPOINT_FILES = ("config.json", "model.safetensors", "optimizer.safetensors", "optimizer.json", "loader.json",
                    "rng.safetensors", "rng.json")


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, np.integer | np.floating):
        return o.item()
    raise TypeError(f"not JSON-serialisable: {type(o)}")


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {"python": [py_state[0], list(py_state[1]), py_state[2]],
            "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])]}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if states:
            torch.cuda.set_rng_state_all(states)
    v, s, g = meta["python"]
    random.setstate((v, tuple(s), g))
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))


def _optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    meta_state: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        meta_state[str(pid)] = {}
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}::{k}"] = v.detach().contiguous().cpu()
            else:
                meta_state[str(pid)][k] = v
    return tensors, {"param_groups": sd["param_groups"], "state": meta_state}


def _optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    def key(pid: str) -> int | str:  # ints for torch.optim state dicts, parameter names for FSDP ones
        return int(pid) if pid.isdigit() else pid

    state: dict[int | str, dict[str, Any]] = {key(pid): dict(rest) for pid, rest in meta["state"].items()}
    for name, t in tensors.items():
        pid, field = name.split("::", 1)
        state.setdefault(key(pid), {})[field] = t
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(out_dir: str | os.PathLike[str], step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    config: dict[str, Any], loader_state: dict[str, Any] | None, extra: dict[str, Any] | None = None,
                    keep: int = 2, model_state: dict[str, torch.Tensor] | None = None,
                    optimizer_state: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None) -> Path:
    """Write ``<out_dir>/checkpoints/step_<step>`` atomically and point ``latest.json`` at it.

    ``model_state`` / ``optimizer_state`` may be passed pre-gathered (FSDP); by default they are read from
    the (unwrapped) model and optimizer. Keeps the newest ``keep`` checkpoints.
    """
    root = Path(out_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".step_{step:08d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    state = model_state if model_state is not None else model.state_dict()
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    if config.get("model", {}).get("tie_embeddings"):
        state.pop("lm_head.weight", None)
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    opt_t, opt_meta = optimizer_state if optimizer_state is not None else _optimizer_to_flat(optimizer)
    save_file(opt_t, str(tmp / "optimizer.safetensors"))
    (tmp / "optimizer.json").write_text(json.dumps(opt_meta, default=_json_default))
    (tmp / "loader.json").write_text(json.dumps(loader_state or {}, default=_json_default))
    rng_t, rng_meta = rng_state()
    save_file(rng_t, str(tmp / "rng.safetensors"))
    (tmp / "rng.json").write_text(json.dumps(rng_meta))
    # every file's sha256, so a damaged checkpoint is refused on load with the file named
    files = {name: sha256_file(tmp / name) for name in CHECKPOINT_FILES if name != "config.json"}
    cfg = {**config, "step": step, "model_class": "Transformer", **(extra or {}),
           "weights_sha256": files["model.safetensors"], "files_sha256": files}
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2, default=_json_default) + "\n")
    for name in CHECKPOINT_FILES:  # on disk before the folder is renamed into place
        fd = os.open(tmp / name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(root)
    latest_tmp = root / "latest.json.tmp"
    latest_tmp.write_text(json.dumps({"step": step, "path": final.name}) + "\n")
    fsync_replace(latest_tmp, root / "latest.json")
    done = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: str | os.PathLike[str], verify: bool = True) -> dict[str, Any]:
    """Read a checkpoint folder -> dict with config, model (state), optimizer (state_dict), loader, rng.

    A missing, truncated or altered file is a :class:`CheckpointError` naming it: JSON is parsed with its path
    in the message, and (``verify``) every file's sha256 is checked against the one ``save_checkpoint`` recorded."""
    path = Path(path)
    missing = [n for n in CHECKPOINT_FILES if not (path / n).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {missing}")
    cfg = read_json(path / "config.json")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("step"), int):
        raise CheckpointError(f"{path / 'config.json'}: not a training checkpoint's config (no integer 'step')")
    recorded = cfg.get("files_sha256") if verify else None
    if isinstance(recorded, dict):
        for name, digest in recorded.items():
            if name in CHECKPOINT_FILES and sha256_file(path / name) != digest:
                raise CheckpointError(f"{path / name}: sha256 differs from the one recorded at save (damaged "
                                      "file); resume from an earlier checkpoint or delete this folder")

    def js(name: str) -> Any:
        obj = read_json(path / name)
        if not isinstance(obj, dict):
            raise CheckpointError(f"{path / name}: expected a JSON object, got a {type(obj).__name__}")
        return obj

    model_state = load_safetensors(path / "model.safetensors")
    try:
        opt = _optimizer_from_flat(load_safetensors(path / "optimizer.safetensors"), js("optimizer.json"))
    except (KeyError, ValueError, AttributeError, TypeError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path / 'optimizer.json'}: malformed optimizer state ({e!r})") from e
    return {"config": cfg, "model": model_state, "optimizer": opt, "loader": js("loader.json"),
            "rng": (load_safetensors(path / "rng.safetensors"), js("rng.json")), "step": int(cfg["step"])}
