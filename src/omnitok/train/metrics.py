"""Training metrics: one JSON object per line (``metrics.jsonl``) and PNG loss curves (matplotlib).

Per-modality / per-task accounting: :class:`TokenStats` accumulates summed cross-entropy, correct top-1
predictions and token counts per modality id and task id (batch tensors ``modality`` / ``task``), so the
trainer reports ``loss/<modality>`` and ``acc/<modality>`` (and per task) for any mixture.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["MODALITY_NAMES", "FLOPS_PEAK", "MetricsWriter", "TokenStats", "flops_per_token", "plot_curves"]

MODALITY_NAMES = {0: "special", 1: "text", 2: "image", 3: "audio", 4: "video"}

#: dense bf16 peak FLOP/s by device-name substring (for MFU)
FLOPS_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "4090": 165e12}


def flops_per_token(n_params_no_embed: int, n_layer: int, dim: int, seq_len: int, vocab_size: int) -> float:
    """Training FLOPs per token: 6 N (matmuls incl. the LM head) + 6 L T d (attention; causal half of 12 L T d).

    Chinchilla / PaLM appendix B accounting.
    """
    n = n_params_no_embed + vocab_size * dim  # the LM head is a matmul; the embedding lookup is not
    return 6 * n + 6 * n_layer * seq_len * dim


class TokenStats:
    """Sums of loss / correct / count per modality and per task, on the device until :meth:`summary`."""

    def __init__(self, task_names: dict[int, str] | None = None, n_ids: int = 32) -> None:
        self.task_names = task_names or {}
        self.n_ids = n_ids
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, Tensor] = {}

    @torch.no_grad()
    def update(self, ce: Tensor, logits: Tensor, labels: Tensor, modality: Tensor | None,
               task: Tensor | None) -> None:
        """ce, labels, modality, task: (B, T) with logits (B, T, V), or (N,) with logits (N, V)."""
        valid = labels != -100
        correct = (logits.argmax(-1) == labels) & valid
        groups = {"modality": modality, "task": task}
        for kind, ids in groups.items():
            if ids is None:
                continue
            ids = ids.to(torch.long).clamp(0, self.n_ids - 1)[valid]
            stacked = torch.stack([
                torch.zeros(self.n_ids, device=ce.device).index_add_(0, ids, ce[valid].float()),
                torch.zeros(self.n_ids, device=ce.device).index_add_(0, ids, correct[valid].float()),
                torch.zeros(self.n_ids, device=ce.device).index_add_(0, ids, torch.ones_like(ids, dtype=torch.float)),
            ])  # (3, n_ids)
            self.sums[kind] = self.sums.get(kind, 0) + stacked
        all_ = torch.stack([ce[valid].float().sum(), correct.float().sum(), valid.float().sum()])
        self.sums["all"] = self.sums.get("all", 0) + all_

    def all_reduce(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            for v in self.sums.values():
                dist.all_reduce(v)

    def summary(self, prefix: str = "") -> dict[str, float]:
        out: dict[str, float] = {}
        if "all" in self.sums:
            s = self.sums["all"].cpu()
            n = max(float(s[2]), 1.0)
            out[f"{prefix}loss"] = float(s[0]) / n
            out[f"{prefix}acc"] = float(s[1]) / n
            out[f"{prefix}tokens"] = float(s[2])
        for kind, names in (("modality", MODALITY_NAMES), ("task", self.task_names)):
            if kind not in self.sums:
                continue
            s = self.sums[kind].cpu()
            for i in range(self.n_ids):
                if float(s[2, i]) > 0:
                    name = names.get(i, str(i))
                    key = name if kind == "modality" else f"task_{name}"
                    out[f"{prefix}loss/{key}"] = float(s[0, i] / s[2, i])
                    out[f"{prefix}acc/{key}"] = float(s[1, i] / s[2, i])
        return out


class MetricsWriter:
    """Append JSON lines to ``<out>/metrics.jsonl`` (rank 0 only); on resume, lines past the step are dropped."""

    def __init__(self, out_dir: str | os.PathLike[str], resume_step: int | None = None, enabled: bool = True) -> None:
        self.path = Path(out_dir) / "metrics.jsonl"
        self.enabled = enabled
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.is_file():
            kept = [json.dumps(r) for r in read_jsonl(self.path) if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        elif resume_step is None and self.path.is_file():
            self.path.unlink()

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` file. A line that does not parse (a write torn by a kill, a stray
    edit) is skipped with a warning naming the file and line, so a resume or a plot never stops on it."""
    rows: list[dict[str, Any]] = []
    for n, ln in enumerate(Path(path).read_text(errors="replace").splitlines(), 1):
        if not ln.strip():
            continue
        try:
            row = json.loads(ln)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            warnings.warn(f"{path}:{n}: not a JSON object (torn write?); line skipped", stacklevel=2)
            continue
        rows.append(row)
    return rows


def plot_curves(metrics_path: str | os.PathLike[str], out_png: str | os.PathLike[str]) -> Path | None:
    """Two panels: train loss (all tokens) and validation loss per modality, against step."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # matplotlib is in the eval / dev extras
        return None
    rows = read_jsonl(metrics_path)
    train = [r for r in rows if r.get("split") == "train" and "loss" in r]
    val = [r for r in rows if r.get("split") == "val"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        axes[0].plot([r["step"] for r in train], [r["loss"] for r in train], label="train (all tokens)")
        mods = sorted({k for r in train for k in r if k.startswith("loss/") and not k.startswith("loss/task_")})
        for k in mods:
            pts = [(r["step"], r[k]) for r in train if k in r]
            axes[0].plot(*zip(*pts), label=k.replace("loss/", "train "), alpha=0.6)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("cross-entropy (nats/token)")
    axes[0].set_title("training loss")
    if train:
        axes[0].legend(fontsize=8)
    if val:
        keys = sorted({k for r in val for k in r if k.startswith("val_loss")
                       and not k.startswith("val_loss/task_")})
        for k in keys:
            pts = [(r["step"], r[k]) for r in val if k in r]
            axes[1].plot(*zip(*pts), marker="o", label=k.replace("val_loss/", "").replace("val_loss", "all"))
    axes[1].set_xlabel("step")
    axes[1].set_title("validation loss per modality")
    if val:
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
