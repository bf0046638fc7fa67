"""Paired examples held in memory for contrastive alignment: (image or speech clip, caption) and a class label.

    pairs = load_pairs("digits", "train", "image", image_size=32)              # MNIST digits + captions
    pairs = load_pairs("speech", "test", "audio", sample_rate=16000, kinds=["digits"])
    media, lengths = pairs.batch(torch.tensor([0, 5, 9]))                      # (3, 3, 32, 32) / (3, T) + (3,)

Images are stacked float32 (N, 3, H, W) in [-1, 1]. Audio clips are kept as one flat int16 buffer with offsets
(the shards store 16-bit PCM, so nothing is lost) and padded per batch. ``labels`` are the ids of each pair's
class: the dataset's integer ``label`` (digits), or, with ``label="caption"``, one id per distinct caption (emoji
names, spoken digit strings), so pairs that say the same thing share an id.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from omnitok.data.dataset import ShardDataset
from omnitok.io.audio import decode_audio
from omnitok.io.image import decode_image

__all__ = ["PairSet", "load_pairs"]

AUDIO_EXTS = ("flac", "wav", "ogg")
IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")


@dataclass
class PairSet:
    """``N`` pairs of one dataset split: media, captions, class ids (and the stored meta)."""

    name: str
    tower: str  # image | audio
    captions: list[str]
    labels: Tensor  # (N,) long
    images: Tensor | None = None  # (N, 3, H, W) float32 in [-1, 1]
    audio: np.ndarray | None = None  # flat int16 PCM of every clip, one after the other
    offsets: np.ndarray | None = None  # (N + 1,) int64: clip i is audio[offsets[i]:offsets[i + 1]]
    sample_rate: int | None = None
    meta: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.captions)

    def batch(self, idx: Tensor, max_samples: int | None = None) -> tuple[Tensor, Tensor | None]:
        """Rows ``idx`` -> (images (B, 3, H, W), None) or (waveforms (B, T) float32 zero padded, lengths (B,))."""
        if self.tower == "image":
            return self.images[idx], None
        starts, ends = self.offsets[idx.numpy()], self.offsets[idx.numpy() + 1]
        if max_samples is not None:
            ends = np.minimum(ends, starts + max_samples)
        lengths = torch.from_numpy(np.maximum(ends - starts, 1))
        wave = torch.zeros(len(idx), int(lengths.max()))
        for row, (s, e) in enumerate(zip(starts, ends)):
            wave[row, : e - s] = torch.from_numpy(self.audio[s:e].astype(np.float32) / 32768.0)
        return wave, lengths

    def clip(self, i: int) -> Tensor:
        """Clip ``i`` as float32 (T,) in [-1, 1]."""
        return torch.from_numpy(self.audio[self.offsets[i]:self.offsets[i + 1]].astype(np.float32) / 32768.0)


def load_pairs(dataset: str | os.PathLike, split: str, tower: str, *, image_size: int | None = None,
               sample_rate: int | None = None, kinds: Sequence[str] | None = None, label: str = "caption",
               root: str | os.PathLike | None = None, limit: int | None = None,
               label_ids: dict[str, int] | None = None, progress: bool = True) -> PairSet:
    """Read a split of a built dataset (or a folder / manifest) into a :class:`PairSet`.

    tower:   ``image`` or ``audio``: which stored file each pair takes.
    kinds:   keep only examples whose meta ``kind`` is one of these (speech: ``digits``, ``emoji``, ``sentence``).
    label:   ``label`` (the meta's integer label) or ``caption`` (one id per distinct caption).
    label_ids: caption -> id, shared between calls (new captions get new ids); a fresh dict when None.
    """
    if tower not in ("image", "audio"):
        raise ValueError(f"tower must be image or audio, got {tower!r}")
    if label not in ("label", "caption"):
        raise ValueError(f"label must be 'label' or 'caption', got {label!r}")
    label_ids = {} if label_ids is None else label_ids
    exts = IMAGE_EXTS if tower == "image" else AUDIO_EXTS
    captions: list[str] = []
    labels: list[int] = []
    metas: list[dict[str, Any]] = []
    images: list[Tensor] = []
    clips: list[np.ndarray] = []
    rate = None
    ds = ShardDataset(dataset, split, root=root, decode=False, rank=0, world_size=1)
    for ex in tqdm(ds, desc=f"load {dataset}/{split}", unit="ex", disable=not progress, leave=False):
        if limit is not None and len(captions) >= limit:
            break
        if kinds is not None and ex.meta.get("kind") not in kinds:
            continue
        ext = next((e for e in exts if e in ex.files), None)
        caption = str(ex.meta.get("caption") or ex.meta.get("transcript") or "")
        if ext is None or not caption:
            continue
        if tower == "image":
            images.append(decode_image(ex.files[ext], image_size, name=ex.key))
        else:
            wave, rate = decode_audio(ex.files[ext], sample_rate, name=ex.key)  # (1, T)
            clips.append(np.clip(np.round(wave[0].numpy() * 32768.0), -32768, 32767).astype(np.int16))
        captions.append(caption)
        if label == "label":
            if "label" not in ex.meta:
                raise ValueError(f"{dataset}: example {ex.key} has no 'label' in its meta (use label='caption')")
            labels.append(int(ex.meta["label"]))
        else:
            labels.append(label_ids.setdefault(caption, len(label_ids)))
        metas.append(ex.meta)
    if not captions:
        raise ValueError(f"{dataset} split {split!r} holds no {tower} pairs" + (f" of kinds {list(kinds)}"
                                                                                 if kinds else ""))
    out = PairSet(str(dataset), tower, captions, torch.tensor(labels, dtype=torch.long), meta=metas)
    if tower == "image":
        out.images = torch.stack(images)
    else:
        out.audio = np.concatenate(clips)
        out.offsets = np.concatenate([[0], np.cumsum([len(c) for c in clips])]).astype(np.int64)
        out.sample_rate = rate
    return out
