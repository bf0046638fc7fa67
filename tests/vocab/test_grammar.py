"""The incremental grammar: random walks it allows always decode; it forces the requested image shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vocab_helpers import make_vocab

from omnitok.vocab import GrammarState, Image, Text, VocabularyError


def _sample(g, rng: np.random.Generator) -> int:
    ranges = g.allowed_ranges()
    sizes = np.array([hi - lo for lo, hi in ranges], dtype=float)
    r = ranges[int(rng.choice(len(ranges), p=sizes / sizes.sum()))]
    return int(rng.integers(r[0], r[1]))


@pytest.mark.parametrize("config", [("delay", 1, 4), ("flatten", 2, 3)])
def test_random_walks_decode_strictly(config) -> None:
    v = make_vocab(*config)
    rng = np.random.default_rng(0)
    for _ in range(200):
        g = v.grammar()
        ids: list[int] = []
        while len(ids) < 300 and not g.finished:  # until EOS or 300 ids
            i = _sample(g, rng)
            mask = g.allowed_mask()
            assert mask[i] and int(mask.sum()) == sum(hi - lo for lo, hi in g.allowed_ranges())
            g.step(i)
            ids.append(i)
        if g.complete:
            v.decode(ids)  # never raises
        else:
            with pytest.raises(VocabularyError):
                v.decode(ids)


def test_grammar_forces_the_image_shape() -> None:
    v = make_vocab("delay", 2, 4)
    rng = np.random.default_rng(1)
    g = v.grammar().step_many([v.bos_id, v.begin_id("image"), v.height_id(3), v.width_id(5)])
    ids = [v.bos_id, v.begin_id("image"), v.height_id(3), v.width_id(5)]
    while g.modality == "image":
        i = _sample(g, rng)
        g.step(i)
        ids.append(i)
    doc = v.decode(ids)
    assert isinstance(doc.segments[0], Image) and doc.segments[0].codes.shape == (3, 5, 2)
    # level 0 and level 1 alternate inside a row
    lo1, hi1 = v.id_range("image", 1)
    assert all(lo1 <= i < hi1 for i in ids[5:15:2])


def test_step_rejects_with_position_and_copy_is_independent() -> None:
    v = make_vocab()
    g = v.grammar().step(v.bos_id).step(v.begin_id("text"))
    h = g.copy()
    with pytest.raises(VocabularyError, match="position 2"):
        g.step(v.begin_id("image"))
    h.step(v.end_id("text"))
    assert h.complete and not g.complete
    assert g.allowed_mask().dtype == torch.bool and g.allowed_mask().shape == (v.size,)
    both = GrammarState.batch_mask([g, h])
    assert both.shape == (2, v.size) and torch.equal(both[1], h.allowed_mask())


def test_encode_prompt_feeds_the_grammar() -> None:
    v = make_vocab()
    cond = [Text(codes=torch.tensor([3, 4]))]
    p = v.encode_prompt(cond, "image", (2, 3))
    assert p[-3:].tolist() == [v.begin_id("image"), v.height_id(2), v.width_id(3)]
    g = v.grammar().step_many(p.tolist())
    assert g.modality == "image" and not g.complete
    u = v.encode_prompt(cond, "image", (2, 3), uncond=True)
    assert u[:2].tolist() == [v.bos_id, v.uncond_id] and len(u) == 5
    assert v.encode_prompt(cond, "audio")[-1] == v.begin_id("audio")
    with pytest.raises(VocabularyError, match="grid"):
        v.encode_prompt(cond, "video", (2, 3))
