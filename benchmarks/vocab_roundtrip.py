"""Vocabulary speed on random documents (debug codecs' layout, code level): encode, strict decode, grammar.

    python benchmarks/vocab_roundtrip.py [--docs 5000]

Peer in the same run: ``numpy.concatenate`` of the same id arrays (the floor of building the sequences).
Writes benchmarks/results/vocab_roundtrip.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "vocab"))
from vocab_helpers import make_vocab, random_doc  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--docs", type=int, default=5000)
    p.add_argument("--out", default="benchmarks/results/vocab_roundtrip.json")
    args = p.parse_args(argv)
    v = make_vocab()
    rng = np.random.default_rng(0)
    docs = [random_doc(rng, v) for _ in range(args.docs)]
    t0 = time.perf_counter()
    ids = [v.encode(d) for d in docs]
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in ids:
        v.decode(i)
    t_dec = time.perf_counter() - t0
    arrays = [i.numpy() for i in ids]
    t0 = time.perf_counter()
    for a in arrays:
        np.concatenate([a[:1], a[1:]])
    t_peer = time.perf_counter() - t0
    sub = [i.tolist() for i in ids[:500]]
    n_sub = sum(len(s) for s in sub)
    t0 = time.perf_counter()
    for s in sub:
        g = v.grammar()
        for x in s:
            g.allowed_mask()
            g.step(x)
    t_gram = time.perf_counter() - t0
    n = sum(len(i) for i in ids)
    res = {
        "documents": len(docs), "mean_ids_per_document": n / len(docs),
        "encode_docs_per_s": len(docs) / t_enc, "decode_docs_per_s": len(docs) / t_dec,
        "encode_ids_per_s": n / t_enc, "decode_ids_per_s": n / t_dec,
        "grammar_step_and_mask_ids_per_s": n_sub / t_gram,
        "peer_numpy_concat_docs_per_s": len(docs) / t_peer,
    }
    out = {"benchmark": "vocab_roundtrip", "machine": {"platform": platform.platform(),
                                                      "cpu_threads": torch.get_num_threads()},
           "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
           "results": res, "command": " ".join(sys.argv)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
