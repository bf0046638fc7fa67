"""Shared helpers for the generation tests: a cached debug vocabulary and tiny random transformers."""

from __future__ import annotations

import functools

import torch

from omnitok.data.debug import debug_vocabulary
from omnitok.model.config import ModelConfig
from omnitok.model.transformer import Transformer
from omnitok.vocab import Vocabulary

GRIDS = {"image": (3, 4), "video": (2, 2, 3), "audio": (5,), "text": None}


@functools.cache
def make_vocab(audio_pattern: str = "delay", image_levels: int = 1) -> Vocabulary:
    return debug_vocabulary(audio_pattern=audio_pattern, image_levels=image_levels)


def make_model(vocab: Vocabulary, seed: int = 0, init_std: float = 0.5, **kw) -> Transformer:
    """A 2-layer, 32-wide model; a large init_std gives peaked (non-uniform) distributions."""
    torch.manual_seed(seed)
    base = dict(vocab_size=vocab.size, n_layer=2, dim=32, n_head=4, n_kv_head=2, ffn_multiple_of=16,
                max_seq_len=256, qk_norm=True, init_std=init_std)
    return Transformer(ModelConfig(**{**base, **kw})).eval()
