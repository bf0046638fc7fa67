"""Held-out examples for the eval tasks (split ``EvalSettings.split`` of the built datasets), and the batching
and progress bar the tasks share."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tqdm.auto import tqdm

from omnitok.data.dataset import ShardDataset
from omnitok.eval.settings import EvalSettings

__all__ = ["balanced_digits", "batches", "digit_items", "examples", "progress_bar", "speech_items"]


def examples(name: str, s: EvalSettings, keep: Callable[[dict[str, Any]], bool], limit: int,
             **kw: Any) -> list[dict[str, Any]]:
    """The first ``limit`` decoded examples of dataset ``name`` (split ``s.split``) whose meta passes ``keep``;
    ``kw`` goes to :class:`ShardDataset` (image_size, sample_rate, ...). ValueError when none passes."""
    out = []
    for item in ShardDataset(name, s.split, root=s.data_root, rank=0, world_size=1, **kw):
        if keep(item["meta"]):
            out.append(item)
            if len(out) >= limit:
                break
    if not out:
        raise ValueError(f"{name}/{s.split} holds no example for this task "
                         f"(is `omnitok data build {name}` done?)")
    return out


def balanced_digits(s: EvalSettings, limit: int) -> list[dict[str, Any]]:
    """Held-out digit images, ``limit`` of them, balanced over the ten labels as far as the split allows."""
    return digit_items(s.split, s.data_root, s.image_size, limit)


def digit_items(split: str, data_root: str | None, size: int, limit: int) -> list[dict[str, Any]]:
    """``limit`` digits of ``split`` at ``size`` px, balanced over the ten labels as far as the split allows, in
    rounds of the labels 0..9 (the i-th of each digit, then the next)."""
    per = max(1, math.ceil(limit / 10))
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for item in ShardDataset("digits", split, root=data_root, image_size=size, rank=0, world_size=1):
        lab = int(item["label"])
        if len(groups[lab]) < per:
            groups[lab].append(item)
        if sum(len(g) for g in groups.values()) >= per * 10:
            break
    rows = [groups[k][i] for i in range(per) for k in range(10) if i < len(groups[k])]
    return rows[:limit]


def speech_items(s: EvalSettings, kind: str, limit: int, sr: int) -> list[dict[str, Any]]:
    """Held-out utterances of the settings' engines: ``kind`` "digits" (spoken digit strings) or "digit" (one
    spoken digit; the speech source marks those kind "digits" with one digit too), decoded at ``sr`` Hz."""
    engines = set(s.engines)

    def keep(m: dict[str, Any]) -> bool:
        if kind == "digit":
            ok = m.get("kind") in ("digit", "digits") and len(str(m.get("digits", ""))) == 1
        else:
            ok = m.get("kind") == kind
        return ok and (not engines or m.get("engine") in engines)

    return examples("speech", s, keep, limit, sample_rate=sr)


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in slices of ``size`` (the last one shorter)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def progress_bar(total: int, desc: str, s: EvalSettings) -> Any:
    """A tqdm bar over ``total`` examples (off when ``s.progress`` is false)."""
    return tqdm(total=total, desc=desc, unit="ex", disable=not s.progress, leave=False)
