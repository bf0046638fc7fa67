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
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn
from tqdm import tqdm

from omnitok._overrides import apply_overrides, load_yaml, preset_file
from omnitok.align.api import encode_text
from omnitok.align.model import AlignModel
from omnitok.data.sources.digits import DIGIT_WORDS
from omnitok.diffusion import make_scheduler
from omnitok.diffusion.model import DiffusionModel
from omnitok.diffusion.text import pad_ids
from omnitok.generation.diffusion import DiffusionPipeline, image_grid
from omnitok.io.image import save_image, to_channels
from omnitok.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
from omnitok.train.schedule import lr_at

__all__ = ["DEFAULTS", "add_arguments", "load_preset", "load_pairs", "run", "train"]


DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "data": {"name": "synthetic", "size": 16, "channels": 3, "limit": None, "split": "train", "root": None},
    "latent": None,
    "text": {"codec": None, "clip": None, "vocab_size": 320, "dim": 64, "layers": 2, "heads": 4, "max_len": 16},
    "denoiser": {"name": "unet"},
    "scheduler": {},
    "train": {"steps": 1000, "batch_size": 32, "lr": 3e-4, "warmup": 100, "min_lr_ratio": 0.1, "weight_decay": 0.0,
              "grad_clip": 1.0, "ema_decay": 0.999, "cond_drop": 0.1, "log_every": 25, "sample_every": 500,
              "save_every": 500, "keep_checkpoints": 2, "threads": None, "max_minutes": 0.0, "progress": True,
              "halt_after": 0},
    "sample": {"sampler": "ddim", "steps": 20, "cfg": 3.0, "prompts": None},
}

COLOURS = {"red": (230, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 230), "yellow": (240, 210, 40)}


# ----- presets ------------------------------------------------------------------------------------------------
def preset_path(name: str) -> Path:
    """configs/diffusion/NAME.yaml, or NAME itself when it is a path to a YAML file."""
    return preset_file("diffusion", name)


def _merge(base: dict[str, Any], over: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_preset(name: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """configs/diffusion/NAME.yaml + typed ``a.b=value`` overrides, merged over :data:`DEFAULTS`."""
    path = preset_path(name)
    cfg = load_yaml(path.read_text()) or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: a diffusion preset must be a mapping")
    cfg.setdefault("name", path.stem)
    return apply_overrides(_merge(DEFAULTS, cfg), list(overrides or []))


# ----- data ---------------------------------------------------------------------------------------------------
def synthetic_pairs(n: int, size: int, seed: int = 0) -> tuple[Tensor, list[str]]:
    """n images (n, 3, size, size) uint8 of one coloured square on white, captioned "a <colour> square"."""
    g = torch.Generator().manual_seed(seed)
    names = list(COLOURS)
    out = torch.full((n, 3, size, size), 255, dtype=torch.uint8)
    caps = []
    for i in range(n):
        k = int(torch.randint(len(names), (1,), generator=g))
        side = int(torch.randint(size // 3, size // 2 + 1, (1,), generator=g))
        y, x = (int(v) for v in torch.randint(0, size - side + 1, (2,), generator=g))
        out[i, :, y : y + side, x : x + side] = torch.tensor(COLOURS[names[k]], dtype=torch.uint8)[:, None, None]
        caps.append(f"a {names[k]} square")
    return out, caps


def load_pairs(data: dict[str, Any], progress: bool = True) -> tuple[Tensor, list[str]]:
    """(images uint8 (N, 3, size, size), captions) of a built dataset's split, or the synthetic squares."""
    size, limit, split = int(data["size"]), data.get("limit"), data.get("split", "train")
    if data["name"] == "synthetic":
        return synthetic_pairs(int(limit or 64), size, seed={"train": 0, "val": 1, "test": 2}.get(split, 3))
    from omnitok.data.dataset import ShardDataset
    from omnitok.eval.codec_data import to_uint8

    images, caps = [], []
    ds = ShardDataset(data["name"], split, root=data.get("root"), image_size=size, rank=0, world_size=1)
    for ex in tqdm(ds, desc=f"load {data['name']}/{split}", disable=not progress, leave=False):
        cap = ex.get("caption") or (ex.get("meta") or {}).get("caption")
        if "image" not in ex or not cap:
            continue
        images.append(to_uint8(ex["image"][:3] if ex["image"].shape[0] >= 3 else ex["image"].expand(3, -1, -1)))
        caps.append(str(cap))
        if limit is not None and len(images) >= int(limit):
            break
    if not images:
        raise ValueError(f"{data['name']}/{split}: no captioned images (is `omnitok data build {data['name']}` done?)")
    return torch.stack(images), caps


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


class _TrainState(nn.Module):
    """The trained weights and their EMA in one state dict (``model.*``, ``ema.*``) for checkpoints."""

    def __init__(self, model: DiffusionModel, ema: DiffusionModel) -> None:
        super().__init__()
        self.model, self.ema = model, ema


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
        return [f"a {c} square" for c in COLOURS]
    return []


def _save_samples(ema: DiffusionModel, text_codec: Any, image_codec: Any, cfg: dict[str, Any], path: Path) -> None:
    prompts = _default_prompts(cfg)
    if not prompts:
        return
    s = cfg["sample"]
    if isinstance(text_codec, AlignModel):  # a CLIP text tower: the pipeline is handed its embedder
        text_codec = functools.partial(encode_text, text_codec)
    pipe = DiffusionPipeline(ema, text_codec, image_codec)
    images, _ = pipe(prompts * 2, sampler=s["sampler"], steps=int(s["steps"]), cfg_scale=float(s["cfg"]), seed=0)
    save_image(image_grid(images, cols=len(prompts)), path)
    ema.eval()


# ----- training -----------------------------------------------------------------------------------------------
def train(cfg: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """Train what the preset describes; return the final model folder (EMA weights)."""
    cfg = _merge(DEFAULTS, cfg)
    tc = cfg["train"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    if tc.get("threads"):
        torch.set_num_threads(int(tc["threads"]))
    progress = bool(tc["progress"])
    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    t_load = time.perf_counter()

    images, captions = load_pairs(cfg["data"], progress)
    if cfg["text"].get("clip"):  # a frozen CLIP text tower (omnitok.align): its embeddings, computed once
        text_codec = AlignModel.from_pretrained(cfg["text"]["clip"])
        if not (out / "text_clip" / "config.json").is_file():
            shutil.copytree(cfg["text"]["clip"], out / "text_clip", dirs_exist_ok=True)
        ids = encode_text(text_codec, captions)[:, None]  # (N, 1, E)
        lengths = torch.ones(len(captions), dtype=torch.long)
        text_cfg = {"kind": "embedding", "embed_dim": int(ids.shape[-1]), "dim": int(cfg["text"]["dim"])}
    else:
        text_codec = _text_codec(cfg, captions, out)
        ids, lengths = pad_ids(text_codec.encode(captions), int(cfg["text"]["max_len"]))  # (N, L), (N,)
        text_cfg = {k: v for k, v in cfg["text"].items() if k not in ("codec", "clip")} | {
            "vocab_size": int(text_codec.config["vocab_size"])}

    image_codec, latent = None, None
    if cfg.get("latent") and cfg["latent"].get("codec"):
        from omnitok.codecs.base import load_codec

        src = Path(cfg["latent"]["codec"])
        image_codec = load_codec(src).eval()
        if not (out / "image_codec" / "config.json").is_file():
            shutil.copytree(src, out / "image_codec", dirs_exist_ok=True)
        with torch.no_grad():  # the whole split encoded once: (N, D, h, w) pre-quantization latents
            chans = int(image_codec.config["in_channels"])
            x = torch.cat([image_codec.encode_latents(to_channels(images[i : i + 256].float() / 127.5 - 1, chans))
                           for i in range(0, len(images), 256)])
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
    state = _TrainState(model, ema)
    params = sum(p.numel() for p in model.parameters())

    step, elapsed = 0, 0.0
    if resume:
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            raise ValueError(f"--resume: no checkpoint under {out / 'checkpoints'}")
        st = load_checkpoint(ckpt)
        state.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        set_rng_state(*st["rng"])
        step, elapsed = int(st["step"]), float(st["loader"].get("elapsed", 0.0))
        print(f"omnitok train diffusion: resumed from {ckpt} at step {step}")
    load_seconds = time.perf_counter() - t_load

    steps, bs = int(tc["steps"]), int(tc["batch_size"])
    max_seconds = 60.0 * float(tc["max_minutes"] or 0)
    halt = int(tc.get("halt_after") or 0)
    log_path = out / "log.jsonl"
    desc = f"train diffusion {cfg.get('name', '')}".strip()
    bar = tqdm(total=steps, initial=step, desc=desc, disable=not progress, dynamic_ncols=True)
    ckpt_cfg = {"preset": cfg, "diffusion": model.config, "parameters": params}
    save_every, sample_every = int(tc["save_every"]), int(tc["sample_every"])
    model.train()
    t0 = time.perf_counter() - elapsed
    last: dict[str, Any] = {}
    stopped = "steps"
    while step < steps:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(len(data), (bs,), generator=g)
        x0 = data[idx]
        b_ids, b_len = ids[idx], lengths[idx].clone()
        b_len[torch.rand(bs, generator=g) < float(tc["cond_drop"])] = 0  # the empty caption: unconditional
        t = torch.randint(T, (bs,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        # with a time budget the schedule follows whichever of steps and elapsed time is further along
        where = max(step, steps * (time.perf_counter() - t0) / max_seconds) if max_seconds > 0 else step
        lr = lr_at(where, float(tc["lr"]), int(tc["warmup"]), steps, float(tc["min_lr_ratio"]))
        for group in opt.param_groups:
            group["lr"] = lr
        pred = model(sched.add_noise(x0, noise, t), t, b_ids, b_len)
        loss = F.mse_loss(pred, sched.training_target(x0, noise, t))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), float(tc["grad_clip"] or 1e9))
        opt.step()
        step += 1
        _ema_update(ema, model, min(float(tc["ema_decay"]), (1 + step) / (10 + step)))
        seconds = time.perf_counter() - t0
        last = {"step": step, "loss": float(loss.detach()), "lr": lr, "grad_norm": float(gnorm), "seconds": seconds}
        bar.update(1)
        bar.set_postfix(loss=f"{last['loss']:.4f}")
        out_of_time = max_seconds > 0 and seconds >= max_seconds
        final = step in (steps, halt) or out_of_time
        if step % int(tc["log_every"]) == 0 or final:
            with log_path.open("a") as f:
                f.write(json.dumps(last) + "\n")
        if (save_every and step % save_every == 0) or final:
            save_checkpoint(out, step, state, opt, ckpt_cfg, {"step": step, "elapsed": time.perf_counter() - t0},
                            extra={"model_class": "DiffusionModel"}, keep=int(tc["keep_checkpoints"]))
        if sample_every and (step % sample_every == 0 or final):
            _save_samples(ema, text_codec, image_codec, cfg, out / "samples" / f"step-{step:07d}.png")
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
                                                    "parameters": params, "final": last}, "preset": cfg})
    for name in ("text_codec", "text_clip", "image_codec"):
        if (out / name).is_dir():
            shutil.copytree(out / name, final_dir / name, dirs_exist_ok=True)
    return final_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, help="configs/diffusion/NAME.yaml (debug, digits-latent, ...)")
    parser.add_argument("--out", default=None, help="output folder (default runs/diffusion/NAME)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.steps=100")


def run(args: argparse.Namespace) -> int:
    cfg = load_preset(args.preset, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / "diffusion" / cfg["name"]
    final = train(cfg, out, resume=args.resume)
    print(f"diffusion model saved to {final}")
    return 0
