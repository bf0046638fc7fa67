"""Special tokens at the start of the unified id space.

Layout (ids in this order, ``max_*`` set when the vocabulary is built)::

    0 <|pad|>  1 <|bos|>  2 <|eos|>  3 <|uncond|>  4 <|eor|> (end of row)  5 <|eof|> (end of frame)
    6 <|delay_pad|> (empty slot of the audio delay pattern)
    7.. <|begin_text|> <|end_text|> <|begin_image|> <|end_image|> <|begin_audio|> <|end_audio|>
        <|begin_video|> <|end_video|>
    then <|h=1|> .. <|h=max_height|>, <|w=1|> .. <|w=max_width|>, <|f=1|> .. <|f=max_frames|>
    then <|mask|> when the vocabulary is built with ``with_mask=True`` (a masked code of masked-image
    training and decoding, MaskGIT arXiv 2202.04200); appended last, so every other id keeps its place and
    vocabularies saved without it load unchanged

``<|uncond|>`` stands for a dropped condition (classifier-free guidance). ``<|eor|>`` closes every row of an
image or video frame, so images of any aspect ratio are one sequence (Emu3, https://arxiv.org/abs/2409.18869).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = ["BASE_SPECIALS", "MODALITIES", "MODALITY_IDS", "SpecialTokens"]

#: the modalities, in the order of their codec id ranges
MODALITIES: tuple[str, ...] = ("text", "image", "audio", "video")
#: modality type of a token (``Vocabulary.modality_of``); structural tokens are "special"
MODALITY_IDS: dict[str, int] = {"special": 0, "text": 1, "image": 2, "audio": 3, "video": 4}

BASE_SPECIALS: tuple[str, ...] = (
    "<|pad|>", "<|bos|>", "<|eos|>", "<|uncond|>", "<|eor|>", "<|eof|>", "<|delay_pad|>",
    *(f"<|{edge}_{m}|>" for m in MODALITIES for edge in ("begin", "end")),
)


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the special tokens for given size limits (all ids below ``size``)."""

    max_height: int = 64
    max_width: int = 64
    max_frames: int = 64
    with_mask: bool = False  # one more special id, <|mask|>, after the size tokens

    def __post_init__(self) -> None:
        for name in ("max_height", "max_width", "max_frames"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not isinstance(self.with_mask, bool):
            raise ValueError(f"with_mask must be a bool, got {self.with_mask!r}")

    # the fixed ids: their places in BASE_SPECIALS (class constants, the same for every size)
    pad: ClassVar[int] = BASE_SPECIALS.index("<|pad|>")
    bos: ClassVar[int] = BASE_SPECIALS.index("<|bos|>")
    eos: ClassVar[int] = BASE_SPECIALS.index("<|eos|>")
    uncond: ClassVar[int] = BASE_SPECIALS.index("<|uncond|>")
    eor: ClassVar[int] = BASE_SPECIALS.index("<|eor|>")
    eof: ClassVar[int] = BASE_SPECIALS.index("<|eof|>")
    delay_pad: ClassVar[int] = BASE_SPECIALS.index("<|delay_pad|>")

    def begin(self, modality: str) -> int:
        return len(BASE_SPECIALS) - 2 * len(MODALITIES) + 2 * MODALITIES.index(modality)

    def end(self, modality: str) -> int:
        return self.begin(modality) + 1

    @property
    def height_base(self) -> int:
        """id of <|h=1|>; <|h=n|> = height_base + n - 1."""
        return len(BASE_SPECIALS)

    @property
    def width_base(self) -> int:
        return self.height_base + self.max_height

    @property
    def frames_base(self) -> int:
        return self.width_base + self.max_width

    @property
    def mask(self) -> int | None:
        """id of <|mask|>, or None when the layout has none."""
        return self.frames_base + self.max_frames if self.with_mask else None

    @property
    def size(self) -> int:
        """Number of special ids (the first codec id)."""
        return self.frames_base + self.max_frames + int(self.with_mask)

    def names(self) -> list[str]:
        """Token strings of every special id, in id order."""
        out = list(BASE_SPECIALS)
        out += [f"<|h={i}|>" for i in range(1, self.max_height + 1)]
        out += [f"<|w={i}|>" for i in range(1, self.max_width + 1)]
        out += [f"<|f={i}|>" for i in range(1, self.max_frames + 1)]
        if self.with_mask:
            out.append("<|mask|>")
        return out
