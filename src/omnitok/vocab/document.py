"""Interleaved documents: a list of segments ``Text | Image | Audio | Video | Uncond``.

A segment holds raw data (``text`` / ``data``) or codes, or both. ``Vocabulary.encode`` encodes raw segments
with the codecs and uses code segments as they are; ``Vocabulary.decode`` returns code segments (and raw data
too with ``data=True``). Code shapes (no batch dimension; a trailing ``n_q`` axis may be left out when the
codec has one codebook):

* ``Text.codes``   (L,)              BPE ids, 0 <= id < text codebook size
* ``Image.codes``  (h, w, n_q)       ``Image.data`` (3, H, W) float in [-1, 1]
* ``Audio.codes``  (T, n_q)          ``Audio.data`` (1, samples) float in [-1, 1]
* ``Video.codes``  (t, h, w, n_q)    ``Video.data`` one clip (3, frames, H, W), float in [-1, 1]: the layout every video
                                    codec takes and returns
* ``Uncond()``     the empty condition that replaces a dropped condition (classifier-free guidance)

A document made for a task is ``[condition segments..., target segment]``; ``TASKS`` numbers the tasks
(``task`` tensors of the packed batches use these ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from omnitok.vocab.errors import VocabularyError

__all__ = [
    "TASKS",
    "Audio",
    "Document",
    "Image",
    "Segment",
    "Text",
    "Uncond",
    "Video",
    "as_code_array",
    "segments_equal",
]

#: task name -> id (0 = padding / unknown). Conditions -> target, per task:
#: text: [Text]; caption2image: [Text, Image]; image2caption: [Image, Text]; transcript2speech: [Text, Audio];
#: speech2transcript: [Audio, Text]; caption2video: [Text, Video]; image2speech: [Image, Audio];
#: speech2image: [Audio, Image]; interleaved: any; image / speech / video: one segment, no condition;
#: masked_image: a document whose image target the mixture loader masked (MaskGIT training; never in shards);
#: video2caption: [Video, Text].
TASKS: dict[str, int] = {
    "none": 0,
    "text": 1,  # text-only (corpus documents, continuation)
    "caption2image": 2,
    "image2caption": 3,
    "transcript2speech": 4,
    "speech2transcript": 5,
    "caption2video": 6,
    "image2speech": 7,
    "speech2image": 8,
    "interleaved": 9,
    "image": 10,  # image-only
    "speech": 11,  # audio-only
    "video": 12,  # video-only
    "masked_image": 13,  # an image target masked by the mixture loader (``masked=``)
    "video2caption": 14,  # a clip -> its caption (digit and direction of motion)
}

#: number of code axes before n_q, per segment kind
_GRID_DIMS = {"text": 1, "image": 2, "audio": 1, "video": 3}


def as_code_array(codes: Any, grid_dims: int, name: str = "codes") -> np.ndarray:
    """Tensor / array / list -> int64 numpy array (*grid, n_q) (adds n_q=1 when left out)."""
    if isinstance(codes, Tensor):
        arr = codes.detach().cpu().numpy()
    else:
        arr = np.asarray(codes)
    if arr.size == 0 and arr.dtype == np.float64:  # np.asarray([]) is float
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise VocabularyError(f"{name}: expected integer codes, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.ndim == grid_dims:
        arr = arr[..., None]
    if arr.ndim != grid_dims + 1:
        raise VocabularyError(f"{name}: expected {grid_dims} grid axes (+ optional n_q), got shape {arr.shape}")
    return arr


@dataclass(eq=False)
class Text:
    text: str | None = None
    codes: Tensor | None = None  # (L,) int64
    modality = "text"


@dataclass(eq=False)
class Image:
    data: Tensor | None = None  # (3, H, W) float in [-1, 1]
    codes: Tensor | None = None  # (h, w, n_q) int64
    modality = "image"


@dataclass(eq=False)
class Audio:
    data: Tensor | None = None  # (1, samples) float in [-1, 1]
    codes: Tensor | None = None  # (T, n_q) int64
    modality = "audio"


@dataclass(eq=False)
class Video:
    data: Tensor | None = None  # (3, frames, H, W) float in [-1, 1] (the codec's input layout)
    codes: Tensor | None = None  # (t, h, w, n_q) int64
    modality = "video"


@dataclass(eq=False)
class Uncond:
    """The empty condition (one ``<|uncond|>`` token)."""

    modality = "special"


Segment = Text | Image | Audio | Video | Uncond


@dataclass
class Document:
    """Segments between an optional BOS and an optional EOS.

    ``problems`` is filled by ``Vocabulary.decode(ids, errors="partial")``: one ``VocabularyError`` per
    malformed part that was skipped (each names its position); it is empty for a well-formed sequence.
    """

    segments: list[Segment] = field(default_factory=list)
    bos: bool = True
    eos: bool = True
    task: str | None = None
    problems: list[VocabularyError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.segments)

    def __iter__(self):
        return iter(self.segments)

    def __getitem__(self, i: int) -> Segment:
        return self.segments[i]

    def same_codes(self, other: Document) -> bool:
        """True when both documents have the same BOS/EOS flags and segments with equal codes."""
        return (
            self.bos == other.bos
            and self.eos == other.eos
            and len(self.segments) == len(other.segments)
            and all(segments_equal(a, b) for a, b in zip(self.segments, other.segments))
        )


def segments_equal(a: Segment, b: Segment) -> bool:
    """Same kind and equal codes (a missing n_q axis counts as n_q = 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Uncond):
        return True
    if a.codes is None or b.codes is None:
        return False
    dims = _GRID_DIMS[a.modality]
    x, y = as_code_array(a.codes, dims), as_code_array(b.codes, dims)
    return x.shape == y.shape and bool(np.array_equal(x, y))


def codes_tensor(arr: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.int64))
