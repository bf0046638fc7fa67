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
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from tqdm import tqdm

from omnitok._overrides import apply_overrides, load_yaml, preset_file
from omnitok.data.sources.digits import DIGIT_WORDS
from omnitok.diffusion import make_scheduler
from omnitok.generation.hybrid import HybridPipeline, hybrid_document, hybrid_text
from omnitok.model.config import ModelConfig
from omnitok.model.transfusion import TransfusionConfig, TransfusionModel, transfusion_loss
from omnitok.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
from omnitok.train.diffusion import load_pairs
from omnitok.train.schedule import lr_at

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
    "train": {"steps": 1000, "batch_size": 32, "lr": 1e-3, "warmup": 100, "min_lr_ratio": 0.1, "weight_decay": 0.01,
              "grad_clip": 1.0, "ema_decay": 0.999, "cond_drop": 0.1, "log_every": 25, "sample_every": 500,
              "save_every": 500, "keep_checkpoints": 2, "threads": None, "max_minutes": 0.0, "progress": True,
              "halt_after": 0},
    "sample": {"sampler": "ddim", "steps": 20, "cfg": 3.0, "prompts": None},
}


def _merge(base: dict[str, Any], over: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_preset(name: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """configs/transfusion/NAME.yaml (or a YAML path) + typed ``a.b=value`` overrides, merged over :data:`DEFAULTS`."""
    path = preset_file("transfusion", name)
    cfg = load_yaml(path.read_text()) or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: a transfusion preset must be a mapping")
    cfg.setdefault("name", path.stem)
    return apply_overrides(_merge(DEFAULTS, cfg), list(overrides or []))


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


class _TrainState(nn.Module):
    """The trained weights and their EMA in one state dict (``model.*``, ``ema.*``) for checkpoints."""

    def __init__(self, model: TransfusionModel, ema: TransfusionModel) -> None:
        super().__init__()
        self.model, self.ema = model, ema

    def saved(self) -> dict[str, Tensor]:
        return {**{f"model.{k}": v for k, v in self.model.state_for_saving().items()},
                **{f"ema.{k}": v for k, v in self.ema.state_for_saving().items()}}

    def load_saved(self, state: dict[str, Tensor], where: str) -> None:
        for prefix, m in (("model.", self.model), ("ema.", self.ema)):
            m.load_saved_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, where)


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1.0 - decay)


def _default_prompts(cfg: dict[str, Any]) -> list[str]:
    if cfg["sample"].get("prompts"):
        return list(cfg["sample"]["prompts"])
    if cfg["data"]["name"] == "digits":
        return [f"the digit {w}" for w in DIGIT_WORDS]
    if cfg["data"]["name"] == "synthetic":
        return ["a red square", "a green square", "a blue square", "a yellow square"]
    return []


def _save_samples(pipe: HybridPipeline, cfg: dict[str, Any], path: Path) -> None:
    from omnitok.generation.diffusion import image_grid
    from omnitok.io.image import save_image

    prompts = _default_prompts(cfg)
    if not prompts:
        return
    s = cfg["sample"]
    images, _ = pipe.text_to_image(prompts * 2, steps=int(s["steps"]), sampler=s["sampler"],
                                   cfg_scale=float(s["cfg"]), seed=0)
    save_image(image_grid(images, cols=len(prompts)), path)


# ----- training -----------------------------------------------------------------------------------------------
def train(cfg: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """Train what the preset describes; return the final model folder (EMA weights)."""
    from omnitok.io.image import to_channels

    cfg = _merge(DEFAULTS, cfg)
    tc, dc = cfg["train"], cfg["data"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    if tc.get("threads"):
        torch.set_num_threads(int(tc["threads"]))
    progress = bool(tc["progress"])
    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    t_load = time.perf_counter()

    vocab = _vocab(cfg, out)
    codec = _image_codec(cfg, out)
    images, captions = load_pairs(dc, progress)
    with torch.no_grad():  # the whole split encoded once: (N, C, h, w) pre-quantization latents
        chans = int(codec.config.get("in_channels", 3))
        z = torch.cat([codec.encode_latents(to_channels(images[i : i + 256].float() / 127.5 - 1, chans))
                       for i in range(0, len(images), 256)])
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
    state = _TrainState(model, ema)
    params = model.num_params()

    step, elapsed = 0, 0.0
    if resume:
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            raise ValueError(f"--resume: no checkpoint under {out / 'checkpoints'}")
        st = load_checkpoint(ckpt)
        state.load_saved(st["model"], str(ckpt))
        opt.load_state_dict(st["optimizer"])
        set_rng_state(*st["rng"])
        step, elapsed = int(st["step"]), float(st["loader"].get("elapsed", 0.0))
        print(f"omnitok train transfusion: resumed from {ckpt} at step {step}")
    load_seconds = time.perf_counter() - t_load

    steps, bs = int(tc["steps"]), int(tc["batch_size"])
    max_seconds = 60.0 * float(tc["max_minutes"] or 0)
    halt = int(tc.get("halt_after") or 0)
    p_i2t, p_drop = float(dc["i2t"]), float(tc["cond_drop"])
    log_path = out / "log.jsonl"
    bar = tqdm(total=steps, initial=step, desc=f"train transfusion {cfg.get('name', '')}".strip(),
               disable=not progress, dynamic_ncols=True)
    ckpt_cfg = {"preset": cfg, "transformer": mcfg.to_dict(), "hybrid": hcfg.to_dict(), "parameters": params}
    save_every, sample_every = int(tc["save_every"]), int(tc["sample_every"])
    model.train()
    t0 = time.perf_counter() - elapsed
    last: dict[str, Any] = {}
    stopped = "steps"
    while step < steps:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
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
        where = max(step, steps * (time.perf_counter() - t0) / max_seconds) if max_seconds > 0 else step
        lr = lr_at(where, float(tc["lr"]), int(tc["warmup"]), steps, float(tc["min_lr_ratio"]))
        for group in opt.param_groups:
            group["lr"] = lr
        text_mask = batch["targets"] != -100
        o = model(batch["ids"], batch["image_mask"], sched.add_noise(x0, noise, t), t, text_mask=text_mask,
                  document_ids=batch["document_ids"])
        loss = transfusion_loss(o.logits, batch["targets"][text_mask], o.image, sched.training_target(x0, noise, t),
                                hcfg.lambda_diffusion)
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), float(tc["grad_clip"] or 1e9))
        opt.step()
        step += 1
        _ema_update(ema, model, min(float(tc["ema_decay"]), (1 + step) / (10 + step)))
        seconds = time.perf_counter() - t0
        last = {"step": step, "loss": float(loss.total.detach()), "lm": float(loss.lm.detach()),
                "diffusion": float(loss.diffusion.detach()), "lr": lr, "grad_norm": float(gnorm), "seconds": seconds}
        bar.update(1)
        bar.set_postfix(lm=f"{last['lm']:.3f}", diff=f"{last['diffusion']:.3f}")
        out_of_time = max_seconds > 0 and seconds >= max_seconds
        final = step in (steps, halt) or out_of_time
        if step % int(tc["log_every"]) == 0 or final:
            with log_path.open("a") as f:
                f.write(json.dumps(last) + "\n")
        if (save_every and step % save_every == 0) or final:
            save_checkpoint(out, step, state, opt, ckpt_cfg, {"step": step, "elapsed": time.perf_counter() - t0},
                            extra={"model_class": "TransfusionModel"}, keep=int(tc["keep_checkpoints"]),
                            model_state=state.saved())
        if sample_every and (step % sample_every == 0 or final):
            _save_samples(HybridPipeline(ema, vocab, codec), cfg, out / "samples" / f"step-{step:07d}.png")
            ema.eval()
        if out_of_time:
            stopped = f"time budget of {tc['max_minutes']} min"
            break
        if step == halt:
            bar.close()
            return out / "checkpoints"
    bar.close()
    seconds = time.perf_counter() - t0
    final_dir = out / "final"
    ema.save_pretrained(final_dir, extra={"train": {"preset": cfg.get("name"), "steps": step, "stopped_by": stopped,
                                                    "seconds": round(seconds, 1), "load_seconds": round(load_seconds, 1),
                                                    "parameters": params, "examples": len(data), "final": last},
                                          "preset": cfg})
    for name in ("vocab", "image_codec"):
        shutil.copytree(out / name, final_dir / name, dirs_exist_ok=True)
    return final_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, help="configs/transfusion/NAME.yaml (debug, digits) or a YAML path")
    parser.add_argument("--out", default=None, help="output folder (default runs/transfusion/NAME)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.steps=100")


def run(args: argparse.Namespace) -> int:
    cfg = load_preset(args.preset, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / "transfusion" / cfg["name"]
    final = train(cfg, out, resume=args.resume)
    print(f"Transfusion model saved to {final}")
    return 0
