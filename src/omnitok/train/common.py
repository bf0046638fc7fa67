"""What the preset-driven trainers (``omnitok train codec``, ``diffusion``, ``transfusion``) do the same way: a
preset merged over the trainer's defaults, the run folder opened (its ``config.yaml``, threads, seed), and the
``--preset / --out / --resume key=value ...`` arguments with the command that reads them."""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

__all__ = ["add_preset_arguments", "merge", "run_preset", "start_run"]


def merge(base: dict[str, Any], over: dict[str, Any] | None) -> dict[str, Any]:
    """``over`` merged into a deep copy of ``base``, mapping by mapping (a preset over its trainer's defaults)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def start_run(cfg: dict[str, Any], out_dir: str | Path) -> Path:
    """Create the run folder, write the resolved preset to ``config.yaml``, take ``train.threads`` CPU threads
    (when set) and seed torch with ``seed``; return the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    if cfg["train"].get("threads"):
        torch.set_num_threads(int(cfg["train"]["threads"]))
    torch.manual_seed(int(cfg["seed"]))
    return out


def add_preset_arguments(parser: argparse.ArgumentParser, kind: str, examples: str) -> None:
    """``--preset NAME`` (``configs/<kind>/NAME.yaml`` or a YAML path), ``--out``, ``--resume`` and overrides."""
    parser.add_argument("--preset", required=True, help=f"configs/{kind}/NAME.yaml ({examples}) or a YAML path")
    parser.add_argument("--out", default=None, help=f"output folder (default runs/{kind}/NAME)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.steps=100")


def run_preset(args: argparse.Namespace, kind: str, load_preset: Callable[[str, list[str]], dict[str, Any]],
               train: Callable[..., Path], what: str) -> int:
    """The command of :func:`add_preset_arguments`: load the preset, train into ``--out`` (default
    ``runs/<kind>/<name>``) and print where ``what`` (the trained thing) was saved."""
    cfg = load_preset(args.preset, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / kind / cfg["name"]
    final = train(cfg, out, resume=args.resume)
    print(f"{what} saved to {final}")
    return 0
