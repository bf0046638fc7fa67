"""Shared helpers for the vocabulary tests: cached debug vocabularies and a cheap random-document generator."""

from __future__ import annotations

import functools

import numpy as np
import torch

from omnitok.data.debug import debug_vocabulary
from omnitok.vocab import Audio, Document, Image, Text, Uncond, Video, Vocabulary


@functools.cache
def make_vocab(audio_pattern: str = "delay", image_levels: int = 1, audio_levels: int = 4) -> Vocabulary:
    return debug_vocabulary(audio_pattern=audio_pattern, image_levels=image_levels, audio_levels=audio_levels)


def random_doc(rng: np.random.Generator, vocab: Vocabulary, max_segments: int = 4) -> Document:
    """A random code-level document (cheap: numpy draws only)."""
    e = vocab.entries
    segs = []
    for _ in range(int(rng.integers(0, max_segments + 1))):
        kind = int(rng.integers(0, 5))
        if kind == 0:
            segs.append(Text(codes=torch.from_numpy(rng.integers(0, e["text"].codebook_size, int(rng.integers(0, 12))))))
        elif kind == 1:
            h, w = (int(x) for x in rng.integers(1, 9, 2))
            shape = (h, w, e["image"].num_codebooks)
            segs.append(Image(codes=torch.from_numpy(rng.integers(0, e["image"].codebook_size, shape))))
        elif kind == 2:
            shape = (int(rng.integers(1, 9)), e["audio"].num_codebooks)
            segs.append(Audio(codes=torch.from_numpy(rng.integers(0, e["audio"].codebook_size, shape))))
        elif kind == 3:
            t, h, w = int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
            segs.append(Video(codes=torch.from_numpy(rng.integers(0, e["video"].codebook_size, (t, h, w, 1)))))
        else:
            segs.append(Uncond())
    return Document(segs, bos=bool(rng.random() < 0.9), eos=bool(rng.random() < 0.9))
