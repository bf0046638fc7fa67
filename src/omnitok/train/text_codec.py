"""``omnitok train text-codec``: learn the byte-level BPE on the text corpus plus every caption and transcript.

    omnitok train text-codec --vocab-size 8192 [--out runs/codec/text-bpe8192] [--datasets text,digits,...]

Reads the built datasets through the data package (``ShardDataset(..., decode=False)``): the ``txt`` files of
the text corpus and the ``caption`` / ``transcript`` of every other example, from the training split only (so
held-out captions stay unseen). Datasets that are not built are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from omnitok.codecs.text import TextCodec

__all__ = ["add_arguments", "iter_training_texts", "run", "train_text_codec"]

DEFAULT_DATASETS = ("text", "digits", "emoji", "speech", "video")


def iter_training_texts(datasets: Sequence[str], split: str = "train", root: str | os.PathLike | None = None,
                        counts: dict[str, int] | None = None, progress: bool = True) -> Iterator[str]:
    """Texts of the built datasets: corpus files and captions / transcripts (``counts`` gets per-dataset numbers)."""
    from omnitok.data.dataset import ShardDataset

    for name in datasets:
        try:
            ds = ShardDataset(name, split, root=root, decode=False, rank=0, world_size=1)
        except ValueError as e:
            print(f"train text-codec: skipping {name}: {e}")
            continue
        n = 0
        for ex in tqdm(ds, desc=f"read {name}", unit="ex", disable=not progress, leave=False):
            raw = ex.files.get("txt")
            if raw is not None:
                text = raw.decode("utf-8", errors="replace")
            else:
                text = str(ex.meta.get("caption") or ex.meta.get("transcript") or "")
            if text:
                n += 1
                yield text
        if counts is not None:
            counts[name] = n


def train_text_codec(vocab_size: int, out: str | os.PathLike, datasets: Sequence[str] = DEFAULT_DATASETS,
                     split: str = "train", root: str | os.PathLike | None = None, min_frequency: int = 2,
                     progress: bool = True) -> dict:
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    codec = TextCodec.train_bpe(iter_training_texts(datasets, split, root, counts, progress), vocab_size=vocab_size,
                                min_frequency=min_frequency, show_progress=progress)
    if not counts or not sum(counts.values()):
        raise ValueError(f"no training text found in {list(datasets)} (split {split}); build them with "
                         "`omnitok data build NAME`")
    digest = codec.save_pretrained(out, extra={"training": {"datasets": counts, "split": split,
                                                            "min_frequency": min_frequency}})
    info = {"out": str(out), "vocab_size": vocab_size, "learned_ids": codec.tokenizer.get_vocab_size(),
            "texts": counts, "seconds": round(time.perf_counter() - t0, 2), "weights_sha256": digest}
    return info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vocab-size", type=int, default=8192, help="BPE ids (256 bytes + merges)")
    parser.add_argument("--out", default=None, help="codec folder (default runs/codec/text-bpe<vocab-size>)")
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS), help="comma-separated dataset names")
    parser.add_argument("--split", default="train")
    parser.add_argument("--root", default=None, help="omnitok cache root")
    parser.add_argument("--min-frequency", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or f"runs/codec/text-bpe{args.vocab_size}")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    info = train_text_codec(args.vocab_size, out, datasets, args.split, args.root, args.min_frequency,
                            progress=not args.no_progress)
    print(json.dumps(info, indent=2))
    return 0
