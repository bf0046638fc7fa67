"""A model folder and its vocabulary, loaded and checked against each other (``omnitok generate``, ``omnitok
serve`` and ``omnitok eval model`` load the same way).

The model folder may be a model folder (``config.json`` + ``model.safetensors``), a training checkpoint folder,
or a run folder (its ``final/``, else its latest checkpoint). The vocabulary folder comes from ``vocab``, else
from the model: a ``vocab_dir`` entry in its ``config.json``, a ``vocab.json`` in the model folder, a ``vocab/``
folder beside it (or one level up), or inside it. When the model's ``config.json`` records a ``vocab_hash``, the
vocabulary must have it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omnitok._io import latest_checkpoint
from omnitok.codecs.base import select_device
from omnitok.model.transformer import Transformer
from omnitok.vocab.vocabulary import Vocabulary

__all__ = ["find_vocab", "load_model", "recorded", "resolve_ckpt"]


def recorded(ckpt: Path, key: str) -> str | None:
    """``key`` from the folder's config.json: top level, ``train``, ``extra`` or ``model.extra``."""
    path = ckpt / "config.json"
    if not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    for place in (cfg, cfg.get("train") or {}, cfg.get("extra") or {}, model.get("extra") or {}):
        if isinstance(place, dict) and place.get(key):
            return str(place[key])
    return None


def find_vocab(ckpt: Path, vocab: str | None) -> Path:
    """The vocabulary folder for a model folder (see the module docstring)."""
    if vocab:
        return Path(vocab)
    cands = [ckpt, ckpt.parent / "vocab", ckpt.parent.parent / "vocab", ckpt / "vocab"]
    rec = recorded(ckpt, "vocab_dir")
    if rec:
        cands.insert(0, Path(rec))
    for c in cands:
        if (c / "vocab.json").is_file():
            return c
    raise ValueError(f"--vocab: {ckpt} records no vocabulary folder (looked for vocab.json in "
                     f"{', '.join(str(c) for c in cands)}); pass --vocab DIR")


def resolve_ckpt(ckpt: str, what: str = "--ckpt") -> Path:
    """A model folder, a training checkpoint folder, or a run folder (its ``final/``, else the latest checkpoint);
    ``what``: the argument named in the error."""
    path = Path(ckpt)
    if (path / "model.safetensors").is_file():
        return path
    if (path / "final" / "model.safetensors").is_file():
        return path / "final"
    latest = latest_checkpoint(path) if path.is_dir() else None
    if latest is None:
        raise ValueError(f"{what} {ckpt}: expected a model folder (config.json + model.safetensors), a training "
                         "checkpoint folder, or a run folder with final/ or checkpoints/")
    return latest


def load_model(ckpt: str, vocab: str | None, device: str = "auto") -> tuple[Any, Any, Path, Path]:
    """(model, vocabulary, model folder, vocabulary folder) for ``--ckpt`` / ``--vocab``, checked against each
    other."""
    dev = select_device(device)
    path = resolve_ckpt(ckpt)
    vocab_dir = find_vocab(path, vocab)
    voc = Vocabulary.load(vocab_dir, map_location=str(dev))
    model = Transformer.from_pretrained(path, map_location=dev)
    rec = recorded(path, "vocab_hash")
    if rec and rec != voc.hash:
        raise ValueError(f"--vocab {vocab_dir}: hash {voc.hash[:12]} differs from the {rec[:12]} the model "
                         f"in {path} was trained with")
    if model.config.vocab_size < voc.size:
        raise ValueError(f"--vocab {vocab_dir}: {voc.size} ids, but the model in {path} has only "
                         f"{model.config.vocab_size}")
    return model, voc, path, vocab_dir
