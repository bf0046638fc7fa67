"""Where the time of one image goes: torch.profiler over masked decoding (K steps) and the cached next-token
decoder, same random weights, one prompt with CFG.

    nice -n 10 .venv/bin/python benchmarks/profile_masked.py [--preset small] [--grid 16x16] [--steps 8]

Prints and writes (``--out``, default ``benchmarks/results/profile_masked_cpu.json``) the total self CPU time and
the top operators of each decoder (profiler overhead included: compare shares, not seconds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from omnitok.generation import generate
from omnitok.model.config import ModelConfig, apply_overrides, load_preset
from omnitok.model.transformer import Transformer
from omnitok.vocab import CodecEntry, Text, Vocabulary
from omnitok.vocab.special import SpecialTokens


def bench_vocab(text: int, image: int) -> Vocabulary:
    """The layout of ``benchmarks/generate.py`` (text 8192 + image 16384 ids, ``<|mask|>``), no codecs."""
    sp = SpecialTokens(with_mask=True)
    return Vocabulary({"text": CodecEntry("text", "bench-bpe", "TextCodec", "bench", text, 1, sp.size),
                       "image": CodecEntry("image", "bench-vq", "ImageCodec", "bench", image, 1, sp.size + text)}, sp)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--grid", default="16x16")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    grid = tuple(int(g) for g in args.grid.split("x"))
    vocab = bench_vocab(8192, 16384)
    cfg = ModelConfig.from_dict({**apply_overrides(load_preset(args.preset), ["qk_norm=false"])["model"],
                                 "vocab_size": vocab.size})
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    prompt = [[Text(codes=torch.arange(29))]]
    out = {"preset": args.preset, "grid": list(grid), "steps": args.steps, "threads": args.threads,
           "torch": torch.__version__}
    for name, method, steps in ((f"masked-{args.steps}", "masked", args.steps), ("next-token", "cached", None)):
        kw = dict(method=method, steps=steps, cfg_scale=3.0, top_k=1000, decode_data=False, seed=0)
        generate(model, vocab, prompt, "image", grid=(4, 4), **kw)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            generate(model, vocab, prompt, "image", grid=grid, **kw)
        ev = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in ev)
        out[name] = {"self_cpu_s": total / 1e6,
                     "top": [{"op": e.key, "share": round(e.self_cpu_time_total / total, 3), "calls": e.count}
                             for e in ev[:8]]}
        print(f"{name}: {total / 1e6:.2f} s;", ", ".join(f"{t['op']} {t['share']:.0%}" for t in out[name]["top"][:6]))
    path = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / "profile_masked_cpu.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
