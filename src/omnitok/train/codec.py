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

from omnitok.codecs.builder import load_preset

__all__ = ["add_arguments", "run", "trainer_for"]

TRAINERS = {"image": "omnitok.train.image_codec", "video": "omnitok.train.image_codec",
            "audio": "omnitok.train.audio_codec"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, help="configs/codec/NAME.yaml (debug, digits, emoji64-f8, ...)")
    parser.add_argument("--out", default=None, help="output folder (default runs/codec/NAME)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.steps=100")


def trainer_for(kind: str):
    if kind not in TRAINERS:
        raise ValueError(f"codec preset type must be one of {sorted(TRAINERS)}, got {kind!r}")
    return importlib.import_module(TRAINERS[kind])


def run(args: argparse.Namespace) -> int:
    cfg = load_preset(args.preset, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / "codec" / cfg["name"]
    final = trainer_for(cfg["type"]).train(cfg, out, resume=args.resume)
    print(f"codec saved to {final}")
    return 0
