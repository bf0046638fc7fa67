"""``omnitok train clip``: contrastive alignment of images and speech with text (CLIP / CLAP) from a preset.

    omnitok train clip --preset digits-emoji-speech [--out runs/clip/NAME] [--resume] [key=value ...]

A preset (``configs/align/<name>.yaml``) names the text codec, the model (``AlignConfig``), the loss and one task
per dataset: each step draws a batch from every task, embeds media and captions, and adds the task's contrastive
loss (``align/clip_loss.py`` or ``align/siglip_loss.py``) with the pair's temperature. Overrides are dotted keys
into the preset: ``train.max_steps=200``, ``loss.targets=diagonal``, ``model.loss=siglip``, ``tasks.emoji=null``
(drop a task).

Batches are drawn from the whole training split in memory (``data/pairs.py``): global batch ``n`` of a task is a
function of (seed, task, n) only, and rank r of N takes rows ``[r*b, (r+1)*b)``. The losses gather embeddings
across ranks and each rank returns its share, so gradients are *summed* over ranks (no DDP wrapper): N processes
with batch b each equal one process with batch N*b (tested with 2 gloo processes). Launch with
``torchrun --nproc-per-node N -m omnitok.cli train clip ...``.

Writes ``<out>/final`` (``AlignModel`` folder: config.json, model.safetensors, tokenizer.json), resumable
checkpoints under ``<out>/checkpoints``, ``metrics.jsonl`` and ``train_config.json``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omnitok._overrides import load_yaml, split_override
from omnitok.align.clip_loss import TARGETS, clip_loss
from omnitok.align.model import AlignConfig, AlignModel, BPETokenizer
from omnitok.align.siglip_loss import siglip_loss
from omnitok.align.text_encoder import pad_ids
from omnitok.data.pairs import PairSet, load_pairs
from omnitok.train import distributed as dist_utils
from omnitok.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
from omnitok.train.metrics import MetricsWriter
from omnitok.train.optim import decay_groups
from omnitok.train.schedule import set_lr

__all__ = ["AlignTrainConfig", "LossConfig", "TaskConfig", "add_arguments", "apply_overrides", "batch_indices",
           "load_preset", "run", "train"]


@dataclass
class TaskConfig:
    """One dataset paired with text: which tower, which split, how many pairs per global batch."""

    dataset: str
    tower: str  # image | audio
    batch_size: int = 128  # global: split over ranks
    label: str = "caption"  # label (the meta's integer class) | caption (one class per distinct caption)
    kinds: list[str] | None = None  # keep only these meta kinds (speech: digits / emoji / sentence)
    limit: int | None = None  # first N training pairs only
    weight: float = 1.0  # this task's loss weight


@dataclass
class LossConfig:
    targets: str = "label"  # diagonal | label | dedup (see align/clip_loss.py); siglip: label-aware unless diagonal


@dataclass
class AlignTrainConfig:
    max_steps: int = 1000
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.98  # CLIP's
    grad_clip: float = 1.0
    log_every: int = 20
    eval_every: int = 200  # val loss on a fixed val batch per task (0 = never)
    save_every: int = 500
    keep_checkpoints: int = 1
    seed: int = 0
    halt_after: int = 0  # stop after this step as if killed (tests of --resume); 0 = off

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlignTrainConfig:
        return cls(**_known(cls, d, "train"))


def _known(cls: type, d: dict[str, Any], where: str) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {where} keys {unknown}; expected some of {sorted(names)}")
    return dict(d)


# ----- presets and overrides -----------------------------------------------------------------------------------
def load_preset(name: str) -> dict[str, Any]:
    """``configs/align/<name>.yaml`` (or a path to a YAML file) -> a plain dict."""
    path: Any = Path(name)
    if not (name.endswith((".yaml", ".yml")) and path.is_file()):
        path = resources.files("omnitok").joinpath("configs", "align", f"{name}.yaml")
        if not path.is_file():
            folder = resources.files("omnitok").joinpath("configs", "align")
            names = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
            raise ValueError(f"unknown align preset {name!r}; available: {names}")
    data = load_yaml(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"preset {name}: expected a mapping")
    return data


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``a.b.c=value`` sets ``cfg["a"]["b"]["c"]`` (YAML value); ``tasks.NAME=null`` removes a task."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        parts, parsed = split_override(item)
        if parts[0] not in ("text_codec", "model", "loss", "tasks", "train"):
            raise ValueError(f"override {item!r}: the key must start with text_codec, model, loss, tasks or train")
        node = cfg
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        if parsed is None and parts[0] == "tasks" and len(parts) == 2:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = parsed
    return cfg


def batch_indices(n: int, batch: int, step: int, seed: int) -> Tensor:
    """Global batch ``step`` of ``batch`` indices into ``n`` pairs: epochs of seeded permutations, read in order."""
    pos = torch.arange(step * batch, (step + 1) * batch)
    out = torch.empty(batch, dtype=torch.long)
    for epoch in torch.unique(pos // n).tolist():
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        sel = pos // n == epoch
        out[sel] = perm[pos[sel] % n]
    return out


# ----- the text codec ----------------------------------------------------------------------------------------------
def text_codec_dir(spec: dict[str, Any], out: Path, root: str | None, progress: bool) -> Path:
    """``text_codec.path`` when given; else train a BPE (``vocab_size``, ``datasets``) into ``<out>/text-codec``."""
    if spec.get("path"):
        path = Path(spec["path"])
        if not (path / "tokenizer.json").is_file():
            raise ValueError(f"text_codec.path {path} holds no tokenizer.json (train one: omnitok train text-codec)")
        return path
    path = out / "text-codec"
    if not (path / "tokenizer.json").is_file():
        from omnitok.train.text_codec import train_text_codec

        info = train_text_codec(int(spec.get("vocab_size", 1024)), path, list(spec.get("datasets", ["digits"])),
                                root=root, progress=progress)
        print(f"omnitok train clip: text codec ({info['learned_ids']} ids) trained into {path}", file=sys.stderr)
    return path


# ----- training ----------------------------------------------------------------------------------------------------
def _task_batch(model: AlignModel, tokenizer: BPETokenizer, task: TaskConfig, pairs: PairSet, idx: Tensor,
                device: torch.device) -> tuple[Tensor, Tensor]:
    """Embeddings (b, D) of the media and of the captions of pairs ``idx``."""
    media, lengths = pairs.batch(idx, model.audio.max_samples if task.tower == "audio" else None)
    if task.tower == "image":
        m = model.embed_image(media.to(device))
    else:
        m = model.embed_audio(media.to(device), lengths.to(device))
    ids, id_lengths = pad_ids(tokenizer.encode([pairs.captions[i] for i in idx.tolist()]), model.config.text.max_len)
    return m, model.embed_text(ids.to(device), id_lengths.to(device))


def _loss(model: AlignModel, task: TaskConfig, media: Tensor, text: Tensor, labels: Tensor,
          targets: str) -> Tensor:
    if model.config.loss == "siglip":
        return siglip_loss(media, text, model.scale(task.tower), model.bias(task.tower),
                           None if targets == "diagonal" else labels)
    return clip_loss(media, text, model.scale(task.tower), labels, targets)


def train(cfg: dict[str, Any], out: str | Path, resume: bool = False, progress: bool = True,
          device: str = "auto", root: str | None = None) -> dict[str, Any]:
    """Train from a preset dict (after overrides); returns the last logged record."""
    out = Path(out)
    tc = AlignTrainConfig.from_dict(cfg.get("train") or {})
    lc = LossConfig(**_known(LossConfig, cfg.get("loss") or {}, "loss"))
    if lc.targets not in TARGETS:
        raise ValueError(f"loss.targets must be one of {TARGETS}, got {lc.targets!r}")
    tasks = {name: TaskConfig(**_known(TaskConfig, spec, f"tasks.{name}"))
             for name, spec in (cfg.get("tasks") or {}).items() if spec is not None}
    if not tasks:
        raise ValueError("the preset has no tasks")
    info = dist_utils.setup(device)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        codec_dir = text_codec_dir(cfg.get("text_codec") or {}, out, root, progress)
    dist_utils.barrier()
    codec_dir = text_codec_dir(cfg.get("text_codec") or {}, out, root, False)
    tokenizer = BPETokenizer((codec_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab_size = int(json.loads((codec_dir / "config.json").read_text())["config"]["vocab_size"])
    mcfg = AlignConfig.from_dict({**(cfg.get("model") or {}), "vocab_size": vocab_size})
    for name, task in tasks.items():
        if getattr(mcfg, task.tower) is None:
            raise ValueError(f"task {name} needs the model's {task.tower} tower (model.{task.tower})")
        if task.batch_size % info.world_size:
            raise ValueError(f"task {name}: batch_size {task.batch_size} is not a multiple of {info.world_size} ranks")

    # data: every rank holds every training pair; the global batch is split by rank
    train_sets: dict[str, PairSet] = {}
    val_sets: dict[str, PairSet] = {}
    for name, task in tasks.items():
        kw: dict[str, Any] = {"kinds": task.kinds, "label": task.label, "root": root, "progress": progress}
        if task.tower == "image":
            kw["image_size"] = mcfg.image.image_size
        else:
            kw["sample_rate"] = mcfg.audio.sample_rate
        label_ids: dict[str, int] = {}
        train_sets[name] = load_pairs(task.dataset, "train", task.tower, limit=task.limit, label_ids=label_ids, **kw)
        if tc.eval_every > 0:
            try:
                val_sets[name] = load_pairs(task.dataset, "val", task.tower, limit=task.batch_size,
                                            label_ids=label_ids, **kw)
            except ValueError as e:
                if info.is_main:
                    print(f"omnitok train clip: no val pairs for {name} ({e})", file=sys.stderr)

    torch.manual_seed(tc.seed)
    model = AlignModel(mcfg, tokenizer).to(info.device)
    optimizer = torch.optim.AdamW(decay_groups(model, tc.weight_decay, embedding="embed"), lr=tc.lr,
                                  betas=(tc.beta1, tc.beta2), foreach=False)
    step, train_seconds = 0, 0.0
    ckpt_path = latest_checkpoint(out) if resume else None
    if ckpt_path is not None:
        ck = load_checkpoint(ckpt_path)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        set_rng_state(*ck["rng"])
        step, train_seconds = ck["step"], float(ck["config"].get("train_seconds", 0.0))
        if info.is_main:
            print(f"omnitok train clip: resumed from {ckpt_path} at step {step}", file=sys.stderr)
    full_config = {"text_codec": str(codec_dir), "model": mcfg.to_dict(), "loss": dataclasses.asdict(lc),
                   "tasks": {k: dataclasses.asdict(v) for k, v in tasks.items()}, "train": dataclasses.asdict(tc),
                   "world_size": info.world_size, "train_pairs": {k: len(v) for k, v in train_sets.items()}}
    if info.is_main:
        (out / "train_config.json").write_text(json.dumps(full_config, indent=2) + "\n")
    writer = MetricsWriter(out, resume_step=step if ckpt_path is not None else None, enabled=info.is_main)
    pbar = None
    if progress and info.is_main:
        from tqdm import tqdm

        pbar = tqdm(total=tc.max_steps, initial=step, desc="train clip", dynamic_ncols=True)
    last: dict[str, Any] = {}
    sums: dict[str, float] = {}
    n_logged = 0
    t_mark, cpu0 = time.perf_counter(), time.process_time()
    model.train()
    if val_sets and step == 0:
        writer.write({"split": "val", "step": 0, **_val_losses(model, tokenizer, tasks, val_sets, lc, info)})
        t_mark = time.perf_counter()
    while step < tc.max_steps:
        lr = set_lr(optimizer, step, tc.lr, tc.warmup_steps, tc.max_steps, tc.min_lr_ratio)
        total = torch.zeros((), device=info.device)
        parts: dict[str, Tensor] = {}
        for t_i, (name, task) in enumerate(tasks.items()):
            pairs = train_sets[name]
            idx = batch_indices(len(pairs), task.batch_size, step, tc.seed + 7919 * t_i)
            b = task.batch_size // info.world_size
            rows = slice(info.rank * b, (info.rank + 1) * b)
            media, text = _task_batch(model, tokenizer, task, pairs, idx[rows], info.device)
            loss = _loss(model, task, media, text, pairs.labels[idx[rows]].to(info.device), lc.targets)
            total = total + task.weight * loss
            parts[name] = loss.detach()
        total.backward()
        if info.enabled:  # each rank's loss is its share of the global one: gradients add up over ranks
            for p in model.parameters():
                if p.grad is not None:
                    dist_utils.all_reduce_sum(p.grad)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip if tc.grad_clip > 0 else math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.clamp_logit_scales_()
        step += 1
        now = time.perf_counter()
        train_seconds, t_mark = train_seconds + now - t_mark, now
        for name, v in parts.items():
            sums[name] = sums.get(name, 0.0) + float(dist_utils.all_reduce_sum(v.clone()))
        n_logged += 1
        if pbar is not None:
            pbar.update(1)
        finished = step >= tc.max_steps
        if step % tc.log_every == 0 or finished:
            rec: dict[str, Any] = {"split": "train", "step": step, "lr": lr, "grad_norm": float(grad_norm),
                                   "loss": sum(sums.values()) / n_logged,
                                   **{f"loss_{k}": v / n_logged for k, v in sums.items()},
                                   **{f"scale_{p}": float(model.scale(p).detach()) for p in model.pairs},
                                   "train_seconds": round(train_seconds, 2),
                                   "cpu_seconds": round(time.process_time() - cpu0, 2)}
            writer.write(rec)
            last, sums, n_logged = rec, {}, 0
            if pbar is not None:
                pbar.set_postfix(loss=f"{rec['loss']:.3f}")
        if val_sets and tc.eval_every > 0 and (step % tc.eval_every == 0 or finished):
            writer.write({"split": "val", "step": step, **_val_losses(model, tokenizer, tasks, val_sets, lc, info)})
        halt = tc.halt_after > 0 and step >= tc.halt_after
        if tc.save_every > 0 and (step % tc.save_every == 0 or finished or halt) and info.is_main:
            save_checkpoint(out, step, model, optimizer, {"align": full_config}, {"step": step},
                            keep=tc.keep_checkpoints,
                            extra={"model_class": "AlignModel", "train_seconds": round(train_seconds, 3)})
        dist_utils.barrier()
        if halt:
            break
    if pbar is not None:
        pbar.close()
    if info.is_main and step >= tc.max_steps:
        model.save_pretrained(out / "final", extra={"training": {
            "steps": step, "train_seconds": round(train_seconds, 1), "world_size": info.world_size,
            "text_codec": str(codec_dir), "loss": dataclasses.asdict(lc),
            "tasks": {k: dataclasses.asdict(v) for k, v in tasks.items()}}})
        shutil.copy(codec_dir / "config.json", out / "final" / "text_codec.json")
    dist_utils.barrier()
    dist_utils.cleanup()
    return last


@torch.no_grad()
def _val_losses(model: AlignModel, tokenizer: BPETokenizer, tasks: dict[str, TaskConfig],
                val_sets: dict[str, PairSet], lc: LossConfig, info: dist_utils.DistInfo) -> dict[str, float]:
    """Each task's loss on its first val pairs (the same ones every time), split over ranks like a train batch."""
    was = model.training
    model.eval()
    out = {}
    for name, pairs in val_sets.items():
        b = min(len(pairs), tasks[name].batch_size) // info.world_size
        if b == 0:
            continue
        idx = torch.arange(info.rank * b, (info.rank + 1) * b)
        media, text = _task_batch(model, tokenizer, tasks[name], pairs, idx, info.device)
        loss = _loss(model, tasks[name], media, text, pairs.labels[idx].to(info.device), lc.targets)
        out[f"val_loss_{name}"] = float(dist_utils.all_reduce_sum(loss.detach().clone()))
    model.train(was)
    return out


# ----- command line ------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="debug", help="configs/align/<NAME>.yaml (debug, digits-emoji-speech) "
                        "or a YAML path")
    parser.add_argument("--out", default=None, help="run folder (default runs/clip/<preset>)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("--root", default=None, help="omnitok cache root holding the datasets")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (train.max_steps=200, loss.targets=...)")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = apply_overrides(load_preset(args.preset), list(args.overrides))
    except ValueError as e:
        print(f"omnitok train clip: {e}", file=sys.stderr)
        return 2
    out = args.out or f"runs/clip/{Path(args.preset).stem}"
    try:
        rec = train(cfg, out, resume=args.resume, progress=not args.no_progress, device=args.device, root=args.root)
    except ValueError as e:
        print(f"omnitok train clip: {e}", file=sys.stderr)
        return 2
    if rec and int(__import__("os").environ.get("RANK", "0")) == 0:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rec.items()}))
    return 0
