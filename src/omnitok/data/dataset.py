"""``ShardDataset``: a PyTorch IterableDataset over WebDataset shards (or a JSONL manifest), decoded to tensors.

    ds = ShardDataset("digits", "train", image_size=32)          # a built dataset by name
    ds = ShardDataset("/data/mine", "val")                       # a folder of <split>-*.tar, or manifest.jsonl
    ds = ShardDataset(["a.tar", "b.tar"], split=None)            # explicit shards
    loader = DataLoader(ds, batch_size=64, num_workers=2, collate_fn=collate)

Each item is a dict: ``key``, ``meta`` (the stored JSON), ``caption`` (meta caption or transcript, "" if none),
``label`` (when the meta has one), and per stored file: ``image`` float (3, H, W) in [-1, 1]; ``audio`` float (1, T) in [-1, 1] with
``sample_rate``; ``video`` float (T, 3, H, W) in [-1, 1]; ``text`` str.

Sharding across DDP ranks and DataLoader workers: with ``slots = world_size * num_workers`` and
``slot = rank * num_workers + worker``, each slot reads ``shards[slot::slots]`` when there are at least ``slots``
shards, else every shard and keeps examples ``i`` with ``i % slots == slot``. Either way every example is seen
exactly once per epoch across all ranks and workers (counts per rank may differ by up to a shard).

Corrupt media (PNG/FLAC/mp4 that fails to decode, bad JSON) are skipped with a warning naming shard and key;
``ds.skipped`` counts them in this process and a log line reports the count when an iteration ends (with
workers, each worker logs its own count).
"""

from __future__ import annotations

import json
import logging
import os
import random
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from omnitok.data.manifest import find_manifest, iter_manifest
from omnitok.data.paths import dataset_dir
from omnitok.data.shards import example_from_files, iter_shard
from omnitok.data.types import Example
from omnitok.io.audio import AUDIO_EXTS, decode_audio
from omnitok.io.image import IMAGE_EXTS, decode_image
from omnitok.io.text import TEXT_EXTS, decode_text
from omnitok.io.video import VIDEO_EXTS, decode_video

__all__ = ["ShardDataset", "collate", "load_split", "resolve_units"]

log = logging.getLogger(__name__)


def resolve_units(source: str | os.PathLike | Sequence[str | os.PathLike], split: str | None,
                  root: str | os.PathLike | None = None) -> list[Path]:
    """The shards (``.tar``) or manifests (``.jsonl``) that ``source`` and ``split`` name (sorted).

    source: a dataset name built under the cache root; a folder holding ``<split>-*.tar`` shards or
    ``manifest.jsonl``; one ``.tar`` or ``.jsonl`` file; or a list of ``.tar`` paths.
    """
    if isinstance(source, (list, tuple)):
        units = [Path(p) for p in source]
        for p in units:
            if not p.is_file():
                raise ValueError(f"shard {p} does not exist")
        return units
    p = Path(source)
    if isinstance(source, str) and "/" not in source and not source.endswith((".tar", ".jsonl")):
        built = dataset_dir(source, root)  # a dataset name wins over a folder of that name in the cwd
        if built.is_dir():
            p = built
        elif not p.exists():
            raise ValueError(f"dataset {source!r} is not built under {built.parent} "
                             f"(run `omnitok data build {source}`)")
    if p.is_file():
        if p.suffix not in (".tar", ".jsonl"):
            raise ValueError(f"{p}: expected a .tar shard or a .jsonl manifest")
        return [p]
    if not p.is_dir():
        raise ValueError(f"{p} does not exist (expected a dataset name, folder, .tar shard or .jsonl manifest)")
    tars = sorted(p.glob("*.tar"))
    if split is not None:
        named = [t for t in tars if t.name.startswith(f"{split}-")]
        if named:
            return named
        if any(t.name.split("-")[0] in ("train", "val", "test") for t in tars):
            raise ValueError(f"{p} has no shards for split {split!r}")
    elif tars:
        return tars
    manifest = find_manifest(p)
    if manifest is not None:
        return [manifest]
    if tars:
        return tars
    raise ValueError(f"{p} holds no .tar shards and no {p / 'manifest.jsonl'}")


def _dist_info(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardDataset(IterableDataset):
    """Decoded examples from shards or a manifest, split across DDP ranks and DataLoader workers.

    image_size:  resize images (int: square side) — None keeps the stored size
    sample_rate: resample audio to this rate (Hz) — None keeps the stored rate
    video_size / num_frames: resize video frames / keep the first ``num_frames`` (pad by repeating the last)
    shuffle:     shuffle shard order and examples in a buffer of ``shuffle_buffer`` (seeded by seed + epoch;
                 call ``set_epoch``); off by default so evaluation order is fixed
    decode:      False yields raw :class:`Example` objects (bytes), e.g. for tokenisation
    rank / world_size: override torch.distributed (tests, custom launchers)
    """

    def __init__(
        self,
        source: str | os.PathLike | Sequence[str | os.PathLike],
        split: str | None = "train",
        *,
        root: str | os.PathLike | None = None,
        image_size: int | tuple[int, int] | None = None,
        sample_rate: int | None = None,
        video_size: int | tuple[int, int] | None = None,
        num_frames: int | None = None,
        shuffle: bool = False,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        decode: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        self.units = resolve_units(source, split, root)
        self.split = split
        self.image_size = image_size
        self.sample_rate = sample_rate
        self.video_size = video_size
        self.num_frames = num_frames
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.decode = decode
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skipped = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _iter_unit(self, unit: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
        if unit.suffix == ".jsonl":
            yield from iter_manifest(unit, self.split)
        else:
            yield from iter_shard(unit)

    def _assignment(self) -> tuple[list[Path], int, int]:
        """(units this slot reads, stride, offset) for the current rank and worker."""
        rank, world = _dist_info(self.rank, self.world_size)
        info = get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info is not None else (0, 1)
        slots, slot = world * nworkers, rank * nworkers + wid
        units = list(self.units)
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(units)
        if len(units) >= slots:
            return units[slot::slots], 1, 0
        return units, slots, slot

    def _raw(self) -> Iterator[tuple[Path, str, dict[str, bytes]]]:
        units, stride, offset = self._assignment()
        i = 0
        for unit in units:
            for key, files in self._iter_unit(unit):
                if stride > 1:
                    i += 1
                    if (i - 1) % stride != offset:
                        continue
                yield unit, key, files

    def __iter__(self) -> Iterator[dict[str, Any] | Example]:
        skipped_before = self.skipped
        stream = self._raw()
        if self.shuffle and self.shuffle_buffer > 1:
            stream = _shuffled(stream, self.shuffle_buffer, random.Random(self.seed * 7919 + self.epoch + 1))
        for unit, key, files in stream:
            try:
                yield self._decode(key, files, unit)
            except ValueError as e:
                self.skipped += 1
                warnings.warn(f"ShardDataset: skipping example {key!r} in {unit}: {e}", RuntimeWarning,
                              stacklevel=2)
        n = self.skipped - skipped_before
        if n:
            info = get_worker_info()
            where = f" (worker {info.id})" if info is not None else ""
            log.warning("ShardDataset: skipped %d corrupt example(s) in split %s%s", n, self.split, where)

    def _decode(self, key: str, files: dict[str, bytes], unit: Path) -> dict[str, Any] | Example:
        name = f"{unit.name}:{key}"
        try:
            example = example_from_files(key, files)
        except (ValueError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{name}: bad meta JSON ({e})") from e
        if not self.decode:
            return example
        out: dict[str, Any] = {"key": key, "meta": example.meta}
        meta = example.meta
        out["caption"] = str(meta.get("caption") or meta.get("transcript") or "")
        if "label" in meta:
            out["label"] = meta["label"]
        for ext, data in example.files.items():
            ext = ext.lower()
            if ext in IMAGE_EXTS:
                out["image"] = decode_image(data, self.image_size, name=name)
            elif ext in AUDIO_EXTS:
                out["audio"], out["sample_rate"] = decode_audio(data, self.sample_rate, name=name)
            elif ext in VIDEO_EXTS:
                out["video"] = decode_video(data, self.video_size, self.num_frames, name=name)
            elif ext in TEXT_EXTS:
                out["text"] = decode_text(data, name=name)
        return out

    def count(self) -> int:
        """Number of examples in this split (all ranks), reading tar headers or the manifest."""
        return sum(1 for unit in self.units for _ in self._iter_unit(unit))


def _shuffled(stream: Iterator, size: int, rng: random.Random) -> Iterator:
    buf: list = []
    for item in stream:
        buf.append(item)
        if len(buf) >= size:
            j = rng.randrange(len(buf))
            buf[j], buf[-1] = buf[-1], buf[j]
            yield buf.pop()
    rng.shuffle(buf)
    yield from buf


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch decoded items: images (B, 3, H, W), videos (B, T, 3, H, W) stacked; audio right-padded with zeros
    to (B, 1, T_max) plus ``audio_lengths`` (B,); integer labels and sample rates as (B,) long tensors;
    strings, metas, keys and anything missing from some items as lists (None where missing)."""
    out: dict[str, Any] = {}
    fields = list(dict.fromkeys(f for b in batch for f in b))
    for field in fields:
        values = [b.get(field) for b in batch]
        complete = all(v is not None for v in values)
        if field == "audio" and complete:
            lengths = torch.tensor([v.shape[-1] for v in values], dtype=torch.long)
            padded = torch.zeros(len(values), 1, int(lengths.max()))
            for i, v in enumerate(values):
                padded[i, :, : v.shape[-1]] = v
            out["audio"], out["audio_lengths"] = padded, lengths
        elif complete and isinstance(values[0], torch.Tensor) and all(v.shape == values[0].shape for v in values):
            out[field] = torch.stack(values)
        elif complete and field in ("label", "sample_rate") and all(
                isinstance(v, int) and not isinstance(v, bool) for v in values):
            out[field] = torch.tensor(values, dtype=torch.long)
        else:
            out[field] = values
    return out


def load_split(source: str | os.PathLike | Sequence[str | os.PathLike], split: str | None = "train",
               **kwargs: Any) -> dict[str, Any]:
    """A whole split decoded and collated in memory (small datasets, evaluation): e.g.
    ``load_split("digits", "test", image_size=32)["image"]`` is (N, 3, 32, 32) and ``["label"]`` is (N,).
    ``kwargs`` go to :class:`ShardDataset` (root, image_size, sample_rate, ...); corrupt examples are skipped."""
    items = list(ShardDataset(source, split, **kwargs))
    if not items:
        raise ValueError(f"{source!r} split {split!r} holds no decodable examples")
    return collate(items)
