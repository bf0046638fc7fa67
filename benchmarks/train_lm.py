"""Training throughput of omnitok's Transformer beside Hugging Face LlamaForCausalLM of the same shape.

    nice -n 10 .venv/bin/python benchmarks/train_lm.py [--preset tiny] [--batch 8] [--seq 256] [--steps 10]
    python benchmarks/train_lm.py --device cuda --gpu-presets B,L --compile     # MFU on a GPU

One training step = forward + cross-entropy + backward + AdamW step, same weights (ours exported into the HF
model), same batch, fp32 on CPU (bf16 autocast on GPU). The two models alternate step by step in the same
process so machine noise hits both; we report the median step time and tokens/s. On a GPU it also reports MFU
(6N + attention FLOPs per token against the device's dense bf16 peak) for the presets given by --gpu-presets,
at each preset's own ``train.batch_size`` x ``train.seq_len`` unless --batch / --seq say otherwise. Without
``transformers`` installed our model is measured alone (said so on stderr and in the JSON). Writes
benchmarks/results/train_lm_<device>.json (or --out) after every preset and prints a Markdown table.
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

import torch

from omnitok.model.config import ModelConfig, load_preset
from omnitok.model.transformer import Transformer, lm_loss
from omnitok.train.export_hf import export_hf
from omnitok.train.metrics import FLOPS_PEAK, flops_per_token

RESULTS = Path(__file__).resolve().parent / "results"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_models(cfg: ModelConfig, device: torch.device, with_hf: bool):
    torch.manual_seed(0)
    ours = Transformer(cfg).to(device).train()
    hf = None
    if with_hf:
        import transformers

        with tempfile.TemporaryDirectory() as tmp:
            export_hf(ours, tmp)
            hf = transformers.AutoModelForCausalLM.from_pretrained(
                tmp, dtype=torch.float32, attn_implementation="sdpa").to(device).train()
    return ours, hf


def bench(cfg: ModelConfig, batch: int, seq: int, steps: int, warmup: int, device: torch.device,
          with_hf: bool = True, compile_ours: bool = False) -> dict:
    ours, hf = make_models(cfg, device, with_hf)
    models = {"omnitok": ours} | ({"hf_llama": hf} if hf is not None else {})
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in models.items()}
    fwd = {"omnitok": torch.compile(ours) if compile_ours else ours} | ({"hf_llama": hf} if hf else {})
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, cfg.vocab_size, (batch, seq + 1), generator=g).to(device)
    x, y = idx[:, :-1].contiguous(), idx[:, 1:].contiguous()
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)
    times: dict[str, list[float]] = {k: [] for k in models}
    losses: dict[str, float] = {}
    for it in range(warmup + steps):
        for name in models:
            sync(device)
            t = time.perf_counter()
            with amp:
                if name == "omnitok":
                    logits, _ = fwd[name](x)
                    loss, _ = lm_loss(logits, y)
                else:  # labels aligned with logits, no shift inside: pass the shifted loss ourselves
                    logits = fwd[name](input_ids=x).logits
                    loss, _ = lm_loss(logits, y)
            loss.backward()
            opts[name].step()
            opts[name].zero_grad(set_to_none=True)
            sync(device)
            if it >= warmup:
                times[name].append(time.perf_counter() - t)
            if it == 0:
                losses[name] = loss.item()
    out = {}
    fpt = flops_per_token(ours.num_params(False), cfg.n_layer, cfg.dim, seq, cfg.vocab_size)
    peak = next((v for k, v in FLOPS_PEAK.items() if device.type == "cuda"
                 and k in torch.cuda.get_device_name(device)), None)
    for name, ts in times.items():
        med = statistics.median(ts)
        rec = {"median_step_s": med, "tokens_per_s": batch * seq / med, "steps": len(ts),
               "first_loss": losses[name], "step_times_s": ts}
        if peak:
            rec["mfu"] = rec["tokens_per_s"] * fpt / peak
        out[name] = rec
    if "hf_llama" in out:
        out["speedup_vs_hf"] = out["omnitok"]["tokens_per_s"] / out["hf_llama"]["tokens_per_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=None, help="CPU default 8; GPU default: the preset's batch_size")
    ap.add_argument("--seq", type=int, default=None, help="CPU default 256; GPU default: the preset's seq_len")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument("--compile", action="store_true", help="also torch.compile our model")
    ap.add_argument("--gpu-presets", default="B,L", help="on CUDA: presets to measure for MFU")
    ap.add_argument("--device", default="auto", help="auto (cuda when present) | cpu | cuda")
    ap.add_argument("--no-peer", action="store_true", help="measure our model alone")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/...)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    transformers = None
    if not args.no_peer:
        try:
            import transformers
        except ImportError:
            print("train_lm: transformers is not installed (pip install 'omnitok[bench]'): the Hugging Face "
                  "Llama peer is skipped, omnitok measured alone", file=sys.stderr, flush=True)
    with_hf = transformers is not None

    result = {
        "benchmark": "train_lm",
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch_threads": torch.get_num_threads(), "device": str(device),
                    "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__ if with_hf else None},
        "peer": "transformers LlamaForCausalLM" if with_hf else None,
        "compile": args.compile,
        "command": "python " + " ".join(sys.argv),
        "runs": [],
    }
    presets = [args.preset] if device.type == "cpu" else args.gpu_presets.split(",")
    path = args.out or RESULTS / f"train_lm_{device.type}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    for preset in presets:
        p = load_preset(preset)
        batch = args.batch or (p["train"].get("batch_size", 8) if device.type == "cuda" else 8)
        seq = args.seq or (p["train"].get("seq_len", 256) if device.type == "cuda" else 256)
        mcfg = ModelConfig(**{**p["model"], "vocab_size": args.vocab, "qk_norm": False, "z_loss": 0.0})
        compiled, note = args.compile, None
        try:
            r = bench(mcfg, batch, seq, args.steps, args.warmup, device, with_hf=with_hf, compile_ours=compiled)
        except Exception as e:  # noqa: BLE001 -- a compile failure must not cost the eager figure
            if not compiled:
                raise
            note = f"torch.compile failed ({type(e).__name__}: {str(e)[:300]}); measured eager"
            print(f"train_lm {preset}: {note}", file=sys.stderr, flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            compiled = False
            r = bench(mcfg, batch, seq, args.steps, args.warmup, device, with_hf=with_hf, compile_ours=False)
        result["runs"].append({"preset": preset, "params": mcfg.num_params(), "batch": batch, "seq_len": seq,
                               "dtype": "bf16 autocast" if device.type == "cuda" else "fp32",
                               "compiled": compiled, **({"note": note} if note else {}), **r})
        path.write_text(json.dumps(result, indent=2) + "\n")  # after every preset: a later one may time out
        print(json.dumps({k: v for k, v in result["runs"][-1].items() if k not in ("omnitok", "hf_llama")}
                         | {"omnitok_tokens_per_s": r["omnitok"]["tokens_per_s"],
                            "omnitok_mfu": r["omnitok"].get("mfu")}), flush=True)
    cuda = device.type == "cuda"
    print(f"| preset | params | batch x seq | omnitok tok/s | HF Llama tok/s | ratio |{' MFU |' if cuda else ''}")
    print(f"|---|---|---|---|---|---|{'---|' if cuda else ''}")
    for r in result["runs"]:
        mfu = f" {r['omnitok']['mfu']:.1%} |" if "mfu" in r["omnitok"] else (" n/a |" if cuda else "")
        hf = f"{r['hf_llama']['tokens_per_s']:.0f} | {r['speedup_vs_hf']:.2f}x" if "hf_llama" in r else "- | -"
        print(f"| {r['preset']} | {r['params'] / 1e6:.1f}M | {r['batch']} x {r['seq_len']} | "
              f"{r['omnitok']['tokens_per_s']:.0f} | {hf} |{mfu}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
