"""Tokenisation throughput: ``omnitok tokenize``'s pipeline on built datasets, examples/s on this machine.

    python benchmarks/tokenize_throughput.py --vocab runs/vocab-main --data digits:caption2image,emoji:caption2image \
        --limit 1000 [--codecs text=DIR,image=DIR]

For each dataset:task it measures, in the same run:
  * ``read``      reading + decoding the media only (ShardDataset-level work, no codec): the peer / floor;
  * ``tokenize``  the whole pipeline (decode, codec encode in batches, vocabulary encode, shard write);
  * ``vocab``     ``Vocabulary.encode`` + strict ``decode`` of the produced documents (code level).
Writes benchmarks/results/tokenize_<device>.json (machine, versions, medians of ``--repeats`` runs).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import torch

from omnitok.codecs.base import select_device
from omnitok.data.dataset import ShardDataset
from omnitok.data.token_shards import TokenShards
from omnitok.data.tokenize import (
    CROSS_TASKS,
    build_document,
    codec_input_size,
    load_or_build_vocab,
    parse_codecs,
    pick_partner,
    spoken_digits,
    tokenize_dataset,
)


def _versions() -> dict[str, str]:
    import numpy
    import tokenizers

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "tokenizers": tokenizers.__version__}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", required=True)
    p.add_argument("--codecs", default=None)
    p.add_argument("--data", default="digits:caption2image,emoji:caption2image")
    p.add_argument("--split", default="train")
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--root", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    vocab = load_or_build_vocab(args.vocab, parse_codecs(args.codecs))
    if args.image_size is None:  # as `omnitok tokenize`: the size the image codec was trained on
        args.image_size = codec_input_size(args.vocab, parse_codecs(args.codecs), "image")
    device = select_device(args.device)
    for c in vocab.codecs.values():
        c.to(device).eval()
    results = []
    for item in args.data.split(","):
        name, _, task = item.partition(":")
        partners = spoken_digits(args.split, args.root) if task in CROSS_TASKS else None
        examples = list(islice(ShardDataset(name, args.split, root=args.root, decode=False), args.limit))
        read_s, tok_s, vocab_s = [], [], []
        stats = {}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for ex in examples:  # the floor: media decoding only
                build_document(task, ex, partner=pick_partner(ex, partners) if partners else None,
                               image_size=args.image_size)
            read_s.append(time.perf_counter() - t0)
            with tempfile.TemporaryDirectory() as tmp:
                stats = tokenize_dataset(vocab, examples, tmp, task, batch_size=args.batch_size, partners=partners,
                                         image_size=args.image_size, progress=False)
                tok_s.append(stats["seconds"])
                ts = TokenShards(tmp)
                docs = [ts[i] for i in range(len(ts))]
                t0 = time.perf_counter()
                for ids in docs:
                    vocab.encode(vocab.decode(ids))
                vocab_s.append(time.perf_counter() - t0)
        n = len(examples)
        row = {
            "data": f"{name}:{task}",
            "examples": n,
            "ids_per_document": stats["tokens"] / max(stats["documents"], 1),
            "read_examples_per_s": n / statistics.median(read_s),
            "tokenize_examples_per_s": n / statistics.median(tok_s),
            "vocab_roundtrip_docs_per_s": n / statistics.median(vocab_s),
        }
        results.append(row)
        print(json.dumps(row))
    out = {
        "benchmark": "tokenize",
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_threads": torch.get_num_threads(), "device": str(device),
                    "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
        "versions": _versions(),
        "vocab": {"dir": args.vocab, "hash": vocab.hash, "size": vocab.size,
                  "codecs": {m: e.name for m, e in vocab.entries.items()}},
        "args": vars(args),
        "results": results,
        "command": " ".join(sys.argv),
    }
    path = Path(args.out or f"benchmarks/results/tokenize_{device.type}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
