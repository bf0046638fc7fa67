"""A complete vocabulary over the debug codecs (:mod:`omnitok.codecs.debug`), for tests and smoke runs: the
vocabulary, token shards, the LM and generation run end to end in seconds without trained codecs."""

from __future__ import annotations

from omnitok.codecs.debug import debug_codecs
from omnitok.vocab.vocabulary import Vocabulary

__all__ = ["debug_vocabulary"]


def debug_vocabulary(
    audio_pattern: str = "delay",
    image_levels: int = 1,
    audio_levels: int = 4,
    max_height: int = 8,
    max_width: int = 8,
    max_frames: int = 4,
    with_mask: bool = False,
) -> Vocabulary:
    """A complete vocabulary over the debug codecs (text BPE, 4x4-patch image/video, 80-sample audio frames);
    ``with_mask`` adds ``<|mask|>``."""
    return Vocabulary.build(
        debug_codecs(image_levels=image_levels, audio_levels=audio_levels),
        audio_pattern=audio_pattern,
        max_height=max_height,
        max_width=max_width,
        max_frames=max_frames,
        with_mask=with_mask,
    )
