"""Codebook-aware embedding init: media code rows follow their codec latents; text and specials untouched."""

from __future__ import annotations

import pytest
import torch

from omnitok.codecs.builder import build_codec
from omnitok.codecs.debug import debug_text_codec
from omnitok.train.embed_init import code_latents, codebook_embedding_init
from omnitok.vocab import Vocabulary


def _image_codec(levels):
    return build_codec({"type": "image", "model": {"in_channels": 3, "channels": 4, "channel_mult": [1, 2],
                                                   "num_res_blocks": 1, "attention": False, "z_channels": 8},
                        "quantizer": {"name": "fsq", "levels": levels}})


def test_code_latents_of_fsq_and_levels() -> None:
    q = _image_codec([4, 4]).quantizer
    z = code_latents(q, 0)
    assert z.shape == (16, q.dim) and torch.allclose(z.mean(0), torch.zeros(q.dim), atol=1e-6)
    with pytest.raises(ValueError, match="level"):
        code_latents(q, 1)


def test_rows_follow_the_codec_and_the_rest_is_kept() -> None:
    vocab = Vocabulary.build({"text": debug_text_codec(), "image": _image_codec([8, 8])})
    torch.manual_seed(0)
    embed = torch.randn(len(vocab) + 3, 32) * 0.02
    before = embed.clone()
    rows = codebook_embedding_init(embed, vocab, std=0.02, seed=0)
    lo, hi = vocab.id_range("image")
    assert hi - lo == 64 and rows == {"image": 64}
    keep = torch.ones(len(embed), dtype=torch.bool)
    keep[lo:hi] = False
    assert torch.equal(embed[keep], before[keep])  # text, specials and spare rows untouched
    e = embed[lo:hi]
    assert abs(float(e.std()) - 0.02) < 2e-3
    # FSQ code k = (a, b) on an 8 x 8 grid (index = a + 8 b): neighbours start closer than far-apart codes
    cos = torch.nn.functional.normalize(e, dim=1) @ torch.nn.functional.normalize(e, dim=1).T
    near = cos[torch.arange(63), torch.arange(1, 64)][torch.arange(63) % 8 != 7].mean()
    assert near > 0.5 > float(cos[0, 63])
    again = torch.randn(len(vocab) + 3, 32) * 0.02
    codebook_embedding_init(again, vocab, std=0.02, seed=0)
    assert torch.equal(again[lo:hi], e)  # seeded
    with pytest.raises(ValueError, match="embed"):
        codebook_embedding_init(torch.zeros(3, 32), vocab, std=0.02)
