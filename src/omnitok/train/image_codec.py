"""Training loop for image and video codecs (VQ-VAE / VQGAN recipe).

Loss = l1 * |x - x'| + l2 * (x - x')^2 + the quantizer's loss
       [+ perceptual * Inception feature distance]
       [+ gan * lambda_adaptive * hinge_g  once step >= gan_start]  (Esser et al., arXiv 2012.09841)

Everything is in memory: the training split is decoded once into a uint8 tensor, batches are drawn
with a generator seeded by (seed, step), so a resumed run draws the same batches as an uninterrupted one.
An EMA copy of the codec (encoder / decoder weights averaged; quantizer state copied, because
averaging codebooks that get restarted would mix unrelated codes) is what is saved for evaluation.

Output folder::

    out/config.yaml                       the resolved preset
    out/log.jsonl                         one line per log_every steps (loss, usage, seconds)
    out/samples/step-0000500.png          original | reconstruction grids (EMA weights)
    out/checkpoints/step-0000500/         codec folder (EMA weights) + train_state.pt for --resume
    out/codec/                            the final codec folder (EMA weights): load_codec(out / "codec")
"""

from __future__ import annotations

import copy
import json
import pickle
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from omnitok._io import CheckpointError
from omnitok.codecs.base import Codec, select_device
from omnitok.codecs.builder import build_codec
from omnitok.eval.codec_data import load_images, load_videos, to_float
from omnitok.eval.grids import image_grid, video_grid
from omnitok.train.common import merge, start_run
from omnitok.train.muon import codec_optimizer

__all__ = ["DEFAULTS", "train"]

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "data": {"name": "synthetic", "size": 32, "frames": 9, "limit": None, "where": None, "flip": False},
    "loss": {"l1": 1.0, "l2": 0.0, "perceptual": 0.0, "gan": 0.0, "gan_start": 2000,
             "disc_channels": 64, "disc_layers": 3, "disc_lr": None},
    "train": {"steps": 1000, "batch_size": 32, "lr": 2e-4, "betas": [0.5, 0.9], "weight_decay": 0.0,
              "optimizer": "adamw", "muon_momentum": 0.95,
              "warmup": 100, "grad_clip": 1.0, "ema_decay": 0.999, "log_every": 25, "sample_every": 500,
              "save_every": 1000, "keep_checkpoints": 2, "device": "auto", "bf16": True, "threads": None,
              "progress": True},
}


# ----- EMA --------------------------------------------------------------------------------------
@torch.no_grad()
def ema_update(ema: Codec, model: Codec, decay: float) -> None:
    """Average encoder / decoder parameters; copy the quantizer's parameters and every buffer."""
    quant = {id(p) for p in model.quantizer.parameters()}
    for pe, pm in zip(ema.parameters(), model.parameters()):
        if id(pm) in quant:
            pe.copy_(pm)
        else:
            pe.lerp_(pm, 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


# ----- grids --------------------------------------------------------------------------------------
def save_grid(codec: Codec, batch: Tensor, path: Path) -> None:
    from omnitok.io.image import save_image

    with torch.no_grad():
        recon = codec(batch).recon
    grid = video_grid(batch, recon) if batch.dim() == 5 else image_grid(batch, recon)
    save_image(grid, path)


# ----- training ---------------------------------------------------------------------------------
def _load_train_data(cfg: dict[str, Any], kind: str, progress: bool) -> Tensor:
    d = cfg["data"]
    split = d.get("split", "train")
    if kind == "video":
        return load_videos(d["name"], split, d["size"], d["frames"], d.get("limit"), d.get("where"), progress)
    return load_images(d["name"], split, d["size"], d.get("limit"), d.get("where"), progress=progress)


def _batch(data: Tensor, idx: Tensor, kind: str, flip: bool, gen: torch.Generator, device) -> Tensor:
    x = to_float(data[idx])  # image (B, 3, H, W), video (B, T, 3, H, W)
    if kind == "video":
        x = x.transpose(1, 2)  # (B, 3, T, H, W)
    if flip:
        mask = torch.rand(x.shape[0], generator=gen) < 0.5
        x[mask] = x[mask].flip(-1)
    return x.to(device, non_blocking=True)


def _to_codec_channels(x: Tensor, channels: int) -> Tensor:
    from omnitok.io.image import to_channels

    if x.dim() == 5:  # (B, C, T, H, W)
        return to_channels(x.transpose(1, 2), channels).transpose(1, 2)
    return to_channels(x, channels)


def _latest_checkpoint(out_dir: Path) -> Path | None:
    ckpts = sorted((out_dir / "checkpoints").glob("step-*"))
    ckpts = [c for c in ckpts if (c / "train_state.pt").is_file()]
    return ckpts[-1] if ckpts else None


def train(cfg: dict[str, Any], out_dir: Path, resume: bool = False) -> Path:
    """Train the codec a preset describes; return the final codec folder (EMA weights)."""
    cfg = merge(DEFAULTS, cfg)
    kind = cfg["type"]
    if kind not in ("image", "video"):
        raise ValueError(f"omnitok.train.image_codec handles type image or video, got {kind!r}")
    tc, lc = cfg["train"], cfg["loss"]
    out_dir = start_run(cfg, out_dir)  # also seeds torch
    device = select_device(tc["device"])
    use_bf16 = bool(tc["bf16"]) and device.type == "cuda" and torch.cuda.is_bf16_supported()
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else nullcontext
    progress = bool(tc.get("progress", True))
    seed = int(cfg["seed"])

    data = _load_train_data(cfg, kind, progress)
    codec = build_codec(cfg).to(device)
    channels = codec.in_channels  # every image and video codec exposes it (FrameCodec: its image codec's)
    ema = copy.deepcopy(codec).eval().requires_grad_(False)
    opt = codec_optimizer(codec, str(tc["optimizer"]), tc["lr"], tuple(tc["betas"]), tc["weight_decay"],
                          float(tc["muon_momentum"]))
    disc = disc_opt = None
    if lc["gan"] > 0:
        from omnitok.codecs.losses.adversarial import PatchDiscriminator

        disc = PatchDiscriminator(channels, lc["disc_channels"], lc["disc_layers"]).to(device)
        disc_opt = torch.optim.AdamW(disc.parameters(), lr=lc["disc_lr"] or tc["lr"], betas=tuple(tc["betas"]))
    perceptual = None
    if lc["perceptual"] > 0:
        from omnitok.codecs.losses.perceptual import PerceptualLoss

        perceptual = PerceptualLoss().to(device)

    step, elapsed = 0, 0.0
    if resume:
        ckpt = _latest_checkpoint(out_dir)
        if ckpt is None:
            raise ValueError(f"--resume: no checkpoint with train_state.pt under {out_dir / 'checkpoints'}")
        try:  # weights_only: tensors and plain containers only, never arbitrary pickled objects
            state = torch.load(ckpt / "train_state.pt", map_location=device, weights_only=True)
            if not isinstance(state, dict) or not {"model", "ema", "opt"} <= set(state):
                raise ValueError("not a codec training state (expected model, ema and opt entries)")
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
            raise CheckpointError(f"{ckpt / 'train_state.pt'}: refused ({' '.join(str(e).split())[:200]}); "
                                  "resume from an earlier checkpoint or delete this folder") from e
        codec.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        if disc is not None and "disc" in state:
            disc.load_state_dict(state["disc"])
            disc_opt.load_state_dict(state["disc_opt"])
        torch.set_rng_state(state["rng"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        print(f"resumed from {ckpt} at step {step}")

    fixed = _to_codec_channels(_batch(data, torch.arange(min(8, len(data))), kind, False, None, device), channels)
    sample_every, save_every = int(tc["sample_every"]), int(tc["save_every"])
    steps, bs = int(tc["steps"]), int(tc["batch_size"])
    log_path = out_dir / "log.jsonl"
    bar = tqdm(total=steps, initial=step, desc=f"train {cfg.get('name', kind)}", disable=not progress)
    codec.train()
    t0 = time.perf_counter() - elapsed
    last: dict[str, float] = {}
    while step < steps:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(len(data), (bs,), generator=gen)
        x = _to_codec_channels(_batch(data, idx, kind, bool(cfg["data"].get("flip")), gen, device), channels)
        lr = tc["lr"] * min(1.0, (step + 1) / max(1, int(tc["warmup"])))
        for g in opt.param_groups:
            g["lr"] = lr
        with autocast():
            out = codec(x)
            recon = out.recon.float()
            rec = lc["l1"] * (recon - x).abs().mean() + lc["l2"] * (recon - x).pow(2).mean()
            loss = rec + out.loss
            logs = {"rec": float(rec.detach())}
            if perceptual is not None:
                p = perceptual(_frames(recon), _frames(x))
                loss = loss + lc["perceptual"] * p
                logs["perceptual"] = float(p)
            gan_on = disc is not None and step >= int(lc["gan_start"])
            if gan_on:
                from omnitok.codecs.losses.adversarial import adaptive_gan_weight, hinge_g_loss

                g_loss = hinge_g_loss(disc(_frames(recon)))
                weight = adaptive_gan_weight(rec, g_loss, codec.decoder.last_layer)
                loss = loss + lc["gan"] * weight * g_loss
                logs.update(g_loss=float(g_loss.detach()), gan_weight=float(weight))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(codec.parameters(), tc["grad_clip"])
        opt.step()
        if gan_on:
            from omnitok.codecs.losses.adversarial import hinge_d_loss

            with autocast():
                d_loss = hinge_d_loss(disc(_frames(x)), disc(_frames(recon.detach())))
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
            logs["d_loss"] = float(d_loss.detach())
        step += 1
        ema_update(ema, codec, min(float(tc["ema_decay"]), (1 + step) / (10 + step)))

        usage = out.metrics.get("window_usage", out.metrics.get("usage"))
        last = {"step": step, "loss": float(loss.detach()), **logs, "quant_loss": float(out.loss.detach()),
                "usage": float(usage) if usage is not None else float("nan"),
                "seconds": time.perf_counter() - t0}
        bar.update(1)
        bar.set_postfix(loss=f"{last['loss']:.4f}", usage=f"{last['usage']:.3f}")
        if step % int(tc["log_every"]) == 0 or step == steps:
            with log_path.open("a") as f:
                f.write(json.dumps(last) + "\n")
        if sample_every and (step % sample_every == 0 or step == steps):
            save_grid(ema, fixed, out_dir / "samples" / f"step-{step:07d}.png")
        if (save_every and step % save_every == 0) or step == steps:
            _save_checkpoint(out_dir, step, codec, ema, opt, disc, disc_opt, time.perf_counter() - t0, cfg)
    bar.close()
    elapsed = time.perf_counter() - t0
    final = out_dir / "codec"
    ema.save_pretrained(final, extra={"preset": cfg, "train": {"preset": cfg.get("name"), "steps": steps,
                                                               "seconds": elapsed, "device": str(device),
                                                               "final": last}})
    return final


def _frames(x: Tensor) -> Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W); images pass through."""
    if x.dim() == 5:
        return x.transpose(1, 2).flatten(0, 1)
    return x


def _save_checkpoint(out_dir: Path, step: int, codec, ema, opt, disc, disc_opt, elapsed: float,
                     cfg: dict[str, Any]) -> Path:
    tc = cfg["train"]
    folder = out_dir / "checkpoints" / f"step-{step:07d}"
    ema.save_pretrained(folder, extra={"preset": cfg, "train": {"step": step, "seconds": elapsed}})
    state = {"model": codec.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
             "elapsed": elapsed, "rng": torch.get_rng_state()}
    if disc is not None:
        state.update(disc=disc.state_dict(), disc_opt=disc_opt.state_dict())
    tmp = folder / "train_state.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(folder / "train_state.pt")
    keep = int(tc.get("keep_checkpoints") or 0)
    if keep > 0:
        for old in sorted((out_dir / "checkpoints").glob("step-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return folder

