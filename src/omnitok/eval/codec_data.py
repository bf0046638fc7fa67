"""Load a dataset split into memory as uint8 tensors for codec training and evaluation.

``load_images("digits", "test", size=32)`` -> uint8 (N, 3, H, W); ``load_videos("video", "test", ...)``
-> uint8 (N, T, 3, H, W). Built datasets are read with :class:`omnitok.data.dataset.ShardDataset`
(alpha composited on white, greyscale replicated to RGB). The name ``synthetic`` generates a small
deterministic set of coloured shapes (or moving squares for video) so debug presets and tests need no
built data.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

__all__ = ["load_images", "load_videos", "synthetic_images", "synthetic_videos", "to_float", "to_uint8"]


def to_float(x: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return x.float() / 127.5 - 1.0


def to_uint8(x: Tensor) -> Tensor:
    """float [-1, 1] -> uint8 [0, 255] (clamped, rounded)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _split_seed(split: str) -> int:
    return {"train": 0, "val": 1, "test": 2}.get(split, 3)


def synthetic_images(n: int, size: int, seed: int = 0) -> Tensor:
    """n images (n, 3, size, size) uint8: 1-3 coloured rectangles / discs on a flat background."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        img = np.empty((size, size, 3), dtype=np.float32)
        img[:] = g.uniform(0, 255, 3)
        for _ in range(g.integers(1, 4)):
            c = g.uniform(0, 255, 3)
            cx, cy = g.uniform(0, size, 2)
            r = g.uniform(size / 8, size / 3)
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r if g.random() < 0.5 else (
                (abs(xx - cx) < r) & (abs(yy - cy) < r * g.uniform(0.4, 1.0))
            )
            img[mask] = c
        out[i] = img.astype(np.uint8)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def synthetic_videos(n: int, size: int, frames: int, seed: int = 0) -> Tensor:
    """n clips (n, T, 3, size, size) uint8: a coloured square moving in a straight line."""
    g = np.random.default_rng(seed)
    out = np.zeros((n, frames, size, size, 3), dtype=np.uint8)
    side = max(2, size // 4)
    for i in range(n):
        bg, fg = g.uniform(0, 255, 3), g.uniform(0, 255, 3)
        x0, y0 = g.uniform(0, size - side, 2)
        vx, vy = g.uniform(-1.5, 1.5, 2)
        for t in range(frames):
            frame = np.empty((size, size, 3), dtype=np.float32)
            frame[:] = bg
            x = int(np.clip(x0 + vx * t, 0, size - side))
            y = int(np.clip(y0 + vy * t, 0, size - side))
            frame[y : y + side, x : x + side] = fg
            out[i, t] = frame.astype(np.uint8)
    return torch.from_numpy(out).permute(0, 1, 4, 2, 3).contiguous()


def _cache_file(data: str, key: str) -> Path | None:
    """A cache file for a decoded split, keyed by the dataset card's hash (rebuilt data -> new file)."""
    from omnitok.data.paths import dataset_dir

    card = dataset_dir(data) / "card.json"
    if not card.is_file():
        return None
    digest = hashlib.sha256(card.read_bytes()).hexdigest()[:16]
    return dataset_dir(data) / "decoded" / f"{key}-{digest}.safetensors"


def _cached(data: str, key: str, make) -> Tensor:
    from safetensors.torch import load_file, save_file

    path = _cache_file(data, key)
    if path is not None and path.is_file():
        try:
            return load_file(str(path))["x"]
        except Exception:  # a broken cache file is rebuilt
            path.unlink(missing_ok=True)
    x = make()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"x": x.contiguous()}, str(tmp))
        os.replace(tmp, path)
    return x


def _matches(meta: dict[str, Any], where: dict[str, Any] | None) -> bool:
    return not where or all(meta.get(k) == v for k, v in where.items())


def load_images(
    data: str,
    split: str,
    size: int,
    limit: int | None = None,
    where: dict[str, Any] | None = None,
    progress: bool = True,
) -> Tensor:
    """A split as uint8 (N, 3, size, size); ``where`` keeps examples whose meta has those values."""
    if data == "synthetic":
        return synthetic_images(limit or 256, size, seed=_split_seed(split))
    key = f"images-{split}-{size}-{limit}-" + _where_key(where)
    return _cached(data, key, lambda: _decode(data, split, "image", limit, where, progress, image_size=size))


def _where_key(where: dict[str, Any] | None) -> str:
    return hashlib.sha256(json.dumps(where, sort_keys=True).encode()).hexdigest()[:8]


def _decode(data: str, split: str, kind: str, limit: int | None, where: dict[str, Any] | None, progress: bool,
            **sizes: int) -> Tensor:
    """The ``kind`` ("image" or "video") of each example of a split passing the ``where`` meta filter, as uint8,
    stacked; ``sizes``: the ShardDataset's decoding sizes."""
    from omnitok.data.dataset import ShardDataset

    ds = ShardDataset(data, split, **sizes)
    items = []
    for ex in tqdm(ds, desc=f"load {data}/{split}", disable=not progress, leave=False):
        if kind not in ex or not _matches(ex.get("meta") or {}, where):
            continue
        items.append(to_uint8(ex[kind]))
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise ValueError(f"dataset {data!r} split {split!r} has no {kind}s" + (f" with {where}" if where else ""))
    return torch.stack(items)


def load_videos(
    data: str,
    split: str,
    size: int,
    frames: int,
    limit: int | None = None,
    where: dict[str, Any] | None = None,
    progress: bool = True,
) -> Tensor:
    """A split as uint8 (N, T, 3, size, size), first ``frames`` frames of each clip (``where``: meta filter)."""
    if data == "synthetic":
        return synthetic_videos(limit or 64, size, frames, seed=_split_seed(split))
    key = f"videos-{split}-{size}-{frames}-{limit}-" + _where_key(where)
    return _cached(data, key, lambda: _decode(data, split, "video", limit, where, progress, video_size=size,
                                              num_frames=frames))
