"""Text -> image judged on digits, the part ``omnitok eval diffusion`` and ``omnitok eval transfusion`` share: the
judge's reading of each generated image (accuracy and the share per digit), Inception FID against held-out digits
(:mod:`.fid`), one grid per setting, the options of both commands and the JSON they write.

Prompts may come in any order: ``labels`` says which digit each image was prompted with.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["DigitJudging", "add_arguments", "machine", "parse_steps", "write_result"]


def machine() -> dict[str, Any]:
    """Where a timing was measured: platform, torch version, CPU threads."""
    return {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()}


class DigitJudging:
    """The digit judge (``clf``: a :class:`.judges.digit_classifier.DigitClassifier`) and, given held-out digits
    ``fid_real`` (N, 3, H, W) in [-1, 1], the FID network with their features computed once."""

    def __init__(self, clf: Any, fid_real: Tensor | None = None) -> None:
        self.clf = clf
        self.fid_net, self.real_feats = None, None
        if fid_real is not None:
            from omnitok.eval.fid import InceptionFID

            self.fid_net = InceptionFID()
            self.real_feats = self.fid_net.features(fid_real)

    def reading(self, images: Tensor, labels: Tensor) -> dict[str, Any]:
        """images (N, C, H, W) prompted with digits ``labels`` (N,) -> accuracy and the share read right per digit."""
        pred = self.clf.predict(images)
        return {"accuracy": float((pred == labels).float().mean()),
                "per_digit": {str(d): float((pred[labels == d] == d).float().mean()) for d in range(10)}}

    def add_fid_and_grid(self, row: dict[str, Any], images: Tensor, labels: Tensor, grid: Path | None) -> None:
        """``row["fid"]`` and ``row["fid_images"]`` (when FID is on); ``grid``: a PNG of up to 8 rows of the ten
        digits in order, its path in ``row["grid"]``."""
        if self.fid_net is not None:
            rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images  # greyscale pixel models
            self.fid_net.real, self.fid_net.fake = [self.real_feats], [self.fid_net.features(rgb)]
            row["fid"] = self.fid_net.score()
            row["fid_images"] = {"generated": len(images), "real": int(self.real_feats.shape[0])}
        if grid is not None:
            from omnitok.generation.diffusion import image_grid
            from omnitok.io.image import save_image

            where = [torch.nonzero(labels == d).flatten() for d in range(10)]  # each digit's images, in order
            rows = min(8, *(len(w) for w in where))
            save_image(image_grid(torch.stack([images[where[d][i]] for i in range(rows) for d in range(10)]),
                                  cols=10), grid)
            row["grid"] = str(grid)

    @staticmethod
    def progress_line(what: str, row: dict[str, Any]) -> str:
        return (f"{what}: accuracy {row['accuracy']:.3f}, {row['seconds_per_image']:.4f} s/image"
                + (f", FID {row['fid']:.1f}" if "fid" in row else ""))


def add_arguments(parser: argparse.ArgumentParser, per_digit_help: str, samples_help: str) -> None:
    """The options both commands take (after their checkpoint and step options)."""
    parser.add_argument("--cfg", type=float, default=3.0, help="classifier-free guidance scale (1 = off)")
    parser.add_argument("--per-digit", type=int, default=10, help=per_digit_help)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fid", action="store_true", help="also Inception FID against held-out digits")
    parser.add_argument("--split", default="test", help="held-out split")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--judge-dir", default=None, help="digit judge folder (default: the cache)")
    parser.add_argument("--samples", default=None, help=samples_help)
    parser.add_argument("--out", default=None, help="write the JSON result here")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--no-progress", action="store_true")


def parse_steps(args: argparse.Namespace) -> list[int]:
    """Take ``--threads`` and read ``--steps`` (comma-separated integers)."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        return [int(s) for s in str(args.steps).split(",") if s.strip()]
    except ValueError as e:
        raise ValueError(f"--steps {args.steps!r}: expected comma-separated integers") from e


def write_result(result: dict[str, Any], out: str | None, table: str) -> int:
    """Write ``result`` as JSON to ``out`` (when given) and print the Markdown ``table``."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(table)
    return 0
