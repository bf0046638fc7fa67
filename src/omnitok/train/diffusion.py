"""``omnitok train diffusion --preset NAME [--out DIR] [--resume] key=value ...``: a text-conditioned denoiser.

Reads ``src/omnitok/configs/diffusion/NAME.yaml`` (or a YAML path), applies typed ``key=value`` overrides
(``train.steps=200 scheduler.prediction_type=v``) and trains, in pixel space or (``latent.codec: DIR``) on an image
codec's continuous pre-quantization latents, scaled to unit variance with the scale and shift stored in the model's
config (LDM, Rombach et al., arXiv 2112.10752, sec. 4.3.2).

* Text: captions -> the project's byte-level BPE (``text.codec: DIR``, or a BPE of ``text.vocab_size`` ids learned
  from the training captions and saved as ``text_codec/``) -> a small transformer trained with the denoiser; or
  (``text.clip: DIR``, an ``omnitok train clip`` model) the frozen CLIP text tower's embedding, copied as ``text_clip/``.
* Classifier-free guidance: each caption is replaced by the empty one with probability ``train.cond_drop``
  (Ho & Salimans, arXiv 2207.12598, sec. 3.2).
* Loss: MSE between the model output and the scheduler's target (epsilon, v or x0) at t ~ U{0..T-1}.
* Reproducible: every step draws its batch, timesteps, noise and dropped captions from a generator seeded by
  (seed, step), so a resumed run is bit-identical to an uninterrupted one.

Output folder::

    out/config.yaml                 the resolved preset
    out/log.jsonl                   loss, learning rate, seconds every log_every steps
    out/samples/step-0000500.png    a grid sampled with the EMA weights (train.sample_every; the preset's sample:)
    out/text_codec/ [image_codec/]  the BPE or the CLIP model (text_clip/), and the latent codec, the model needs
    out/checkpoints/step_<N>/       training checkpoints (model.* and ema.* weights, optimizer, rng) for --resume
    out/final/                      the EMA model: config.json + model.safetensors + text_codec/ [+ image_codec/]
"""

from __future__ import annotations

import argparse
import copy
import functools
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from omnitok.align.api import encode_text
from omnitok.align.model import AlignModel
from omnitok.diffusion import make_scheduler
from omnitok.diffusion.model import DiffusionModel
from omnitok.diffusion.text import pad_ids
from omnitok.generation.diffusion import DiffusionPipeline
from omnitok.io.image import to_channels
from omnitok.train import denoiser
from omnitok.train.common import add_preset_arguments, merge, run_preset, start_run
from omnitok.train.denoiser import EmaPair, StepOutput, load_pairs, save_final, train_loop

__all__ = ["DEFAULTS", "add_arguments", "load_preset", "load_pairs", "run", "train"]


DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "data": {"name": "synthetic", "size": 16, "channels": 3, "limit": None, "split": "train", "root": None},
    "latent": None,
    "text": {"codec": None, "clip": None, "vocab_size": 320, "dim": 64, "layers": 2, "heads": 4, "max_len": 16},
    "denoiser": {"name": "unet"},
    "scheduler": {},
    "train": {**denoiser.TRAIN_DEFAULTS, "lr": 3e-4, "weight_decay": 0.0},
    "sample": dict(denoiser.SAMPLE_DEFAULTS),
}


def load_preset(name: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """configs/diffusion/NAME.yaml + typed ``a.b=value`` overrides, merged over :data:`DEFAULTS`."""
    return denoiser.load_preset("diffusion", name, DEFAULTS, overrides)


def _text_codec(cfg: dict[str, Any], captions: list[str], out: Path):
    """The BPE text codec: the preset's folder, the run's own text_codec/, or a new one learned from the captions."""
    from omnitok.codecs.base import load_codec
    from omnitok.codecs.text import TextCodec

    own = out / "text_codec"
    if cfg["text"].get("codec"):
        codec = load_codec(cfg["text"]["codec"])
        if (own / "config.json").is_file():
            shutil.rmtree(own)
        shutil.copytree(cfg["text"]["codec"], own)
        return codec
    if (own / "config.json").is_file():
        return load_codec(own)
    codec = TextCodec.train_bpe(captions, vocab_size=int(cfg["text"]["vocab_size"]), min_frequency=1)
    codec.save_pretrained(own, extra={"training": {"captions": len(captions), "split": cfg["data"].get("split")}})
    return load_codec(own)


# ----- training -----------------------------------------------------------------------------------------------
def train(cfg: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """Train what the preset describes; return the final model folder (EMA weights)."""
    cfg = merge(DEFAULTS, cfg)
    tc = cfg["train"]
    out = start_run(cfg, out_dir)
    progress = bool(tc["progress"])
    t_load = time.perf_counter()

    images, captions = load_pairs(cfg["data"], progress)
    if cfg["text"].get("clip"):  # a frozen CLIP text tower (omnitok.align): its embeddings, computed once
        text_codec = AlignModel.from_pretrained(cfg["text"]["clip"])
        if not (out / "text_clip" / "config.json").is_file():
            shutil.copytree(cfg["text"]["clip"], out / "text_clip", dirs_exist_ok=True)
        ids = encode_text(text_codec, captions)[:, None]  # (N, 1, E)
        lengths = torch.ones(len(captions), dtype=torch.long)
        text_cfg = {"kind": "embedding", "embed_dim": int(ids.shape[-1]), "dim": int(cfg["text"]["dim"])}
        text_embedder: Any = functools.partial(encode_text, text_codec)  # what the sampling pipeline is handed
    else:
        text_codec = _text_codec(cfg, captions, out)
        ids, lengths = pad_ids(text_codec.encode(captions), int(cfg["text"]["max_len"]))  # (N, L), (N,)
        text_cfg = {k: v for k, v in cfg["text"].items() if k not in ("codec", "clip")} | {
            "vocab_size": int(text_codec.config["vocab_size"])}
        text_embedder = text_codec

    image_codec, latent = None, None
    if cfg.get("latent") and cfg["latent"].get("codec"):
        from omnitok.codecs.base import load_codec

        src = Path(cfg["latent"]["codec"])
        image_codec = load_codec(src).eval()
        if not (out / "image_codec" / "config.json").is_file():
            shutil.copytree(src, out / "image_codec", dirs_exist_ok=True)
        # the whole split encoded once: (N, D, h, w) pre-quantization latents
        x = denoiser.encode_latents(image_codec, images, int(image_codec.config["in_channels"]))
        shift, std = float(x.mean()), float(x.std())
        latent = {"codec": str(src), "scale": 1.0 / std, "shift": shift}
        data = (x - shift) / std
    else:
        data = to_channels(images.float() / 127.5 - 1, int(cfg["data"]["channels"]))  # (N, C, H, W) in [-1, 1]
    channels, size = int(data.shape[1]), int(data.shape[-1])
    model_cfg = {"sample": {"channels": channels, "size": size}, "denoiser": dict(cfg["denoiser"]),
                 "text": text_cfg,
                 "scheduler": dict(cfg["scheduler"]), "latent": latent}
    model = DiffusionModel(model_cfg)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    sched = make_scheduler("ddpm", model.scheduler_config)
    T = sched.num_train_timesteps
    opt = torch.optim.AdamW(model.parameters(), lr=float(tc["lr"]), weight_decay=float(tc["weight_decay"]))
    pair = EmaPair(model, ema)
    params = sum(p.numel() for p in model.parameters())

    step, elapsed = denoiser.resume(out, pair, opt, "diffusion") if resume else (0, 0.0)
    load_seconds = time.perf_counter() - t_load

    bs, cond_drop = int(tc["batch_size"]), float(tc["cond_drop"])

    def step_fn(g: torch.Generator) -> StepOutput:
        idx = torch.randint(len(data), (bs,), generator=g)
        x0 = data[idx]
        b_ids, b_len = ids[idx], lengths[idx].clone()
        b_len[torch.rand(bs, generator=g) < cond_drop] = 0  # the empty caption: unconditional
        t = torch.randint(T, (bs,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        pred = model(sched.add_noise(x0, noise, t), t, b_ids, b_len)
        loss = F.mse_loss(pred, sched.training_target(x0, noise, t))
        return StepOutput(loss, {"loss": float(loss.detach())})

    pipe = DiffusionPipeline(ema, text_embedder, image_codec)
    result = train_loop(pair, opt, cfg, out, step=step, elapsed=elapsed, step_fn=step_fn,
                        sample=lambda path: denoiser.save_sample_grid(cfg, path, pipe),
                        checkpoint_config={"preset": cfg, "diffusion": model.config, "parameters": params},
                        model_class="DiffusionModel", desc=f"train diffusion {cfg.get('name', '')}".strip(),
                        postfix=lambda last: {"loss": f"{last['loss']:.4f}"})
    return save_final(pair, out, cfg, result, load_seconds, params, ("text_codec", "text_clip", "image_codec"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_preset_arguments(parser, "diffusion", "debug, digits-latent, ...")


def run(args: argparse.Namespace) -> int:
    return run_preset(args, "diffusion", load_preset, train, "diffusion model")
