"""What the two denoiser trainers share: ``train/diffusion.py`` (a text-conditioned denoiser, pixel or latent) and
``train/transfusion.py`` (the Transfusion hybrid). Each writes only how a step's batch and loss are made; this module
holds the rest, once:

* the data: captioned images of a built dataset's split (or synthetic coloured squares), the image codec's
  pre-quantization latents of a whole split, the prompts of the sample grids;
* the loop (:func:`train_loop`): a generator seeded by (seed, step) handed to the step, so a resumed run is
  bit-identical to an uninterrupted one; the learning-rate schedule, which with ``train.max_minutes`` follows
  whichever of steps and elapsed time is further along; gradient clipping; the EMA; ``log.jsonl``; checkpoints
  (``model.*`` and ``ema.*`` weights, optimizer, rng) and sample grids; ``train.halt_after`` (a run stopped as if
  killed, for the tests of ``--resume``);
* resuming (:func:`resume`) and the final EMA folder (:func:`save_final`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from omnitok._overrides import apply_overrides, load_yaml, preset_file
from omnitok.data.sources.digits import DIGIT_WORDS
from omnitok.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
from omnitok.train.common import merge
from omnitok.train.schedule import set_lr

__all__ = ["COLOURS", "SAMPLE_DEFAULTS", "TRAIN_DEFAULTS", "EmaPair", "LoopResult", "StepOutput", "encode_latents", "load_pairs", "load_preset",
           "resume", "sample_prompts", "save_final", "save_sample_grid", "synthetic_pairs", "train_loop"]

# the ``train:`` and ``sample:`` defaults of both trainers (each sets its own lr and weight_decay)
TRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 1000, "batch_size": 32, "lr": 3e-4, "warmup": 100, "min_lr_ratio": 0.1, "weight_decay": 0.0,
    "grad_clip": 1.0, "ema_decay": 0.999, "cond_drop": 0.1, "log_every": 25, "sample_every": 500, "save_every": 500,
    "keep_checkpoints": 2, "threads": None, "max_minutes": 0.0, "progress": True, "halt_after": 0}
SAMPLE_DEFAULTS: dict[str, Any] = {"sampler": "ddim", "steps": 20, "cfg": 3.0, "prompts": None}

COLOURS = {"red": (230, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 230), "yellow": (240, 210, 40)}


def load_preset(kind: str, name: str, defaults: dict[str, Any], overrides: list[str] | None = None) -> dict[str, Any]:
    """configs/KIND/NAME.yaml (or a YAML path) + typed ``a.b=value`` overrides, merged over ``defaults``."""
    path = preset_file(kind, name)
    cfg = load_yaml(path.read_text()) or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: a {kind} preset must be a mapping")
    cfg.setdefault("name", path.stem)
    return apply_overrides(merge(defaults, cfg), list(overrides or []))


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


@torch.no_grad()
def encode_latents(codec: Any, images: Tensor, channels: int) -> Tensor:
    """uint8 images (N, 3, H, W) -> the codec's pre-quantization latents (N, D, h, w), 256 images at a time, the
    images first brought to the codec's ``channels``."""
    from omnitok.io.image import to_channels

    return torch.cat([codec.encode_latents(to_channels(images[i : i + 256].float() / 127.5 - 1, channels))
                      for i in range(0, len(images), 256)])


def sample_prompts(cfg: dict[str, Any]) -> list[str]:
    """The sample grid's prompts: ``sample.prompts``, else one per digit or per colour of the training data."""
    if cfg["sample"].get("prompts"):
        return list(cfg["sample"]["prompts"])
    if cfg["data"]["name"] == "digits":
        return [f"the digit {w}" for w in DIGIT_WORDS]
    if cfg["data"]["name"] == "synthetic":
        return [f"a {c} square" for c in COLOURS]
    return []


def save_sample_grid(cfg: dict[str, Any], path: Path, text_to_image: Callable[..., tuple[Tensor, Any]]) -> None:
    """Two images per prompt of :func:`sample_prompts` with the preset's ``sample:`` settings (seed 0), as one PNG
    grid; ``text_to_image(prompts, sampler=, steps=, cfg_scale=, seed=) -> (images (N, 3, H, W), stats)``."""
    from omnitok.generation.diffusion import image_grid
    from omnitok.io.image import save_image

    prompts = sample_prompts(cfg)
    if not prompts:
        return
    s = cfg["sample"]
    images, _ = text_to_image(prompts * 2, sampler=s["sampler"], steps=int(s["steps"]), cfg_scale=float(s["cfg"]),
                              seed=0)
    save_image(image_grid(images, cols=len(prompts)), path)


# ----- the trained weights and their EMA ----------------------------------------------------------------------
class EmaPair(nn.Module):
    """The trained weights and their EMA in one state dict (``model.*``, ``ema.*``) for checkpoints."""

    def __init__(self, model: nn.Module, ema: nn.Module) -> None:
        super().__init__()
        self.model, self.ema = model, ema

    def saved(self) -> dict[str, Tensor]:
        """The state a checkpoint stores."""
        return self.state_dict()

    def load_saved(self, state: dict[str, Tensor], where: str) -> None:
        """Load what :meth:`saved` stored (``where`` names the checkpoint in errors)."""
        self.load_state_dict(state)

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
            pe.lerp_(pm, 1.0 - decay)


def resume(out: Path, pair: EmaPair, opt: torch.optim.Optimizer, command: str) -> tuple[int, float]:
    """Load the latest checkpoint under ``out`` into ``pair`` and ``opt`` and restore the rng; -> (step, elapsed
    seconds)."""
    ckpt = latest_checkpoint(out)
    if ckpt is None:
        raise ValueError(f"--resume: no checkpoint under {out / 'checkpoints'}")
    st = load_checkpoint(ckpt)
    pair.load_saved(st["model"], str(ckpt))
    opt.load_state_dict(st["optimizer"])
    set_rng_state(*st["rng"])
    step = int(st["step"])
    print(f"omnitok train {command}: resumed from {ckpt} at step {step}")
    return step, float(st["loader"].get("elapsed", 0.0))


# ----- the loop -----------------------------------------------------------------------------------------------
@dataclass
class StepOutput:
    """What a training step hands back: the loss to back-propagate and the figures logged with it (``loss`` first)."""

    loss: Tensor  # scalar
    figures: dict[str, float]


@dataclass
class LoopResult:
    step: int
    stopped_by: str  # "steps" or the time budget
    seconds: float  # training wall time, a resumed run's earlier part included
    last: dict[str, Any] = field(default_factory=dict)  # the last step's log line
    halted: bool = False  # stopped at train.halt_after, as if killed


def train_loop(pair: EmaPair, opt: torch.optim.Optimizer, cfg: dict[str, Any], out: Path, *, step: int,
               elapsed: float, step_fn: Callable[[torch.Generator], StepOutput], sample: Callable[[Path], None],
               checkpoint_config: dict[str, Any], model_class: str, desc: str,
               postfix: Callable[[dict[str, Any]], dict[str, str]]) -> LoopResult:
    """Train ``pair.model`` from ``step`` to ``train.steps``. ``step_fn(g)`` draws its batch from ``g`` (seeded by
    seed and step) and returns the loss; the loop sets the learning rate before it and, after it, steps the
    optimizer, the EMA, the log, the checkpoints and the sample grids (``sample(path)``, with the EMA weights)."""
    tc = cfg["train"]
    seed = int(cfg["seed"])
    model, ema = pair.model, pair.ema
    steps = int(tc["steps"])
    max_seconds = 60.0 * float(tc["max_minutes"] or 0)
    halt = int(tc.get("halt_after") or 0)
    log_path = out / "log.jsonl"
    bar = tqdm(total=steps, initial=step, desc=desc, disable=not bool(tc["progress"]), dynamic_ncols=True)
    save_every, sample_every = int(tc["save_every"]), int(tc["sample_every"])
    model.train()
    t0 = time.perf_counter() - elapsed
    last: dict[str, Any] = {}
    stopped = "steps"
    while step < steps:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        lr = set_lr(opt, step, float(tc["lr"]), int(tc["warmup"]), steps, float(tc["min_lr_ratio"]),
                    time.perf_counter() - t0, max_seconds)
        out_step = step_fn(g)
        opt.zero_grad(set_to_none=True)
        out_step.loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), float(tc["grad_clip"] or 1e9))
        opt.step()
        step += 1
        pair.update_ema(min(float(tc["ema_decay"]), (1 + step) / (10 + step)))
        seconds = time.perf_counter() - t0
        last = {"step": step, **out_step.figures, "lr": lr, "grad_norm": float(gnorm), "seconds": seconds}
        bar.update(1)
        bar.set_postfix(postfix(last))
        out_of_time = max_seconds > 0 and seconds >= max_seconds
        final = step in (steps, halt) or out_of_time
        if step % int(tc["log_every"]) == 0 or final:
            with log_path.open("a") as f:
                f.write(json.dumps(last) + "\n")
        if (save_every and step % save_every == 0) or final:
            save_checkpoint(out, step, pair, opt, checkpoint_config,
                            {"step": step, "elapsed": time.perf_counter() - t0}, extra={"model_class": model_class},
                            keep=int(tc["keep_checkpoints"]), model_state=pair.saved())
        if sample_every and (step % sample_every == 0 or final):
            sample(out / "samples" / f"step-{step:07d}.png")
            ema.eval()
        if out_of_time:
            stopped = f"time budget of {tc['max_minutes']} min"
            break
        if step == halt:
            bar.close()
            return LoopResult(step, stopped, time.perf_counter() - t0, last, halted=True)
    bar.close()
    return LoopResult(step, stopped, time.perf_counter() - t0, last)


def save_final(pair: EmaPair, out: Path, cfg: dict[str, Any], result: LoopResult, load_seconds: float,
               parameters: int, folders: tuple[str, ...], **train_info: Any) -> Path:
    """The EMA model as ``out/final`` (its training summary in config.json: ``train_info`` beside the figures)
    with the run's ``folders`` (text codec, vocabulary, image codec ...) copied in; a halted run's answer is
    ``out/checkpoints``."""
    if result.halted:
        return out / "checkpoints"
    final_dir = out / "final"
    pair.ema.save_pretrained(final_dir, extra={
        "train": {"preset": cfg.get("name"), "steps": result.step, "stopped_by": result.stopped_by,
                  "seconds": round(result.seconds, 1), "load_seconds": round(load_seconds, 1),
                  "parameters": parameters, **train_info, "final": result.last},
        "preset": cfg})
    for name in folders:
        if (out / name).is_dir():
            shutil.copytree(out / name, final_dir / name, dirs_exist_ok=True)
    return final_dir
