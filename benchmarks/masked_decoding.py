"""Masked vs next-token image decoding on ONE model: digit-judge accuracy, seconds and forwards per image.

    .venv/bin/python benchmarks/masked_decoding.py --ckpt runs/masked-digits/lm/final \
        --vocab runs/masked-digits/vocab [--per-digit 10] [--steps 4,8,12,16] [--batches 1,10] [--threads 1] \
        [--dtype bfloat16] [--fid-batch 10]

The model must have been trained with masked-image documents (``train.masked``, e.g. the LM preset
``masked-digits``) on a vocabulary with ``<|mask|>``. Prompts are the evaluation's text -> image prompts ("the
digit k", ``--per-digit`` each, k = 0..9); every decoder draws the same prompts with the same sampling
(``--cfg`` guidance with the unconditional rows in the batch, temperature 1, ``--top-k``) and its images go to
the digit CNN judge (:mod:`omnitok.eval.judges.digit_classifier`, trained on real digits only). Decoders, in one
process, on the same weights:

* ``next-token``: ``generate(method="cached")``, one forward per id (h * (w + 1) + 1 of them);
* ``next-token + jacobi``: speculative Jacobi decoding (``method="jacobi"``);
* ``hf``: Hugging Face ``generate`` on the exported model (``export_hf``), CFG as a batch [cond; uncond] with a
  logits processor (guidance, the same constraint table, top-k, one draw for both halves), as
  ``benchmarks/generate.py`` does; skipped without ``transformers``;
* ``masked-K``: ``generate(method="masked", steps=K)`` for each K of ``--steps``.

Seconds per image: the median over batches of (batch wall time / batch size), pixel decoding excluded (it is
the same for all); every decoder runs at each batch size of ``--batches`` (prompts per call; CFG doubles the
rows), the decoders taking turns call by call (a change of the machine's load hits all of them alike). ``--dtype bfloat16`` runs every decoder, Hugging Face's included, on the same weights in bfloat16 (on a
CPU with AMX / AVX512-BF16 the masked forward's large matmuls run faster; the one-id steps do not).
FID (``omnitok.eval.fid``, Inception features) of each decoder's images against ``--fid-real`` held-out test
digits (balanced over the labels), for the run at ``--fid-batch`` prompts per call (0 = no FID).
``--profile`` adds the top operators of one batch of next-token and of masked-8 decoding
(torch.profiler, CPU time). Writes JSON (``--out``, default ``benchmarks/results/masked_decoding_<device>.json``)
and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from omnitok.generation import generate
from omnitok.generation.cfg import guide
from omnitok.generation.constraints import step_table
from omnitok.generation.generate import left_pad, prepare_prompts
from omnitok.model.transformer import Transformer
from omnitok.vocab import Text, Vocabulary

RESULTS = Path(__file__).resolve().parent / "results"
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def run_ours(model, vocab, prompts, grid, method: str, steps: int | None, kw: dict[str, Any], seed: int,
             batch: int, starts: list[int]) -> dict[str, Any]:
    """The calls of ``batch`` prompts starting at each of ``starts``."""
    images, per_image, forwards = [], [], []
    for i in starts:
        chunk = prompts[i : i + batch]
        t0 = time.perf_counter()
        out = generate(model, vocab, [[Text(p)] for p in chunk], "image", grid=grid, method=method, steps=steps,
                       seed=seed + i, decode_data=False, **kw)
        dt = time.perf_counter() - t0
        per_image.append(dt / len(chunk))
        forwards.append(out.stats["forwards"])
        images += out.outputs  # pixels are decoded by judge(), outside the timing
    return {"segments": images, "s_per_image": per_image, "forwards": forwards}


class HFGuidance:
    """LogitsProcessor for HF generate: CFG over [cond; uncond] halves, our constraint table, top-k, one draw;
    returns scores that make greedy search pick that token in both halves."""

    def __init__(self, table, prompt_len: int, cfg: float, top_k: int, generator: torch.Generator) -> None:
        self.table, self.P, self.cfg, self.top_k, self.g = table, prompt_len, cfg, top_k, generator

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.P
        guided = guide(scores, self.cfg) + self.table.step_bias(step)
        if 0 < self.top_k < guided.shape[-1]:
            kth = torch.topk(guided, self.top_k, dim=-1).values[..., -1:]
            guided = guided.masked_fill(guided < kth, float("-inf"))
        tok = torch.multinomial(guided.softmax(-1), 1, generator=self.g)  # (B, 1)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, torch.cat([tok, tok]), 0.0)
        return out


def run_hf(hf, vocab, prompts, grid, cfg: float, top_k: int, seed: int, batch: int,
           starts: list[int]) -> dict[str, Any]:
    from transformers import LogitsProcessorList

    table = step_table(vocab, "image", grid)
    S = table.num_steps
    segs, per_image = [], []
    for i in starts:
        chunk = [[Text(p)] for p in prompts[i : i + batch]]
        cond, uncond = prepare_prompts(vocab, chunk, "image", grid, cfg=True)
        ids, mask = left_pad(cond + uncond, vocab.pad_id)
        proc = HFGuidance(table, ids.shape[1], cfg, top_k, torch.Generator().manual_seed(seed + i))
        t0 = time.perf_counter()
        with torch.no_grad():
            out = hf.generate(ids, attention_mask=mask.long(), max_new_tokens=S, min_new_tokens=S, do_sample=False,
                              logits_processor=LogitsProcessorList([proc]), pad_token_id=vocab.pad_id,
                              eos_token_id=None, use_cache=True)
        per_image.append((time.perf_counter() - t0) / len(chunk))
        for r in range(len(chunk)):
            segs.append(vocab.decode(torch.cat([cond[r], out[r, ids.shape[1]:]])).segments[-1])
    return {"segments": segs, "s_per_image": per_image, "forwards": [S] * len(per_image)}


def judge(vocab, segments, labels, classifier, fid=None) -> dict[str, Any]:
    """Digit-judge accuracy (and per digit) of decoded images; FID against the real features in ``fid``."""
    from omnitok.vocab.document import Document

    for seg in segments:
        vocab.decode_data(Document([seg]))
    x = torch.stack([seg.data.float() for seg in segments])  # (N, C, H, W)
    pred = classifier.predict(x)
    out = {"accuracy": float((pred == labels).float().mean()),
           "per_digit": {str(k): float((pred[labels == k] == k).float().mean()) for k in range(10)}}
    if fid is not None:
        from omnitok.eval.fid import frechet_distance

        real, f = fid.real[0], fid.features(x)
        out["fid"] = frechet_distance(real.mean(0), np.cov(real, rowvar=False), f.mean(0), np.cov(f, rowvar=False))
        out["fid_images"] = {"generated": len(f), "real": len(real)}
    return out


def real_digits(n: int, image_size: int) -> torch.Tensor:
    """(n, C, H, W): held-out test digits, balanced over the ten labels (the FID reference)."""
    from omnitok.data.dataset import ShardDataset

    per, groups = -(-n // 10), {k: [] for k in range(10)}
    for item in ShardDataset("digits", "test", image_size=image_size, rank=0, world_size=1):
        if len(groups[int(item["label"])]) < per:
            groups[int(item["label"])].append(item["image"])
        if sum(map(len, groups.values())) >= per * 10:
            break
    return torch.stack([groups[k][i] for i in range(per) for k in range(10) if i < len(groups[k])][:n])


def codec_ceiling(vocab, classifier, n: int) -> dict[str, Any]:
    """The judge on ``n`` real test digits passed through the image codec (encode, decode): what a perfect
    model of the codes would score."""
    from omnitok.data.dataset import ShardDataset
    from omnitok.vocab.document import Document, Image

    items = []
    for item in ShardDataset("digits", "test", image_size=32, rank=0, world_size=1):
        items.append(item)
        if len(items) >= n:
            break
    docs = [Document([Image(data=it["image"])]) for it in items]
    vocab.fill_codes(docs)
    segs = [d.segments[0] for d in docs]
    for seg in segs:
        seg.data = None
    labels = torch.tensor([int(it["label"]) for it in items])
    return {"decoder": "real test digits through the codec", "n": len(items),
            **judge(vocab, segs, labels, classifier)}


def profile(model, vocab, prompts, grid, kw) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    out = {}
    for name, method, steps in (("next-token", "cached", None), ("masked-8", "masked", 8)):
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            generate(model, vocab, [[Text(p)] for p in prompts], "image", grid=grid, method=method, steps=steps,
                     seed=0, decode_data=False, **kw)
        ev = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in ev)
        out[name] = {"total_self_cpu_s": total / 1e6,
                     "top": [{"op": e.key, "share": e.self_cpu_time_total / total, "calls": e.count} for e in ev[:6]]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--per-digit", type=int, default=10)
    ap.add_argument("--steps", default="4,8,12,16")
    ap.add_argument("--batches", default="1,10", help="prompts per generate call, one run per value")
    ap.add_argument("--cfg", type=float, default=5.0, help="guidance (5: the quickstart's text -> image setting)")
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--skip", default="", help="comma-separated: jacobi,hf")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                    help="the weights' dtype for every decoder (HF's included)")
    ap.add_argument("--fid-batch", type=int, default=-1, help="FID for the run at this batch (-1: the largest of "
                    "--batches; 0: no FID)")
    ap.add_argument("--fid-real", type=int, default=200, help="held-out test digits for the FID reference")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from omnitok.eval.judges.digit_classifier import load_or_train

    skip = {s for s in args.skip.split(",") if s}
    vocab = Vocabulary.load(args.vocab)
    model = Transformer.from_pretrained(args.ckpt).eval()
    dtype = getattr(torch, args.dtype)
    grid = tuple((model.generation_config or {}).get("grids", {}).get("image") or (8, 8)) \
        if getattr(model, "generation_config", None) else (8, 8)
    classifier = load_or_train(progress=False)
    prompts = [f"the digit {WORDS[k]}" for k in range(10) for _ in range(args.per_digit)]
    labels = torch.tensor([k for k in range(10) for _ in range(args.per_digit)])
    kw = {"cfg_scale": args.cfg, "temperature": 1.0, "top_k": args.top_k}
    decoders: list[tuple[str, str, int | None]] = [("next-token", "cached", None)]
    if "jacobi" not in skip:
        decoders.append(("next-token + jacobi", "jacobi", None))
    decoders += [(f"masked-{k}", "masked", int(k)) for k in args.steps.split(",")]
    rows: list[dict[str, Any]] = []
    hf = None
    if "hf" not in skip:
        try:
            import transformers

            from omnitok.train.export_hf import export_hf

            with tempfile.TemporaryDirectory() as tmp:
                export_hf(model, tmp)
                hf = transformers.AutoModelForCausalLM.from_pretrained(tmp, dtype=dtype).eval()
        except ImportError as e:
            print(f"masked_decoding: no transformers ({e}); the hf row is skipped", file=sys.stderr)
    model = model.to(dtype)
    batches = [int(b) for b in args.batches.split(",")]
    fid_batch = max(batches) if args.fid_batch < 0 else args.fid_batch
    fid = None
    if fid_batch in batches:
        from omnitok.eval.fid import InceptionFID

        fid = InceptionFID()
        fid.real.append(fid.features(real_digits(args.fid_real, 32)))  # the digit codec's 32 px, as codec_ceiling
    for batch in batches:
        f = fid if batch == fid_batch else None
        # every decoder runs each call of prompts in turn (alternating), so a change of load hits all alike
        runners = ([("hf generate (next-token)", lambda st, b=batch: run_hf(hf, vocab, prompts, grid, args.cfg,
                                                                  args.top_k, args.seed, b, st))] if hf is not None else [])
        runners += [(name, lambda st, m=method, k=steps, b=batch: run_ours(model, vocab, prompts, grid, m, k, kw,
                                                                          args.seed, b, st)) for name, method, steps in decoders]
        got: dict[str, dict[str, list]] = {n: {"segments": [], "s_per_image": [], "forwards": []} for n, _ in runners}
        for i in tqdm(range(0, len(prompts), batch), desc=f"batch {batch}", leave=False):
            for name, fn in runners:
                for key, val in fn([i]).items():
                    got[name][key] += val
        for name, _ in runners:
            r = got[name]
            rows.append({"decoder": name, "batch": batch, **_summary(r),
                         **judge(vocab, r["segments"], labels, classifier, f)})
            print(_line(rows[-1]), file=sys.stderr, flush=True)
    for batch in batches:
        same = [r for r in rows if r["batch"] == batch]
        base = next((r for r in same if r["decoder"].startswith("hf")), None)
        ours = next(r for r in same if r["decoder"] == "next-token")
        for r in same:
            r["speedup_vs_next_token"] = ours["s_per_image"] / r["s_per_image"]
            if base is not None:
                r["speedup_vs_hf"] = base["s_per_image"] / r["s_per_image"]
    record = {
        "benchmark": "masked_decoding", "ckpt": args.ckpt, "grid": list(grid), "prompts": len(prompts),
        "batches": batches, "sampling": kw, "threads": torch.get_num_threads(), "dtype": args.dtype,
        "fid_batch": fid_batch if fid is not None else None,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "python": sys.version.split()[0],
                    "torch": torch.__version__,
                    "transformers": __import__("transformers").__version__ if hf is not None else None},
        "judge_test_accuracy": classifier.test_accuracy, "rows": rows,
        "codec_ceiling": codec_ceiling(vocab, classifier, len(prompts)),
        "command": " ".join(["benchmarks/masked_decoding.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    if args.profile:
        record["profile"] = profile(model, vocab, prompts[: max(batches)], grid, kw)
    out = Path(args.out) if args.out else RESULTS / "masked_decoding_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print("\n| decoder | batch | forwards / image | s / image (median) | vs next-token | vs HF | digit-judge accuracy "
          "| FID |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['decoder']} | {r['batch']} | {r['forwards']} | {r['s_per_image']:.3f} | {r['speedup_vs_next_token']:.2f}x | "
              + (f"{r['speedup_vs_hf']:.2f}x" if "speedup_vs_hf" in r else "-") + f" | {r['accuracy']:.1%} | "
              + (f"{r['fid']:.1f}" if "fid" in r else "-") + " |")
    c = record["codec_ceiling"]
    print(f"\nreal test digits through the codec: {c['accuracy']:.1%} (n = {c['n']}); judge on real test digits: "
          f"{classifier.test_accuracy:.1%}")
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    return {"s_per_image": statistics.median(r["s_per_image"]), "s_per_image_all": r["s_per_image"],
            "forwards": statistics.median(r["forwards"])}


def _line(r: dict[str, Any]) -> str:
    return f"{r['decoder']} (batch {r['batch']}): {r['s_per_image']:.3f} s/image, {r['forwards']} forwards, accuracy {r['accuracy']:.1%}"


if __name__ == "__main__":
    raise SystemExit(main())
