"""``omnitok train transfusion --preset NAME [--out DIR] [--resume] key=value ...``: the Transfusion hybrid.

One transformer (:class:`omnitok.model.transfusion.TransfusionModel`) on captioned images: caption ids from the
vocabulary's text codec, the image as its codec's continuous pre-quantization latents (scaled to unit variance, as
the latent diffusion models are) in patches between ``<|begin_image|>`` and ``<|end_image|>``
(:func:`omnitok.generation.hybrid.hybrid_document`). Loss: next-token cross-entropy on the text ids
+ ``lambda_diffusion`` x the diffusion MSE on every patch (Zhou et al., arXiv 2408.11039, eq. 4), with the
noise, timesteps and targets of the ``omnitok.diffusion`` scheduler the preset names.

Each example of a batch is, at random:

* caption -> image (``1 - i2t - cond_drop`` of them): t ~ U{0 .. T-1};
* image -> caption (``data.i2t``): the image first, its noise capped at ``data.caption_noise`` x T (the paper caps
  it at half for captioning, sec. 4.1), so the captions learn to read nearly clean latents;
* an image alone (``train.cond_drop``): the unconditional branch of classifier-free guidance.

Reproducible: every step draws its batch, modes, timesteps and noise from a generator seeded by (seed, step), so a
resumed run is bit-identical to an uninterrupted one. With ``train.max_minutes`` the run stops at the time budget
and the learning-rate schedule follows whichever of steps and elapsed time is further along.

Output folder::

    out/config.yaml            the resolved preset
    out/log.jsonl              loss (total, lm, diffusion), learning rate, seconds every log_every steps
    out/vocab/ out/image_codec/  the vocabulary and the latent codec the model needs
    out/checkpoints/step_<N>/  training checkpoints (model.* and ema.* weights, optimizer, rng) for --resume
    out/final/                 the EMA model: config.json + model.safetensors (+ vocab/ and image_codec/)
"""

from __future__ import annotations

import argparse
import copy
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omnitok.diffusion import make_scheduler
from omnitok.generation.hybrid import HybridPipeline, hybrid_document, hybrid_text
from omnitok.model.config import ModelConfig
from omnitok.model.transfusion import TransfusionConfig, TransfusionModel, transfusion_loss
from omnitok.train import denoiser
from omnitok.train.common import add_preset_arguments, merge, run_preset, start_run
from omnitok.train.denoiser import EmaPair, StepOutput, load_pairs, save_final, train_loop

__all__ = ["DEFAULTS", "add_arguments", "load_preset", "make_batch", "run", "train"]

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "data": {"name": "synthetic", "size": 16, "channels": 3, "limit": None, "split": "train", "i2t": 0.3,
             "caption_noise": 0.5},
    "vocab": None,  # a vocabulary folder (its text codec and markers); None: the debug vocabulary
    "image_codec": None,  # an image codec folder (its encoder's latents); None: a tiny untrained codec (tests)
    "model": {"n_layer": 2, "dim": 64, "n_head": 4, "ffn_multiple_of": 32, "max_seq_len": 256, "qk_norm": True},
    "hybrid": {"patch_size": 2, "time_freq_dim": 128, "lambda_diffusion": 5.0},
    "scheduler": {"num_train_timesteps": 1000, "schedule": "cosine", "prediction_type": "v"},
    "train": {**denoiser.TRAIN_DEFAULTS, "lr": 1e-3, "weight_decay": 0.01},
    "sample": dict(denoiser.SAMPLE_DEFAULTS),
}


def load_preset(name: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """configs/transfusion/NAME.yaml (or a YAML path) + typed ``a.b=value`` overrides, merged over :data:`DEFAULTS`."""
    return denoiser.load_preset("transfusion", name, DEFAULTS, overrides)


# ----- the run's vocabulary and codec -------------------------------------------------------------------------
def _vocab(cfg: dict[str, Any], out: Path) -> Any:
    from omnitok.vocab.vocabulary import Vocabulary

    own = out / "vocab"
    if not (own / "vocab.json").is_file():
        if cfg.get("vocab"):
            shutil.copytree(cfg["vocab"], own, dirs_exist_ok=True)
        else:
            from omnitok.data.debug import debug_vocabulary

            debug_vocabulary().save(own)
    return Vocabulary.load(own)


def _image_codec(cfg: dict[str, Any], out: Path) -> Any:
    from omnitok.codecs.base import load_codec

    own = out / "image_codec"
    if not (own / "config.json").is_file():
        if cfg.get("image_codec"):
            shutil.copytree(cfg["image_codec"], own, dirs_exist_ok=True)
        else:  # a tiny untrained codec: f4, 4-d latents (the tests' debug runs)
            from omnitok.codecs.image import ImageCodec

            torch.manual_seed(int(cfg["seed"]))
            ImageCodec(3, channels=8, channel_mult=[1, 2, 2], z_channels=8, quantizer="vq",
                       quantizer_kwargs={"dim": 4, "codebook_size": 16}).save_pretrained(own)
    return load_codec(own).eval()


# ----- batches ------------------------------------------------------------------------------------------------
def make_batch(docs: list[list[int]], starts: list[int], num_patches: int, pad_id: int) -> dict[str, Tensor]:
    """Hybrid documents -> right-padded ids (B, T), image_mask (B, T) (N patches per row), targets (B, T) (next id
    on text positions, -100 where the position or the next one is a patch, and on padding), document_ids (B, T)
    (-1 on padding)."""
    B, T = len(docs), max(len(d) for d in docs)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    image_mask = torch.zeros(B, T, dtype=torch.bool)
    targets = torch.full((B, T), -100, dtype=torch.long)
    documents = torch.full((B, T), -1, dtype=torch.long)
    for i, (d, s) in enumerate(zip(docs, starts)):
        row = torch.tensor(d, dtype=torch.long)
        ids[i, : len(d)] = row
        documents[i, : len(d)] = 0
        image_mask[i, s : s + num_patches] = True
        targets[i, : len(d) - 1] = row[1:]
        targets[i, s - 1 : s + num_patches] = -100  # <|begin_image|> -> patch and patch -> patch / <|end_image|>
    return {"ids": ids, "image_mask": image_mask, "targets": targets, "document_ids": documents}


class _TrainState(EmaPair):
    """The trained weights and their EMA as stored: a tied output head once (``state_for_saving``)."""

    def saved(self) -> dict[str, Tensor]:
        return {**{f"model.{k}": v for k, v in self.model.state_for_saving().items()},
                **{f"ema.{k}": v for k, v in self.ema.state_for_saving().items()}}

    def load_saved(self, state: dict[str, Tensor], where: str) -> None:
        for prefix, m in (("model.", self.model), ("ema.", self.ema)):
            m.load_saved_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, where)


# ----- training -----------------------------------------------------------------------------------------------
def train(cfg: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """Train what the preset describes; return the final model folder (EMA weights)."""
    cfg = merge(DEFAULTS, cfg)
    tc, dc = cfg["train"], cfg["data"]
    out = start_run(cfg, out_dir)
    progress = bool(tc["progress"])
    t_load = time.perf_counter()

    vocab = _vocab(cfg, out)
    codec = _image_codec(cfg, out)
    images, captions = load_pairs(dc, progress)
    # the whole split encoded once: (N, C, h, w) pre-quantization latents
    z = denoiser.encode_latents(codec, images, int(codec.config.get("in_channels", 3)))
    shift, std = float(z.mean()), float(z.std())
    hcfg = TransfusionConfig(latent_channels=int(z.shape[1]), latent_size=int(z.shape[-1]),
                             patch_id=int(vocab.pad_id), scheduler=dict(cfg["scheduler"]),
                             latent={"scale": 1.0 / std, "shift": shift},
                             **{k: v for k, v in cfg["hybrid"].items()})
    mcfg = ModelConfig.from_dict({**cfg["model"], "vocab_size": len(vocab)}, where="transfusion preset model")
    model = TransfusionModel(mcfg, hcfg)
    data = model.patchify((z - shift) / std)  # (N, n_patches, patch_dim), unit variance
    texts = [hybrid_text(vocab, c) for c in captions]
    N = hcfg.num_patches
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    sched = make_scheduler("ddpm", hcfg.scheduler)
    T = sched.num_train_timesteps
    t_cap = max(1, int(float(dc["caption_noise"]) * T))
    opt = torch.optim.AdamW(model.parameters(), lr=float(tc["lr"]), weight_decay=float(tc["weight_decay"]))
    pair = _TrainState(model, ema)
    params = model.num_params()

    step, elapsed = denoiser.resume(out, pair, opt, "transfusion") if resume else (0, 0.0)
    load_seconds = time.perf_counter() - t_load

    bs = int(tc["batch_size"])
    p_i2t, p_drop = float(dc["i2t"]), float(tc["cond_drop"])

    def step_fn(g: torch.Generator) -> StepOutput:
        idx = torch.randint(len(data), (bs,), generator=g)
        u = torch.rand(bs, generator=g)
        i2t, uncond = u < p_i2t, (u >= p_i2t) & (u < p_i2t + p_drop)
        t = torch.where(i2t, torch.randint(t_cap, (bs,), generator=g), torch.randint(T, (bs,), generator=g))
        noise = torch.randn((bs, N, hcfg.patch_dim), generator=g)
        docs, starts = [], []
        for b in range(bs):
            text = None if uncond[b] else texts[int(idx[b])]
            d, s = hybrid_document(vocab, text, N, hcfg.patch_id, image_first=bool(i2t[b] or uncond[b]))
            docs.append(d)
            starts.append(s)
        batch = make_batch(docs, starts, N, vocab.pad_id)
        x0 = data[idx]
        text_mask = batch["targets"] != -100
        o = model(batch["ids"], batch["image_mask"], sched.add_noise(x0, noise, t), t, text_mask=text_mask,
                  document_ids=batch["document_ids"])
        loss = transfusion_loss(o.logits, batch["targets"][text_mask], o.image, sched.training_target(x0, noise, t),
                                hcfg.lambda_diffusion)
        return StepOutput(loss.total, {"loss": float(loss.total.detach()), "lm": float(loss.lm.detach()),
                                       "diffusion": float(loss.diffusion.detach())})

    pipe = HybridPipeline(ema, vocab, codec)
    result = train_loop(pair, opt, cfg, out, step=step, elapsed=elapsed, step_fn=step_fn,
                        sample=lambda path: denoiser.save_sample_grid(cfg, path, pipe.text_to_image),
                        checkpoint_config={"preset": cfg, "transformer": mcfg.to_dict(), "hybrid": hcfg.to_dict(),
                                           "parameters": params},
                        model_class="TransfusionModel", desc=f"train transfusion {cfg.get('name', '')}".strip(),
                        postfix=lambda last: {"lm": f"{last['lm']:.3f}", "diff": f"{last['diffusion']:.3f}"})
    return save_final(pair, out, cfg, result, load_seconds, params, ("vocab", "image_codec"), examples=len(data))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_preset_arguments(parser, "transfusion", "debug, digits")


def run(args: argparse.Namespace) -> int:
    return run_preset(args, "transfusion", load_preset, train, "Transfusion model")
