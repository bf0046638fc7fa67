"""``omnitok eval codec CKPT --data NAME --split test [--out DIR] [--limit N]``

Loads a codec folder (``load_codec``), dispatches on ``codec.modality`` to
``omnitok.eval.<modality>_codec.evaluate(codec, data, split, out_dir, limit) -> dict`` and writes the
dict as ``<out>/metrics.json`` (default ``<CKPT>/eval-<data>-<split>/``), with the checkpoint path and
its weights hash. Prints the JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from typing import Any

from omnitok.codecs.base import load_codec, read_codec_config, select_device, write_json_atomic

__all__ = ["add_arguments", "evaluate_checkpoint", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="codec folder (config.json + model.safetensors)")
    parser.add_argument("--data", required=True, help="dataset name (digits, emoji, video, speech, synthetic)")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--out", default=None, help="output folder (default CKPT/eval-DATA-SPLIT)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N examples")
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto")
    parser.add_argument("--no-fid", dest="fid", action="store_false", help="skip rFID (images only)")


def evaluate_checkpoint(checkpoint: str | Path, data: str, split: str = "test", out: str | Path | None = None,
                        limit: int | None = None, device: str = "auto", fid: bool = True) -> dict[str, Any]:
    checkpoint = Path(checkpoint)
    cfg = read_codec_config(checkpoint)
    codec = load_codec(checkpoint).to(select_device(device))
    codec.train_config = cfg.get("preset") or {}
    out_dir = Path(out) if out else checkpoint / f"eval-{data}-{split}"
    module = importlib.import_module(f"omnitok.eval.{codec.modality}_codec")
    t0 = time.perf_counter()
    extra = {"fid": False} if codec.modality == "image" and not fid else {}
    result = module.evaluate(codec, data, split, out_dir, limit, **extra)
    result.update(checkpoint=str(checkpoint), weights_sha256=cfg.get("weights_sha256"),
                  codec_class=cfg["codec_class"], eval_seconds=round(time.perf_counter() - t0, 1))
    if "train" in cfg:
        result["train"] = {k: v for k, v in cfg["train"].items() if k != "final"}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "metrics.json", result)
    return result


def run(args: argparse.Namespace) -> int:
    result = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.out, args.limit, args.device, args.fid)
    print(json.dumps(result, indent=2))
    return 0
