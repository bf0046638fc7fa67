"""``omnitok train lm``: train the unified transformer on packed token batches, on one process or many.

    omnitok train lm --preset small --data DIR[,DIR...] [--out runs/lm-small] [--resume] [key=value ...]

``--data`` names token-shard folders read by ``omnitok.data.mixture.MixtureLoader`` (the packed-batch contract
at the top of that file), or ``synthetic[:vocab=N]`` for a built-in source of the same contract (tests,
benchmarks). Overrides are ``model.<key>=v`` / ``train.<key>=v`` or bare keys (``lr=3e-4 n_layer=4``).

Loss normalisation: every optimizer step sums the token losses of all its micro-batches on all ranks and divides
by the global number of target tokens, so N ranks x batch b equals one process with batch N*b (up to float
rounding), whatever the padding.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from omnitok._validate import check_fields
from omnitok.model.config import ModelConfig, apply_overrides, load_preset
from omnitok.model.transformer import Transformer, lm_loss
from omnitok.train import distributed as dist_utils
from omnitok.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
from omnitok.train.metrics import FLOPS_PEAK, MetricsWriter, TokenStats, flops_per_token, plot_curves
from omnitok.train.muon import Muon
from omnitok.train.muon import param_groups as muon_param_groups
from omnitok.train.optim import decay_groups
from omnitok.train.schedule import set_lr

__all__ = ["BatchSource", "SyntheticBatches", "TrainConfig", "add_arguments", "build_optimizer", "expand_data",
           "run", "train", "train_preset"]

BATCH_KEYS = ("input_ids", "labels", "position_ids", "document_ids", "modality", "task")


@dataclass
class TrainConfig:
    """Training knobs (the ``train:`` section of a preset)."""

    seq_len: int = 256
    batch_size: int = 8  # micro-batch per rank; global batch = batch_size * grad_accum * world_size
    grad_accum: int = 1
    max_steps: int = 1000
    max_minutes: float = 0.0  # > 0: also stop after this much training wall time; the LR schedule follows
    #   whichever of steps and time is further along (a time budget, as in "Cramming", arXiv 2212.14034)
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    optimizer: str = "adamw"  # adamw | muon (Muon on the blocks' matrices, AdamW on the rest: train/muon.py)
    muon_momentum: float = 0.95
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    log_every: int = 10
    eval_every: int = 100
    eval_batches: int = 8
    save_every: int = 500
    keep_checkpoints: int = 2
    keep_best: str = ""  # a val metric to minimise, e.g. "val_loss" or "val_loss/task_transcript2speech": the
    #   model at its lowest value so far is written to best/ (as final/, plus best.json); "" = off
    seed: int = 0
    compile: bool = False
    grad_checkpointing: bool = False
    precision: str = "auto"  # auto (bf16 autocast on GPU and on CPUs with native bf16, else fp32) | bf16 | fp32
    distributed: str = "ddp"  # ddp | fsdp (only used under torchrun)
    cfg_dropout: float = 0.1  # passed to the mixture loader
    loss_on_condition: bool = True  # False: no loss on the condition segment (the prompt) of paired documents
    embed_init: str = "random"  # random | codebook (media code rows from their codec latents: train/embed_init.py)
    ratios: dict[str, float] | None = None  # mixture ratio per source name (folder name; or DIR@ratio in --data)
    masked: dict[str, float] | None = None  # per source name: share of its image-target documents turned into
    #   masked-image documents (MaskGIT; data/mixture.py); needs a vocabulary built with <|mask|>
    val_data: str | None = None  # comma-separated val folders; default: --data with .../train/... -> .../val/...
    halt_after: int = 0  # stop after this optimizer step as if killed (tests of --resume); 0 = off

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "train") -> TrainConfig:
        """Build from a mapping whose keys and value types are checked first (``where`` names its source)."""
        check_fields(cls, d, where)
        return cls(**d)

    def __post_init__(self) -> None:
        for name in ("seq_len", "batch_size", "grad_accum", "max_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_every", "eval_batches", "save_every", "halt_after", "keep_checkpoints",
                     "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1 or not 0 <= self.cfg_dropout < 1:
            raise ValueError(f"train.lr must be > 0, min_lr_ratio in [0, 1] and cfg_dropout in [0, 1); got "
                             f"{self.lr}, {self.min_lr_ratio}, {self.cfg_dropout}")


TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)}


class BatchSource(Protocol):
    """What the trainer needs from a loader (``MixtureLoader`` and :class:`SyntheticBatches` both fit)."""

    vocab_size: int

    def __next__(self) -> dict[str, Tensor]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class SyntheticBatches:
    """Packed batches of learnable synthetic documents under the mixture loader's contract.

    Each document is ``BOS`` then a run ``s, s+k, s+2k, ...`` inside one of four id ranges (standing in for
    text / image / audio / video ids), so the loss falls fast. Batch ``n`` of the *global* batch is a function of
    (seed, n) only; rank r takes rows ``[r*b, (r+1)*b)``, so N ranks x b rows equal one process with N*b rows.
    """

    def __init__(self, vocab_size: int, seq_len: int, batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, split: str = "train") -> None:
        if vocab_size < 16:
            raise ValueError(f"synthetic vocab_size must be >= 16, got {vocab_size}")
        self.vocab_size, self.seq_len, self.batch_size = vocab_size, seq_len, batch_size
        self.seed = seed + (1_000_003 if split == "val" else 0)
        self.rank, self.world_size = rank, world_size
        self.step = 0
        self.pad_id, self.bos_id = 0, 1
        span = (vocab_size - 4) // 4
        self.ranges = [(4 + i * span, 4 + (i + 1) * span) for i in range(4)]  # modality 1..4

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])

    def __iter__(self) -> SyntheticBatches:
        return self

    def __next__(self) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_033 + self.step)
        self.step += 1
        B, T = self.batch_size * self.world_size, self.seq_len
        out = {"input_ids": torch.zeros(B, T, dtype=torch.long), "labels": torch.full((B, T), -100),
               "position_ids": torch.zeros(B, T, dtype=torch.long),
               "document_ids": torch.full((B, T), -1), "modality": torch.zeros(B, T, dtype=torch.uint8),
               "task": torch.zeros(B, T, dtype=torch.uint8)}
        for b in range(B):
            t, doc = 0, 0
            while True:
                n = int(torch.randint(4, max(5, T // 2), (1,), generator=g))
                if t + n > T:
                    break
                m = int(torch.randint(0, 4, (1,), generator=g))
                lo, hi = self.ranges[m]
                start = int(torch.randint(lo, hi, (1,), generator=g))
                k = int(torch.randint(1, 4, (1,), generator=g))
                ids = [self.bos_id] + [lo + (start - lo + k * i) % (hi - lo) for i in range(n - 1)]
                sl = slice(t, t + n)
                out["input_ids"][b, sl] = torch.tensor(ids)
                out["labels"][b, t:t + n - 1] = torch.tensor(ids[1:])
                out["position_ids"][b, sl] = torch.arange(n)
                out["document_ids"][b, sl] = doc
                out["modality"][b, t:t + n - 1] = m + 1
                out["task"][b, sl] = (1, 10, 11, 12)[m]  # text, image, speech, video (TASK_IDS)
                t, doc = t + n, doc + 1
        rows = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        return {k: v[rows] for k, v in out.items()}


def make_source(data: str, tc: TrainConfig, split: str, rank: int, world: int,
                vocab_size: int | None = None) -> BatchSource:
    """``synthetic[:vocab=N]`` or comma-separated token-shard folders (the mixture loader)."""
    if data.startswith("synthetic"):
        opts = dict(kv.split("=", 1) for kv in data.split(":", 1)[1].split(",")) if ":" in data else {}
        vocab = int(opts.get("vocab", vocab_size or 256))
        return SyntheticBatches(vocab, tc.seq_len, tc.batch_size, seed=tc.seed, rank=rank, world_size=world,
                                split=split)
    from omnitok.data.mixture import MixtureLoader

    sources: dict[str, tuple[float, list[str]]] = {}
    for item in (x for x in data.split(",") if x):
        d, _, ratio = item.partition("@")
        if not Path(d).exists():
            raise ValueError(f"--data: token-shard folder {d!r} does not exist")
        name = source_name(d)
        while name in sources:
            name += "+"
        r = float(ratio) if ratio else float((tc.ratios or {}).get(name, 1.0))
        sources[name] = (r, [d])
    mask_id = None
    if tc.masked:  # the <|mask|> id comes from the vocabulary the shards were made with
        from omnitok.data.token_shards import TokenShards
        from omnitok.vocab.vocabulary import Vocabulary

        vocab_dir = TokenShards(next(iter(sources.values()))[1][0]).meta.get("vocab_dir")
        if not vocab_dir:
            raise ValueError("train.masked needs token shards that record their vocabulary folder")
        mask_id = Vocabulary.load(vocab_dir, load_codecs=False).mask_id
    return MixtureLoader(sources, tc.seq_len, tc.batch_size, seed=tc.seed, rank=rank, world_size=world,
                         cfg_dropout=tc.cfg_dropout if split == "train" else 0.0,
                         loss_on_condition=tc.loss_on_condition, masked=tc.masked, mask_id=mask_id)


def expand_data(data: str) -> str:
    """``--data`` as written by a user -> comma-separated split folders with ratios. Each item (``DIR`` or
    ``DIR@ratio``) may be a split folder (``.../train``, holding ``part-r*.json``), a task folder (its ``train``
    split is used) or a tokens root such as ``quickstart/tokens`` (every task folder under it, in the order and
    with the mixture ratios the quickstart recorded in its ``DONE`` file, else sorted and 1 each; a ratio on the
    root scales them)."""
    if data.startswith("synthetic"):
        return data

    def is_split(d: Path) -> bool:
        return any(d.glob("part-r*.json"))

    out: list[str] = []
    for item in (x for x in data.split(",") if x):
        d, _, ratio = item.partition("@")
        path = Path(d)
        if not path.exists():
            raise ValueError(f"--data: {d!r} does not exist")
        if is_split(path):
            out.append(item)
        elif is_split(path / "train"):
            out.append(str(path / "train") + (f"@{ratio}" if ratio else ""))
        else:
            tasks = sorted(t for t in path.iterdir() if t.is_dir() and is_split(t / "train"))
            if not tasks:
                raise ValueError(f"--data: {d} is not a token-shard folder (no part-r*.json), a task folder (no "
                                 "train/ split) or a tokens root (no task folders with a train/ split); run "
                                 "`omnitok tokenize` first")
            recorded: dict[str, float] = {}
            done = path / "DONE"
            if done.is_file():
                try:
                    entries = json.loads(done.read_text())
                    recorded = {str(e["data"]).replace(":", "-"): float(e.get("ratio", 1.0)) for e in entries}
                except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
                    raise ValueError(f"--data: {done} is not the tokenize record the quickstart writes ({e!r})") from e
            scale = float(ratio) if ratio else 1.0
            order = list(recorded)  # the quickstart's own order: a resume must see its sources in the same order
            tasks.sort(key=lambda t: (order.index(t.name), "") if t.name in order else (len(order), t.name))
            out += [f"{t / 'train'}@{recorded.get(t.name, 1.0) * scale:g}" for t in tasks]
    return ",".join(out)


def source_name(folder: str) -> str:
    """A mixture source's name: the folder name, or ``<parent>`` when the folder is a split (train / val)."""
    p = Path(folder)
    return p.parent.name if p.name in ("train", "val", "test") and p.parent.name else p.name


def val_folders(data: str) -> str:
    """Validation folders for ``--data``: each path with its ``train`` component replaced by ``val``.

    Raises ValueError when one is missing (set ``train.val_data`` explicitly then).
    """
    if data.startswith("synthetic"):
        return data
    out = []
    for item in (x for x in data.split(",") if x):
        d, _, ratio = item.partition("@")
        parts = Path(d).parts
        if "train" not in parts:
            raise ValueError(f"cannot guess the validation folder of {d!r} (no 'train' path component)")
        i = len(parts) - 1 - parts[::-1].index("train")
        v = Path(*parts[:i], "val", *parts[i + 1:])
        if not v.exists():
            raise ValueError(f"validation folder {v} does not exist")
        out.append(str(v) + (f"@{ratio}" if ratio else ""))
    return ",".join(out)


def build_optimizer(model: torch.nn.Module, tc: TrainConfig) -> torch.optim.Optimizer:
    """``tc.optimizer``: AdamW, or Muon on the blocks' matrices with AdamW on the rest (:mod:`omnitok.train.muon`);
    weight decay on matrices only (no decay on norms, embeddings, or a tied head)."""
    if tc.optimizer == "muon":
        return Muon(muon_param_groups(model, tc.weight_decay), lr=tc.lr, momentum=tc.muon_momentum,
                    betas=(tc.beta1, tc.beta2), eps=tc.eps)
    if tc.optimizer != "adamw":
        raise ValueError(f"train.optimizer: expected adamw or muon, got {tc.optimizer!r}")
    return torch.optim.AdamW(decay_groups(model, tc.weight_decay), lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=tc.eps,
                             foreach=False)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 in hardware (x86 AVX512-BF16 or AMX-BF16, read from /proc/cpuinfo).

    Without it oneDNN emulates bf16 and autocast is slower than fp32, so ``precision=auto`` stays in fp32.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``bf16``, and for ``auto`` on a GPU or a CPU with native bf16; else fp32."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"train.precision must be auto, bf16 or fp32, got {precision!r}")
    if precision == "bf16" or (precision == "auto" and (device.type == "cuda"
                                                        or (device.type == "cpu" and cpu_has_native_bf16()))):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _task_names() -> dict[int, str]:
    try:
        from omnitok.data.mixture import TASK_IDS

        return {v: k for k, v in TASK_IDS.items()}
    except ImportError:
        return {}


def _at(ids: Tensor | None, keep: Tensor | None) -> Tensor | None:
    """(B, T) per-token ids -> (N,) at the kept positions (unchanged when keep is None)."""
    return ids if ids is None or keep is None else ids[keep]


def _to(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, Tensor)}


@torch.no_grad()
def evaluate(model: torch.nn.Module, source: BatchSource, start_state: dict[str, Any], n_batches: int,
             device: torch.device, precision: str) -> dict[str, float]:
    """Loss / accuracy per modality and task on ``n_batches`` batches from ``start_state`` (same every time)."""
    source.load_state_dict(start_state)
    stats = TokenStats(_task_names())
    was_training = model.training
    model.eval()
    for _ in range(n_batches):
        b = _to(next(source), device)
        keep = b["labels"] != -100  # (B, T): the head runs only where there is a target
        with _autocast(device, precision):
            logits, _ = model(b["input_ids"], position_ids=b["position_ids"], document_ids=b["document_ids"],
                              logits_mask=keep, segment_ids=b.get("segment_ids"))  # (N, V)
        labels = b["labels"][keep]
        _, ce = lm_loss(logits, labels)
        stats.update(ce, logits, labels, _at(b.get("modality"), keep), _at(b.get("task"), keep))
    stats.all_reduce()
    model.train(was_training)
    return stats.summary("val_")


def train(model_cfg: dict[str, Any], tc: TrainConfig, data: str, out: str | Path, resume: bool = False,
          progress: bool = True, device: str = "auto") -> dict[str, Any]:
    """Train; returns the last logged record. Writes checkpoints, metrics.jsonl, loss.png, final/ under ``out``."""
    out = Path(out)
    data = expand_data(data)
    info = dist_utils.setup(device)
    torch.manual_seed(tc.seed)
    source = make_source(data, tc, "train", info.rank, info.world_size, model_cfg.get("vocab_size"))
    val_source: BatchSource | None = None
    if tc.eval_every > 0 and tc.eval_batches > 0:
        try:
            val_source = make_source(tc.val_data or val_folders(data), tc, "val", info.rank, info.world_size,
                                     model_cfg.get("vocab_size"))
        except (ValueError, FileNotFoundError) as e:
            if info.is_main:
                print(f"omnitok train lm: no validation split ({e}); skipping evaluation", file=sys.stderr)
    val_start = val_source.state_dict() if val_source is not None else {}
    model_cfg = {**model_cfg, "vocab_size": int(model_cfg.get("vocab_size") or source.vocab_size)}
    vocab_hash = getattr(source, "vocab_hash", None)
    if vocab_hash is not None:  # record which vocabulary the ids mean, so generation can find and check it
        first_meta = source.sources[0].sets[0].meta if hasattr(source, "sources") else {}
        extra = {**(model_cfg.get("extra") or {}), "vocab_hash": vocab_hash}
        if first_meta.get("vocab_dir"):
            extra["vocab_dir"] = str(first_meta["vocab_dir"])
        model_cfg["extra"] = extra
    if model_cfg["vocab_size"] < source.vocab_size:
        raise ValueError(f"model.vocab_size {model_cfg['vocab_size']} < the data's vocabulary {source.vocab_size}")
    mcfg = ModelConfig.from_dict(model_cfg, where="model (the preset's model section and overrides)")
    if tc.seq_len > mcfg.max_seq_len:
        raise ValueError(f"train.seq_len {tc.seq_len} exceeds model.max_seq_len {mcfg.max_seq_len}")
    model = Transformer(mcfg).to(info.device)
    model.gradient_checkpointing = tc.grad_checkpointing
    step, train_seconds = 0, 0.0
    ckpt_path = latest_checkpoint(out) if resume else None
    if resume and ckpt_path is None and info.is_main:
        print(f"omnitok train lm: --resume but no checkpoint under {out}; starting fresh", file=sys.stderr)
    if tc.embed_init not in ("random", "codebook"):
        raise ValueError(f"train.embed_init must be random or codebook, got {tc.embed_init!r}")
    if tc.embed_init == "codebook" and ckpt_path is None:
        from omnitok.train.embed_init import codebook_embedding_init
        from omnitok.vocab.vocabulary import Vocabulary

        vocab_dir = (mcfg.extra or {}).get("vocab_dir")
        if not vocab_dir:
            raise ValueError("train.embed_init=codebook needs token shards that record their vocabulary folder")
        rows = codebook_embedding_init(model.embed_tokens.weight.data, Vocabulary.load(vocab_dir),
                                       std=mcfg.init_std, seed=tc.seed)
        if info.is_main:
            print(f"omnitok train lm: embeddings of media codes set from their codec latents: {rows}",
                  file=sys.stderr)
    if ckpt_path is not None:
        ck = load_checkpoint(ckpt_path)
        state = ck["model"]
        if mcfg.tie_embeddings:
            state.setdefault("lm_head.weight", state["embed_tokens.weight"])
        model.load_state_dict(state)
        loader_state = ck["loader"]
        if "per_rank" in loader_state:
            if len(loader_state["per_rank"]) != info.world_size:
                raise ValueError(f"checkpoint {ckpt_path} was written by {len(loader_state['per_rank'])} ranks; "
                                 f"resume with the same world size (now {info.world_size})")
            loader_state = loader_state["per_rank"][info.rank]
        source.load_state_dict(loader_state)
        set_rng_state(*ck["rng"])
        step = ck["step"]
        train_seconds = float(ck["config"].get("train_seconds", 0.0))
        if info.is_main:
            print(f"omnitok train lm: resumed from {ckpt_path} at step {step}", file=sys.stderr)
    if info.enabled and tc.distributed == "fsdp" and tc.optimizer == "muon":
        raise ValueError("train.optimizer=muon needs whole matrices; use train.distributed=ddp (FSDP shards them)")
    if info.enabled and tc.distributed == "fsdp" and ckpt_path is not None:
        raise ValueError("resuming FSDP runs is not supported yet; resume with train.distributed=ddp")
    wrapped = dist_utils.wrap_model(model, info, tc.distributed)
    optimizer = build_optimizer(model, tc)  # after FSDP's fully_shard, which replaces the parameters
    if ckpt_path is not None:
        optimizer.load_state_dict(ck["optimizer"])
    fwd = torch.compile(wrapped) if tc.compile else wrapped
    writer = MetricsWriter(out, resume_step=step if ckpt_path is not None else None, enabled=info.is_main)
    full_config = {"model": mcfg.to_dict(), "train": dataclasses.asdict(tc), "data": data,
                   **{k: mcfg.extra[k] for k in ("vocab_hash", "vocab_dir") if k in (mcfg.extra or {})}}
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(full_config, indent=2) + "\n")
    n_no_embed = model.num_params(include_embeddings=False)
    fpt = flops_per_token(n_no_embed, mcfg.n_layer, mcfg.dim, tc.seq_len, mcfg.vocab_size)
    peak = next((v for k, v in FLOPS_PEAK.items() if info.device.type == "cuda"
                 and k in torch.cuda.get_device_name(info.device)), None)
    stats = TokenStats(_task_names())
    pbar = None
    if progress and info.is_main:
        from tqdm import tqdm

        desc = "train lm" if tc.max_minutes <= 0 else f"train lm (stops at {tc.max_minutes:g} min)"
        pbar = tqdm(total=tc.max_steps, initial=step, desc=desc, dynamic_ncols=True)
    last: dict[str, Any] = {}
    best_value = _best_so_far(out, tc.keep_best)
    t0, tokens_seen = time.perf_counter(), 0
    max_seconds = 60.0 * tc.max_minutes
    if tc.max_minutes < 0:
        raise ValueError(f"train.max_minutes must be >= 0 (0 = no time limit), got {tc.max_minutes}")
    finished = step >= tc.max_steps or _out_of_time(train_seconds, max_seconds, info)
    t_mark = time.perf_counter()
    model.train()
    if val_source is not None and step == 0:  # the starting point of the validation curves
        writer.write({"split": "val", "step": 0, **evaluate(wrapped, val_source, val_start, tc.eval_batches,
                                                             info.device, tc.precision)})
    while not finished:
        # with a time budget the schedule runs on whichever of steps and elapsed time is further along
        lr = set_lr(optimizer, step, tc.lr, tc.warmup_steps, tc.max_steps, tc.min_lr_ratio, train_seconds, max_seconds)
        micro = [_to(next(source), info.device) for _ in range(tc.grad_accum)]
        n_tokens = torch.tensor(float(sum(int((b["labels"] != -100).sum()) for b in micro)))
        dist_utils.all_reduce_sum(n_tokens)
        # DDP / FSDP average gradients over ranks: scale so the result is the global token mean
        normalizer = n_tokens.item() / info.world_size
        for i, b in enumerate(micro):
            sync = i == len(micro) - 1 or not (info.enabled and tc.distributed == "ddp")
            ctx = contextlib.nullcontext() if sync else wrapped.no_sync()
            with ctx:
                # the head and the loss only where there is a target (no prompt logits when the condition
                # carries no loss); a compiled forward keeps static shapes and computes them all
                keep = None if tc.compile else b["labels"] != -100  # (B, T)
                with _autocast(info.device, tc.precision):
                    logits, _ = fwd(b["input_ids"], position_ids=b["position_ids"], document_ids=b["document_ids"],
                                    logits_mask=keep, segment_ids=b.get("segment_ids"))  # (N, V) or (B, T, V)
                labels = b["labels"] if keep is None else b["labels"][keep]
                loss, ce = lm_loss(logits, labels, mcfg.z_loss, normalizer=max(normalizer, 1e-9))
                loss.backward()
            stats.update(ce.detach(), logits.detach(), labels, _at(b.get("modality"), keep),
                         _at(b.get("task"), keep))
            tokens_seen += b["input_ids"].numel() * info.world_size
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip if tc.grad_clip > 0 else math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        now = time.perf_counter()
        train_seconds, t_mark = train_seconds + now - t_mark, now
        finished = step >= tc.max_steps or _out_of_time(train_seconds, max_seconds, info)
        if pbar is not None:
            pbar.update(1)
        if finished and step < tc.max_steps and info.is_main:
            msg = f"omnitok train lm: time budget of {tc.max_minutes:g} min reached at step {step} of {tc.max_steps}"
            (pbar.write if pbar is not None else print)(msg)
        if step % tc.log_every == 0 or finished:
            stats.all_reduce()
            elapsed = time.perf_counter() - t0
            rec: dict[str, Any] = {"split": "train", "step": step, "lr": lr, "grad_norm": float(grad_norm),
                                   **stats.summary(), "tokens_per_s": tokens_seen / max(elapsed, 1e-9)}
            if peak:
                rec["mfu"] = rec["tokens_per_s"] * fpt / (peak * info.world_size)
            stats.reset()
            t0, tokens_seen = time.perf_counter(), 0
            writer.write(rec)
            last = rec
            if pbar is not None:
                pbar.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}")
        if val_source is not None and (step % tc.eval_every == 0 or finished):
            rec = {"split": "val", "step": step, **evaluate(wrapped, val_source, val_start, tc.eval_batches,
                                                            info.device, tc.precision)}
            writer.write(rec)
            if info.is_main:
                plot_curves(out / "metrics.jsonl", out / "loss.png")
            if tc.keep_best:
                best_value = _keep_best(out, rec, best_value, model, mcfg, source, info, tc)
        halt = tc.halt_after > 0 and step >= tc.halt_after
        if tc.save_every > 0 and (step % tc.save_every == 0 or finished or halt):
            _save(out, step, model, optimizer, full_config, source, info, tc, train_seconds)
        if halt:
            break
    if pbar is not None:
        pbar.close()
    if tc.keep_best and not (out / "best").is_dir() and info.is_main:
        print(f"omnitok train lm: keep_best={tc.keep_best!r}: no validation ran, so no best/ was written")
    if info.is_main and finished:
        _write_model(out / "final", _full_state(model, info, tc), mcfg, source)
        if (out / "metrics.jsonl").is_file():
            plot_curves(out / "metrics.jsonl", out / "loss.png")
    elif info.enabled and finished and tc.distributed == "fsdp":
        _full_state(model, info, tc)  # collective: every rank takes part
    dist_utils.barrier()
    dist_utils.cleanup()
    return last


def generation_defaults(source: BatchSource) -> dict[str, Any]:
    """What a model trained on ``source`` should generate by default (its ``generation_config.json``): the code
    grids of its training documents (:func:`omnitok.data.token_shards.grid_summary`) and, where the vocabulary
    lets the model end audio itself (one codebook or the flatten pattern), ``until_end`` with the longest
    training clip as the cap. {} for synthetic data or when the vocabulary folder is not recorded."""
    sets = [ts for src in getattr(source, "sources", []) for ts in src.sets]
    vocab_dir = sets[0].meta.get("vocab_dir") if sets else None
    if not vocab_dir or not (Path(vocab_dir) / "vocab.json").is_file():
        return {}
    from omnitok.data.token_shards import grid_summary
    from omnitok.vocab.vocabulary import Vocabulary

    vocab = Vocabulary.load(vocab_dir, load_codecs=False)
    grids = grid_summary(sets, vocab)
    out: dict[str, Any] = {"grids": grids, "sampling": {}}
    if "audio" in grids and (vocab.audio_pattern == "flatten" or vocab.entries["audio"].num_codebooks == 1):
        out["sampling"]["audio"] = {"until_end": True}
    return out


def _full_state(model: Transformer, info: dist_utils.DistInfo, tc: TrainConfig) -> dict[str, Tensor]:
    if info.enabled and tc.distributed == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _write_model(folder: Path, state: dict[str, Tensor], mcfg: ModelConfig, source: BatchSource) -> None:
    """A model folder (config.json, model.safetensors, generation_config.json) of ``state``: final/ and best/."""
    model = Transformer(mcfg)
    model.load_state_dict(state)
    model.generation_config = generation_defaults(source)
    model.save_pretrained(folder)


def _best_so_far(out: Path, metric: str) -> float:
    """The value recorded in ``out/best/best.json`` for ``metric`` (a resumed run keeps its best), else inf."""
    try:
        info = json.loads((out / "best" / "best.json").read_text())
    except (OSError, ValueError):
        return math.inf
    return float(info["value"]) if metric and info.get("metric") == metric else math.inf


def _keep_best(out: Path, rec: dict[str, Any], best: float, model: Transformer, mcfg: ModelConfig, source: BatchSource,
               info: dist_utils.DistInfo, tc: TrainConfig) -> float:
    """Write the model to ``out/best`` when ``rec[tc.keep_best]`` (a val record) is below ``best``; returns the
    lowest value so far. Every rank takes part (the state gathering is collective under FSDP); rank 0 writes."""
    if tc.keep_best not in rec:
        raise ValueError(f"train.keep_best={tc.keep_best!r} is not a validation metric; this run's are "
                         f"{sorted(k for k in rec if k.startswith('val_'))}")
    value = float(rec[tc.keep_best])
    if not value < best:
        return best
    state = _full_state(model, info, tc)
    if info.is_main:
        tmp = out / "best.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        _write_model(tmp, state, mcfg, source)
        (tmp / "best.json").write_text(json.dumps({"metric": tc.keep_best, "value": value, "step": rec["step"]}))
        shutil.rmtree(out / "best", ignore_errors=True)
        os.replace(tmp, out / "best")
    return value


def _out_of_time(seconds: float, budget: float, info: dist_utils.DistInfo) -> bool:
    """Whether the time budget is spent (0 = none); ranks agree (one of them out of time stops them all)."""
    if budget <= 0:
        return False
    flag = torch.tensor(float(seconds >= budget))
    dist_utils.all_reduce_sum(flag)
    return bool(flag.item() > 0)


def _save(out: Path, step: int, model: Transformer, optimizer: torch.optim.Optimizer, cfg: dict[str, Any],
          source: BatchSource, info: dist_utils.DistInfo, tc: TrainConfig, train_seconds: float = 0.0) -> None:
    model_state = opt_state = None
    if info.enabled and tc.distributed == "fsdp":
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        from omnitok.train.checkpoint import _optimizer_to_flat

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state = get_model_state_dict(model, options=opts)
        osd = get_optimizer_state_dict(model, optimizer, options=opts)

        class _Wrap:  # adapt a plain state dict to _optimizer_to_flat
            def state_dict(self) -> dict[str, Any]:
                return osd

        if info.is_main:  # full state dicts are gathered on rank 0 only
            opt_state = _optimizer_to_flat(_Wrap())  # type: ignore[arg-type]
    loader_state = source.state_dict()
    if info.enabled:  # every rank's loader position, so each resumes its own stream
        import torch.distributed as dist

        states: list[Any] = [None] * info.world_size
        dist.all_gather_object(states, loader_state)
        loader_state = {"per_rank": states} if info.world_size > 1 else loader_state
    if info.is_main:
        save_checkpoint(out, step, model, optimizer, cfg, loader_state, keep=tc.keep_checkpoints,
                        model_state=model_state, optimizer_state=opt_state,
                        extra={"train_seconds": round(train_seconds, 3)})
    dist_utils.barrier()


def train_preset(preset: str, data: str, out: str | Path, overrides: list[str] | None = None, *,
                 resume: bool = False, progress: bool = True, device: str = "auto") -> dict[str, Any]:
    """``omnitok train lm`` as a function: the preset ``configs/lm/<preset>.yaml`` with ``key=value`` overrides
    (checked by type and range), trained on ``data`` (see :func:`expand_data`) into ``out``."""
    cfg = apply_overrides(load_preset(preset), list(overrides or []), train_keys=TRAIN_KEYS)
    tc = TrainConfig.from_dict(cfg["train"], where=f"--preset {preset} (train section and overrides)")
    return train(cfg["model"], tc, data, out, resume=resume, progress=progress, device=device)


# ----- command line ---------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="debug", help="configs/lm/<NAME>.yaml: debug, tiny, small, B, L, XL")
    parser.add_argument("--data", required=True,
                        help="comma-separated token folders, each DIR or DIR@ratio: a split folder (.../train), a task "
                             "folder, or a tokens root (e.g. quickstart/tokens: every task with the quickstart's "
                             "ratios); or 'synthetic[:vocab=N]'")
    parser.add_argument("--out", default=None, help="run folder (default runs/lm-<preset>)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (model.n_layer=4, train.lr=3e-4, lr=...)")


def run(args: argparse.Namespace) -> int:
    out = args.out or f"runs/lm-{args.preset}"
    rec = train_preset(args.preset, args.data, out, list(args.overrides), resume=args.resume,
                       progress=not args.no_progress, device=args.device)  # errors: one line from cli.main
    if rec and int(__import__("os").environ.get("RANK", "0")) == 0:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rec.items()}))
    return 0
