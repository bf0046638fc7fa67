"""The strict parser walks the one grammar: whole bodies checked at once agree with stepping id by id."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vocab_helpers import make_vocab, random_doc

from omnitok.vocab import Document, GrammarState, Image, Text, Video, VocabularyError


def _state(g: GrammarState) -> tuple:
    return tuple(getattr(g, k) if k != "sizes" else tuple(g.sizes) for k in GrammarState.__slots__ if k not in ("_t", "v"))


@pytest.mark.parametrize("config", [("delay", 1, 4), ("flatten", 2, 3)])
def test_run_bounds_and_skip_agree_with_stepping(config) -> None:
    v = make_vocab(*config)
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(150):
        ids = v.encode(random_doc(rng, v)).numpy()
        g = v.grammar()
        for p, i in enumerate(ids):
            bounds = g.run_bounds(len(ids) - p)
            if bounds is not None and len(bounds[0]):
                lo, hi = bounds
                run, end_text = (int(lo[0]), int(hi[0])), (v.end_id("text"), v.end_id("text") + 1)
                assert set(g.allowed_ranges()) in ({run}, {run, end_text})  # the one range of the next id (or END)
                k = int(rng.integers(1, len(lo) + 1))
                body = ids[p : p + k]
                if len(body) == k and ((body >= lo[:k]) & (body < hi[:k])).all():
                    stepped = g.copy().step_many(body)
                    assert _state(g.copy().skip(k)) == _state(stepped), (p, k)
                    checked += 1
            g.step(int(i))
    assert checked > 500


def test_a_grid_body_is_checked_at_once(monkeypatch) -> None:
    v = make_vocab("delay", 2, 4)
    steps = []
    real = GrammarState.step
    monkeypatch.setattr(GrammarState, "step", lambda self, i: (steps.append(i), real(self, i))[1])
    img = Image(codes=torch.randint(0, v.entries["image"].codebook_size, (8, 8, 2)))
    vid = Video(codes=torch.randint(0, v.entries["video"].codebook_size, (4, 8, 8, 1)))
    ids = v.encode(Document([Text(codes=torch.arange(50)), img, vid]))
    doc = v.decode(ids)
    assert doc.segments[1].codes.equal(img.codes) and doc.segments[2].codes.equal(vid.codes)
    # BOS, and per segment BEGIN, its size tokens and END, EOS: 1 + 2 + 4 + 5 + 1 ids stepped of the 450+
    assert len(steps) == 13 and len(ids) > 450


def test_errors_say_what_was_expected() -> None:
    v = make_vocab()
    ids = v.encode(Document([Image(codes=torch.zeros(2, 3, 1, dtype=torch.long))])).tolist()
    with pytest.raises(VocabularyError, match=r"position 11: expected EOR closing row 2 of 2 \(3 codes a row\)"):
        v.decode(ids[:11] + [v.id_range("image")[0]] + ids[11:])
    with pytest.raises(VocabularyError, match="expected END_IMAGE"):
        v.decode(ids[:-2] + [v.eos_id])
    with pytest.raises(VocabularyError, match="position 12: the sequence ends inside an unfinished image segment"):
        v.decode(ids[:12])
    with pytest.raises(VocabularyError, match="only padding may follow EOS"):
        v.decode(ids + [v.bos_id])
    assert v.decode(ids + [v.pad_id] * 3).eos
