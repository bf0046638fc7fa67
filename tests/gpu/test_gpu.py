"""Every CUDA path, on a GPU: CUDA-graph decode == eager decode; a bf16 autocast training step of the LM and of
each codec (image, video, audio) is finite and close to fp32; the trainers run on the GPU (LM with
``compile=true``); every quantizer gives the CPU's codes on CUDA; DDP keeps codebooks equal across GPUs.

Skipped with the reason on a machine without CUDA (conftest.py). scripts/gpu_check.sh runs them and keeps the
figures each records (``record_property``) in its JSON report.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from omnitok.data.debug import debug_vocabulary
from omnitok.generation import generate
from omnitok.model.config import ModelConfig
from omnitok.model.config import load_preset as load_lm_preset
from omnitok.model.transformer import Transformer, lm_loss
from omnitok.quantizers import Quantizer
from omnitok.quantizers.registry import build_quantizer

pytestmark = pytest.mark.gpu

CUDA = torch.device(os.environ.get("OMNITOK_GPU_TESTS_DEVICE", "cuda"))  # cpu: the bodies' plumbing (conftest)

# bf16 keeps 8 bits of mantissa: a step's loss within 3% of fp32 and gradients pointing the same way
# (cosine >= 0.98) is what a correct autocast region gives; a wrong cast (a loss or a norm in bf16) gives more.
LOSS_RTOL, GRAD_COS = 0.03, 0.98


def _grads(model: torch.nn.Module) -> Tensor:
    """All parameter gradients as one flat fp32 vector (zeros where a parameter got none)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).float().flatten()
                      for p in model.parameters()])


def _compare_bf16_fp32(record_property: Callable[[str, object], None], model: torch.nn.Module,
                       step: Callable[[torch.nn.Module], Tensor]) -> None:
    """Run ``step`` (forward + loss) and backward on two copies of ``model``, fp32 and bf16 autocast, from the
    same weights and RNG state; check both are finite and close, then take an AdamW step on the bf16 copy."""
    results = {}
    for name, amp in (("fp32", False), ("bf16", True)):
        m = copy.deepcopy(model).to(CUDA).train()
        torch.manual_seed(0)
        with torch.autocast(CUDA.type, dtype=torch.bfloat16, enabled=amp):
            loss = step(m)
        loss.float().backward()
        results[name] = (float(loss.detach()), _grads(m), m)
    (l32, g32, _), (l16, g16, m16) = results["fp32"], results["bf16"]
    rel = abs(l16 - l32) / max(abs(l32), 1e-8)
    cos = float(F.cosine_similarity(g16.double(), g32.double(), dim=0))
    record_property("loss_fp32", l32)
    record_property("loss_bf16", l16)
    record_property("loss_rel_diff", rel)
    record_property("grad_cosine", cos)
    assert math.isfinite(l32) and math.isfinite(l16), (l32, l16)
    assert torch.isfinite(g16).all() and torch.isfinite(g32).all()
    assert not torch.equal(g16, g32), "bf16 autocast changed nothing: the region did not run in bf16"
    assert rel <= LOSS_RTOL, f"bf16 loss {l16:.5f} vs fp32 {l32:.5f} (relative {rel:.3%})"
    assert cos >= GRAD_COS, f"bf16 / fp32 gradient cosine {cos:.4f}"
    opt = torch.optim.AdamW(m16.parameters(), lr=1e-3)
    opt.step()
    assert all(torch.isfinite(p).all() for p in m16.parameters())


# ----- generation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("produce,grid", [("image", (4, 4)), ("video", (2, 2, 3)), ("audio", (6,))])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_cuda_graph_decode_equals_eager(produce: str, grid: tuple[int, ...], temperature: float) -> None:
    vocab = debug_vocabulary()
    torch.manual_seed(12)
    cfg = ModelConfig(vocab_size=vocab.size, n_layer=2, dim=64, n_head=4, n_kv_head=2, ffn_multiple_of=32,
                      max_seq_len=256, qk_norm=True, init_std=0.5)
    model = Transformer(cfg).to(CUDA).eval()
    kw = dict(grid=grid, temperature=temperature, top_k=20, cfg_scale=2.0, seed=3, num_samples=2)
    prompts = ["a red apple", "handwritten digit seven"]
    a = generate(model, vocab, prompts, produce, cuda_graph=True, **kw)
    b = generate(model, vocab, prompts, produce, cuda_graph=False, **kw)
    assert len(a.ids) == len(b.ids) == 4
    for x, y in zip(a.ids, b.ids):
        assert torch.equal(x, y)


# ----- LM ---------------------------------------------------------------------------------------------
def test_lm_bf16_step_close_to_fp32(record_property: Callable[[str, object], None]) -> None:
    torch.manual_seed(0)
    # init_std 0.1: peaked logits, so the loss is not log(V) whatever the precision
    cfg = ModelConfig(**{**load_lm_preset("tiny")["model"], "vocab_size": 1024, "init_std": 0.1})
    model = Transformer(cfg)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, cfg.vocab_size, (4, 129), generator=g).to(CUDA)
    x, y = idx[:, :-1], idx[:, 1:]  # (4, 128) each

    def step(m: torch.nn.Module) -> Tensor:
        logits, _ = m(x)  # (B, T, V)
        return lm_loss(logits.float(), y, z_loss=1e-4)[0]

    _compare_bf16_fp32(record_property, model, step)


def test_lm_trainer_compiled_bf16_on_gpu(tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    """``omnitok train lm`` with train.compile=true and bf16 on the GPU: finite loss that falls, MFU logged."""
    if CUDA.type != "cuda":
        pytest.skip("torch.compile of the trainer on a CPU takes minutes on these machines; it runs on the GPU")
    from omnitok.train import lm
    from omnitok.train.metrics import FLOPS_PEAK

    preset = load_lm_preset("debug")
    tc = lm.TrainConfig(**{**preset["train"], "max_steps": 12, "log_every": 4, "eval_every": 0, "save_every": 0,
                           "compile": True, "precision": "bf16", "warmup_steps": 2})
    t0 = time.perf_counter()
    last = lm.train({**preset["model"], "vocab_size": 256}, tc, "synthetic:vocab=256", tmp_path, progress=False,
                    device=CUDA.type)
    record_property("seconds_with_compile", round(time.perf_counter() - t0, 1))
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r.get("split") == "train"]
    record_property("losses", losses)
    assert last["step"] == 12 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    if CUDA.type == "cuda" and any(k in torch.cuda.get_device_name(0) for k in FLOPS_PEAK):
        assert 0 < last["mfu"] < 1
        record_property("mfu_debug_model", last["mfu"])


# ----- codecs -----------------------------------------------------------------------------------------
def _image_like_codec(preset: str) -> tuple[torch.nn.Module, Tensor]:
    from omnitok.codecs.builder import build_codec, load_preset

    cfg = load_preset(preset)
    torch.manual_seed(0)
    codec = build_codec(cfg)
    size = cfg["data"]["size"]
    shape = (4, 3, cfg["data"]["frames"], size, size) if cfg["type"] == "video" else (8, 3, size, size)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 2 - 1  # (B, 3, [T,] H, W) in [-1, 1]
    codec.train()(x)  # k-means init of the codebook, on the CPU, before the copies
    return codec, x.to(CUDA)


@pytest.mark.parametrize("preset", ["debug", "video-debug"])
def test_image_video_codec_bf16_step_close_to_fp32(preset: str,
                                                   record_property: Callable[[str, object], None]) -> None:
    codec, x = _image_like_codec(preset)

    def step(m: torch.nn.Module) -> Tensor:
        out = m(x)
        return (out.recon.float() - x).abs().mean() + out.loss.float()

    _compare_bf16_fp32(record_property, codec, step)


def test_audio_codec_bf16_step_close_to_fp32(record_property: Callable[[str, object], None]) -> None:
    from omnitok.codecs.builder import load_preset
    from omnitok.codecs.losses.spectral import ReconstructionLoss
    from omnitok.eval.audio_codec import synthetic_clips
    from omnitok.train.audio_codec import build_audio_codec

    cfg = load_preset("audio-debug")
    torch.manual_seed(0)
    codec = build_audio_codec(cfg)
    seg = 4 * codec.hop * 8
    clips = synthetic_clips(4, codec.sample_rate, seed=0)
    x = torch.stack([torch.as_tensor(c[:seg]) for c in clips])[:, None]  # (B, 1, seg)
    codec.train()(x)  # k-means init on the CPU
    lc = cfg["loss"]
    recon = ReconstructionLoss(codec.sample_rate, fft_sizes=lc["fft_sizes"], mel_windows=lc["mel_windows"]).to(CUDA)
    x = x.to(CUDA)

    def step(m: torch.nn.Module) -> Tensor:
        out = m(x)
        return recon(out.recon.float(), x)[0] + out.loss.float()  # the trainer's split: FFT losses in fp32

    _compare_bf16_fp32(record_property, codec, step)


@pytest.mark.parametrize("preset", ["debug", "video-debug"])
def test_image_video_codec_trainer_on_gpu(preset: str, tmp_path: Path) -> None:
    from omnitok.codecs.builder import load_preset
    from omnitok.train.image_codec import train

    cfg = load_preset(preset)
    cfg["train"] = {**cfg["train"], "steps": 6, "device": CUDA.type, "bf16": True, "sample_every": 0,
                    "save_every": 0, "log_every": 2, "threads": None, "progress": False}
    final = train(cfg, tmp_path)
    rows = [json.loads(ln) for ln in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert (final / "config.json").is_file() and rows[-1]["step"] == 6
    assert all(math.isfinite(r["loss"]) for r in rows)


def test_audio_codec_trainer_on_gpu_bf16(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from omnitok.codecs.builder import load_preset
    from omnitok.train.audio_codec import train

    cfg = load_preset("audio-debug")
    cfg["train"] = {**cfg["train"], "steps": 6, "device": CUDA.type, "save_every": 0, "threads": None}
    final = train(cfg, tmp_path)
    printed = capsys.readouterr().out
    assert f"on {CUDA.type}" in printed
    assert ("(bf16 autocast)" in printed) == (CUDA.type == "cuda" and torch.cuda.is_bf16_supported())
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert (final / "config.json").is_file() and rows[-1]["step"] == 5
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["mel"]) for r in rows)


# ----- quantizers -------------------------------------------------------------------------------------
# case -> (quantizer preset name, its constructor keywords): every family, built by the registry codecs use
QUANTIZERS: dict[str, tuple[str, dict[str, object]]] = {
    "vq": ("vq", {"dim": 16, "codebook_size": 256}),
    "vq_cosine_lowdim": ("vq", {"dim": 16, "codebook_size": 256, "codebook_dim": 8, "distance": "cosine"}),
    "rvq": ("rvq", {"dim": 16, "codebook_size": 128, "num_quantizers": 4}),
    "pq": ("pq", {"dim": 16, "codebook_size": 128, "groups": 4}),
    "aq": ("aq", {"dim": 16, "codebook_size": 64, "num_codebooks": 2, "beam_width": 4}),
    "gumbel": ("gumbel", {"dim": 16, "codebook_size": 256}),
    "fsq": ("fsq", {"levels": [8, 5, 5, 5], "dim": 16}),
    "lfq": ("lfq", {"dim": 16, "bits": 10}),
    "bsq": ("bsq", {"dim": 16, "bits": 10}),
}
SCALAR = {"fsq", "lfq", "bsq"}  # rounding / signs: no distance ties, so no float-order excuse either


@pytest.mark.parametrize("name", list(QUANTIZERS))
def test_quantizer_codes_on_cuda_equal_cpu(name: str, record_property: Callable[[str, object], None]) -> None:
    """The same input gives the CPU's codes on CUDA. Codebook quantizers may differ only on float near-ties
    (distances computed in another order): at most 2 rows in 4,096, each recorded."""
    torch.manual_seed(0)
    preset, kwargs = QUANTIZERS[name]
    q: Quantizer = build_quantizer(preset, **kwargs)
    g = torch.Generator().manual_seed(1)
    q.train()(torch.randn(2048, 16, generator=g) * 1.5 + 0.5)  # k-means init / EMA state, on the CPU
    q.eval()
    x = torch.randn(4096, 16, generator=g) * 1.5 + 0.5  # (N, D)
    with torch.no_grad():
        cpu = q(x).codes  # (N, G)
        cuda = copy.deepcopy(q).to(CUDA)(x.to(CUDA)).codes.cpu()
    assert cpu.shape == cuda.shape
    differ = (cpu != cuda).any(-1)  # (N,)
    record_property("rows_differing", int(differ.sum()))
    if name in SCALAR:
        assert int(differ.sum()) == 0
    else:
        assert int(differ.sum()) <= 2, f"{int(differ.sum())} of {len(x)} rows got other codes on CUDA"


# ----- DDP --------------------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.device_count() < 2,
                    reason=f"needs 2 GPUs for DDP over NCCL; this machine has {torch.cuda.device_count()}")
def test_ddp_codebooks_equal_across_gpus(tmp_path: Path) -> None:
    import dist_helpers as dh  # tests/ is on sys.path (its conftest.py)

    dh.check_codebooks_equal(dh.run_ranks(dh.codebook_worker, tmp_path, "DDP quantizer training on 2 GPUs", 120.0,
                                          "nccl"))
