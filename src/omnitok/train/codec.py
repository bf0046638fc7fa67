"""``omnitok train codec --preset NAME [--out DIR] [--resume] key=value ...``

Reads ``src/omnitok/configs/codec/NAME.yaml`` (``type: image | video | audio``), applies the
``key=value`` overrides (dotted keys, typed values: ``train.steps=200 train.lr=1e-3 quantizer.codebook_size=512``) and
runs ``omnitok.train.<type>_codec.train(cfg, out_dir, resume) -> Path`` (image and video share
:mod:`omnitok.train.image_codec`). Prints the final codec folder.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from omnitok.codecs.builder import load_preset
from omnitok.train.common import add_preset_arguments, run_preset

__all__ = ["add_arguments", "run", "trainer_for"]

TRAINERS = {"image": "omnitok.train.image_codec", "video": "omnitok.train.image_codec",
            "audio": "omnitok.train.audio_codec"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_preset_arguments(parser, "codec", "debug, digits, emoji64-f8, ...")


def trainer_for(kind: str):
    if kind not in TRAINERS:
        raise ValueError(f"codec preset type must be one of {sorted(TRAINERS)}, got {kind!r}")
    return importlib.import_module(TRAINERS[kind])


def _train(cfg: dict[str, Any], out: Path, resume: bool = False) -> Path:
    return trainer_for(cfg["type"]).train(cfg, out, resume=resume)


def run(args: argparse.Namespace) -> int:
    return run_preset(args, "codec", load_preset, _train, "codec")
