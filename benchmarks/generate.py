"""Image generation speed: a 16 x 16 image (256 codes + 16 EOR + END) after a 32-token prompt, with CFG.

    nice -n 10 .venv/bin/python benchmarks/generate.py [--preset small] [--batches 1,8] [--naive-steps 40]

Same random weights for every decoder, in one process (weights do not change speed):

1. ``naive``: the reference loop (no cache, the whole sequence every step, conditional and unconditional
   branches as separate passes);
2. ``hf``: Hugging Face ``generate`` on the exported model (``export_hf``: LlamaForCausalLM when qk_norm is off,
   the default here), CFG as a batch of 2 per image with a logits processor (guidance + the same constraint
   table + temperature/top-k, drawing the token itself so both halves get the same one);
3. ``ours``: ``omnitok.generate`` (static KV cache, batched CFG, device-side constraints and sampling);
4. ``ours_jacobi``: the same with speculative Jacobi decoding;
5. ``ours_masked_K``: masked parallel decoding in K forwards (``--masked-steps``; the vocabulary has a
   ``<|mask|>`` id; with random weights only the speed means something).

HF and ours alternate ``--repeats`` times (medians reported; all times are in the JSON); the Jacobi and naive
runs are timed once. Sampling: temperature 1, top-k 1000, CFG scale 3 (the image defaults). The vocabulary has a realistic size
(text 8192 + image 16384 ids + specials) but no codecs: we time the ids, not the pixel decoder. The naive loop
is slow on a CPU; ``--naive-steps N`` times its first N steps of the same image and reports that time, and the
per-image figure scaled by the sequence lengths (marked ``estimated``). Without ``transformers`` installed the
HF column is skipped (said so on stderr and in the JSON). Writes ``benchmarks/results/generate_<device>.json``
(or ``--out``) and prints a Markdown table.

On a GPU, the presets of the targets (>= 20x HF at batch 1, >= 10x its images/s at batch 64)::

    python benchmarks/generate.py --device cuda --preset B --batches 1,64 --naive-steps 0
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

import torch

from omnitok.generation import generate
from omnitok.generation.cfg import guide
from omnitok.generation.constraints import step_table
from omnitok.generation.generate import decode_naive, left_pad, prepare_prompts
from omnitok.generation.sampling import SamplingParams
from omnitok.model.config import ModelConfig, apply_overrides, load_preset
from omnitok.model.transformer import Transformer
from omnitok.train.export_hf import export_hf
from omnitok.vocab import CodecEntry, Text, Vocabulary
from omnitok.vocab.special import SpecialTokens

RESULTS = Path(__file__).resolve().parent / "results"
GRID = (16, 16)
CFG, TOP_K, TEMP = 3.0, 1000, 1.0


def bench_vocab(text: int, image: int) -> Vocabulary:
    sp = SpecialTokens(with_mask=True)  # <|mask|> for the masked decoder (one more id)
    entries = {
        "text": CodecEntry("text", "bench-bpe", "TextCodec", "bench", text, 1, sp.size),
        "image": CodecEntry("image", "bench-vq", "ImageCodec", "bench", image, 1, sp.size + text),
    }
    return Vocabulary(entries, sp)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_ours(model, vocab, prompts, method: str, seed: int, device, window: int | None = None,
             steps: int | None = None) -> dict[str, Any]:
    sync(device)
    t0 = time.perf_counter()
    out = generate(model, vocab, prompts, "image", grid=GRID, cfg_scale=CFG, temperature=TEMP, top_k=TOP_K,
                   seed=seed, method=method, decode_data=False, jacobi_window=window, steps=steps)
    sync(device)
    dt = time.perf_counter() - t0
    for d in out.documents:  # every row must decode to a 16 x 16 image
        assert tuple(d.segments[-1].codes.shape[:2]) == GRID
    rec = {"seconds": dt, "forwards": out.stats["forwards"]}
    if "accepted_per_step" in out.stats:
        rec["accepted_per_step"] = out.stats["accepted_per_step"]
    if method == "masked":
        rec["accepted_per_step"] = GRID[0] * GRID[1] / out.stats["forwards"]  # codes per forward
    return rec


def run_naive(model, vocab, prompts, steps: int, seed: int, device) -> dict[str, Any]:
    """The first ``steps`` steps of the naive loop (same table, sampler, CFG)."""
    table = step_table(vocab, "image", GRID)
    full = table.num_steps
    part = type(table)(table.bias, table.index[:steps], table.ranges)
    cond, uncond = prepare_prompts(vocab, prompts, "image", GRID, cfg=True)
    params = SamplingParams(TEMP, TOP_K, 1.0)
    scales = torch.full((steps,), CFG)
    g = torch.Generator(device=device).manual_seed(seed)
    sync(device)
    t0 = time.perf_counter()
    decode_naive(model, cond, uncond, part, params, scales, g)
    sync(device)
    dt = time.perf_counter() - t0
    # cost per step ~ a constant + the sequence length: scale by the summed lengths (plus 1 per step)
    P = max(len(c) for c in cond)
    work = lambda n: sum(P + s + 1 for s in range(n))  # noqa: E731
    return {"seconds_measured": dt, "steps_measured": steps, "seconds": dt * work(full) / work(steps),
            "estimated": steps < full, "forwards": 2 * steps}


class HFGuidance:
    """LogitsProcessor for HF generate: CFG over [cond; uncond] halves, our constraint table, temperature,
    top-k, one draw; returns scores that make greedy search pick that token in both halves."""

    def __init__(self, table, prompt_len: int, generator: torch.Generator) -> None:
        from transformers import TemperatureLogitsWarper, TopKLogitsWarper

        self.table, self.P, self.g = table, prompt_len, generator
        self.warpers = [TemperatureLogitsWarper(TEMP), TopKLogitsWarper(TOP_K)] if TEMP != 1.0 else \
            [TopKLogitsWarper(TOP_K)]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.P
        guided = guide(scores, CFG) + self.table.step_bias(step)
        B = guided.shape[0]
        for w in self.warpers:
            guided = w(input_ids[:B], guided)
        tok = torch.multinomial(guided.softmax(-1), 1, generator=self.g)  # (B, 1)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, torch.cat([tok, tok]), 0.0)
        return out


def run_hf(hf, vocab, prompts, seed: int, device) -> dict[str, Any]:
    from transformers import LogitsProcessorList

    table = step_table(vocab, "image", GRID).to(device)
    cond, uncond = prepare_prompts(vocab, prompts, "image", GRID, cfg=True)
    ids, mask = left_pad(cond + uncond, vocab.pad_id)
    ids, mask = ids.to(device), mask.to(device)
    proc = HFGuidance(table, ids.shape[1], torch.Generator(device=device).manual_seed(seed))
    S = table.num_steps
    sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=mask.long(), max_new_tokens=S, min_new_tokens=S, do_sample=False,
                          logits_processor=LogitsProcessorList([proc]), pad_token_id=vocab.pad_id,
                          eos_token_id=None, use_cache=True)
    sync(device)
    dt = time.perf_counter() - t0
    B = len(cond)
    for r in range(B):  # HF's rows decode too (checks the processor)
        doc = vocab.decode(torch.cat([cond[r], out[r, ids.shape[1]:].cpu()]))
        assert tuple(doc.segments[-1].codes.shape[:2]) == GRID
    return {"seconds": dt, "forwards": S}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--override", nargs="*", default=["qk_norm=false"], help="model key=value overrides")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--naive-steps", type=int, default=40, help="naive loop steps timed (0 = skip the naive loop)")
    ap.add_argument("--naive-max-batch", type=int, default=1)
    ap.add_argument("--text-size", type=int, default=8192)
    ap.add_argument("--image-size", type=int, default=16384)
    ap.add_argument("--window", type=int, default=None, help="Jacobi window (default: 16 on GPU, 3 on CPU)")
    ap.add_argument("--skip", default="", help="comma-separated decoders to skip (naive,hf,ours,ours_jacobi)")
    ap.add_argument("--masked-steps", default="", help="comma-separated K: masked decoding in K forwards, timed once")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of HF and ours (median reported)")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU intra-op threads (1: on a shared 2-core machine 2 threads were ~30x slower per step)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu" and args.threads > 0:
        torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    vocab = bench_vocab(args.text_size, args.image_size)
    preset = apply_overrides(load_preset(args.preset), list(args.override))
    cfg = ModelConfig.from_dict({**preset["model"], "vocab_size": vocab.size})
    torch.manual_seed(0)
    model = Transformer(cfg).to(device).eval()
    hf = None
    if "hf" not in skip:
        try:
            import transformers
        except ImportError:
            print("generate: transformers is not installed (pip install 'omnitok[bench]'): the Hugging Face "
                  "generate column is skipped", file=sys.stderr, flush=True)
            skip.add("hf")
    if "hf" not in skip:
        with tempfile.TemporaryDirectory() as tmp:
            export_hf(model, tmp)
            hf = transformers.AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32,
                                                                   attn_implementation="sdpa").to(device).eval()
    prompt_ids = torch.randint(0, args.text_size, (29,), generator=torch.Generator().manual_seed(0))
    base = Text(codes=prompt_ids)  # BOS BEGIN_TEXT 29 ids END_TEXT = 32 prompt tokens
    assert len(vocab.encode_prompt([base], "image", GRID)) == 32 + 3
    S = step_table(vocab, "image", GRID).num_steps
    rows: list[dict[str, Any]] = []
    # warm-up (allocator, kernels) on a small image
    generate(model, vocab, [base], "image", grid=(2, 2), cfg_scale=CFG, top_k=TOP_K, seed=0, decode_data=False)
    for B in [int(b) for b in args.batches.split(",")]:
        prompts = [[Text(codes=prompt_ids.roll(i))] for i in range(B)]
        runs: dict[str, dict[str, Any]] = {}
        if "naive" not in skip and args.naive_steps > 0 and args.naive_max_batch >= B:
            runs["naive"] = run_naive(model, vocab, prompts, min(args.naive_steps, S), 0, device)
        # HF and ours alternate, --repeats times each, so machine noise hits both; medians are reported
        timed: dict[str, list[dict[str, Any]]] = {}
        for rep in range(args.repeats):
            if hf is not None:
                timed.setdefault("hf", []).append(run_hf(hf, vocab, prompts, rep, device))
            if "ours" not in skip:
                timed.setdefault("ours", []).append(run_ours(model, vocab, prompts, "cached", rep, device))
        if "ours_jacobi" not in skip:
            timed["ours_jacobi"] = [run_ours(model, vocab, prompts, "jacobi", 0, device, args.window)]
        for k in (int(x) for x in args.masked_steps.split(",") if x):
            timed[f"ours_masked_{k}"] = [run_ours(model, vocab, prompts, "masked", 0, device, steps=k)]
        for name, recs in timed.items():
            secs = [r["seconds"] for r in recs]
            runs[name] = {**recs[0], "seconds": statistics.median(secs), "seconds_all": secs}
        for name, r in runs.items():
            rec = {"decoder": name, "batch": B, "seconds_per_image": r["seconds"] / B,
                   "tokens_per_s": B * S / r["seconds"], **r}
            if "hf" in runs:
                rec["speedup_vs_hf"] = runs["hf"]["seconds"] / r["seconds"]
            rows.append(rec)
            print(json.dumps(rec), flush=True)
    result = {
        "benchmark": "generate",
        "task": f"{GRID[0]}x{GRID[1]} image ({S} ids) after a 32-token prompt, CFG {CFG}, top-k {TOP_K}, "
                f"temperature {TEMP}",
        "model": {"preset": args.preset, "overrides": args.override, **cfg.to_dict(),
                  "params": model.num_params()},
        "vocab": {"size": vocab.size, "text": args.text_size, "image": args.image_size},
        "jacobi_window": args.window or (16 if device.type == "cuda" else 3),
        "peer": "transformers generate" if hf is not None else None,
        "device": str(device),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__ if hf is not None else None},
        "command": "nice -n 10 .venv/bin/python benchmarks/generate.py " + " ".join(argv or sys.argv[1:]),
        "results": rows,
    }
    out = Path(args.out) if args.out else RESULTS / f"generate_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| decoder | batch | s / image | tokens/s | forwards | tokens/forward | vs HF |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        est = " (est.)" if r.get("estimated") else ""
        print(f"| {r['decoder']} | {r['batch']} | {r['seconds_per_image']:.2f}{est} | {r['tokens_per_s']:.1f} | "
              f"{r['forwards']} | {r.get('accepted_per_step', 1.0):.2f} | "
              + (f"{r['speedup_vs_hf']:.2f}x |" if "speedup_vs_hf" in r else "- |"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
