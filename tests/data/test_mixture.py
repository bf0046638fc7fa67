"""Mixture + packing loader: the packed-batch contract, determinism, exact resume, ratios, CFG dropout."""

from __future__ import annotations

import functools
import json
from collections import Counter

import numpy as np
import pytest
import torch
from shard_helpers import write_shards

from omnitok.data.debug import debug_vocabulary
from omnitok.data.mixture import MixtureLoader
from omnitok.vocab import Image, Text, Uncond, Vocabulary


@functools.cache
def vocab() -> Vocabulary:
    return debug_vocabulary()


def _write(out, task: str, n: int, seed: int, vhash: str | None = None) -> str:
    rng = np.random.default_rng(seed)

    def docs():
        for _ in range(n):
            text = Text(codes=torch.from_numpy(rng.integers(0, 300, int(rng.integers(1, 12)))))
            if task == "text":
                yield [text], False
            else:
                h, w = (int(x) for x in rng.integers(1, 5, 2))
                yield [text, Image(codes=torch.from_numpy(rng.integers(0, 64, (h, w))))], True

    return write_shards(out, vocab(), task, docs(), vhash)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    return {"text": _write(d / "text", "text", 120, 0), "pairs": _write(d / "pairs", "caption2image", 80, 1)}


def _loader(shards, **kw) -> MixtureLoader:
    kw.setdefault("seed", 0)
    return MixtureLoader({"text": (0.5, [shards["text"]]), "pairs": (0.5, [shards["pairs"]])},
                         seq_len=kw.pop("seq_len", 96), batch_size=kw.pop("batch_size", 4), **kw)


def test_packed_batch_contract(shards) -> None:
    v = vocab()
    loader = _loader(shards)
    for _ in range(5):
        b = next(loader)
        assert set(b) == {"input_ids", "labels", "position_ids", "document_ids", "modality", "task"}
        for k in ("input_ids", "labels", "position_ids", "document_ids"):
            assert b[k].dtype == torch.long and b[k].shape == (4, 96)
        assert b["modality"].dtype == torch.uint8 and b["task"].dtype == torch.uint8
        for r in range(4):
            ids, lab, pos, doc = (b[k][r].numpy() for k in ("input_ids", "labels", "position_ids", "document_ids"))
            for d in np.unique(doc[doc >= 0]):
                idx = np.flatnonzero(doc == d)
                assert np.array_equal(idx, np.arange(idx[0], idx[-1] + 1))  # contiguous
                assert np.array_equal(pos[idx], np.arange(len(idx)))  # positions restart
                assert ids[idx[0]] == v.bos_id and ids[idx[-1]] == v.eos_id
                assert np.array_equal(lab[idx[:-1]], ids[idx[1:]]) and lab[idx[-1]] == -100
                v.decode(ids[idx])  # every packed document is well formed
                assert len(set(b["task"][r, idx].tolist())) == 1
            pad = doc == -1
            assert (ids[pad] == v.pad_id).all() and (lab[pad] == -100).all() and (pos[pad] == 0).all()
        expect = v.modality_of(torch.where(b["labels"] >= 0, b["labels"], 0))
        expect[b["labels"] < 0] = 0
        assert torch.equal(b["modality"], expect)
        assert set(b["modality"].unique().tolist()) <= {0, 1, 2}
    assert loader.stats["padding"] < 0.5 * (loader.stats["tokens"] + loader.stats["padding"])


def test_deterministic_and_exact_resume(shards) -> None:
    a, b = _loader(shards, cfg_dropout=0.3), _loader(shards, cfg_dropout=0.3)
    first = [next(a) for _ in range(6)]
    assert all(torch.equal(x["input_ids"], next(b)["input_ids"]) for x in first)
    state = json.loads(json.dumps(a.state_dict()))
    expected = [next(a) for _ in range(8)]
    c = _loader(shards, cfg_dropout=0.3)
    c.load_state_dict(state)
    for e in expected:
        got = next(c)
        assert all(torch.equal(got[k], e[k]) for k in e)
    other = _loader(shards, seed=1)
    assert not torch.equal(next(other)["input_ids"], first[0]["input_ids"])
    with pytest.raises(ValueError, match="saved for"):
        _loader(shards, seed=5).load_state_dict(state)


def test_ratios_and_epoch_coverage(shards) -> None:
    loader = MixtureLoader({"text": (0.8, [shards["text"]]), "pairs": (0.2, [shards["pairs"]])},
                           seq_len=64, batch_size=8, seed=3, lookahead=1)
    for _ in range(60):
        next(loader)
    per = loader.stats["per_source"]
    frac = per["text"] / (per["text"] + per["pairs"])
    assert 0.72 < frac < 0.88
    # one source, one epoch: every document exactly once; two ranks: disjoint halves
    seen = []
    for rank in range(2):
        ld = MixtureLoader({"text": (1.0, [shards["text"]])}, seq_len=64, batch_size=1, rank=rank, world_size=2)
        docs = []
        while ld.stats["documents"] < 60:
            b = next(ld)
            for d in np.unique(b["document_ids"][0][b["document_ids"][0] >= 0]):
                docs.append(tuple(b["input_ids"][0][b["document_ids"][0] == d].tolist()))
        seen.append(Counter(docs[:60]))
    assert sum(seen[0].values()) + sum(seen[1].values()) == 120


def test_cfg_dropout_and_condition_mask(shards) -> None:
    v = vocab()
    b = next(MixtureLoader({"pairs": (1.0, [shards["pairs"]])}, seq_len=96, batch_size=4, cfg_dropout=1.0))
    for r in range(4):
        doc = b["document_ids"][r]
        for d in doc[doc >= 0].unique():
            ids = b["input_ids"][r][doc == d]
            assert ids[1] == v.uncond_id  # BOS <|uncond|> <image> EOS
            segs = v.decode(ids).segments
            assert isinstance(segs[0], Uncond) and isinstance(segs[1], Image)
    b = next(MixtureLoader({"pairs": (1.0, [shards["pairs"]])}, seq_len=96, batch_size=4, loss_on_condition=False))
    lab, ids = b["labels"], b["input_ids"]
    text_lo, text_hi = v.id_range("text")
    # no loss on the caption: no label is a text id, and every image code is still a label
    assert not ((lab >= text_lo) & (lab < text_hi)).any()
    img_lo, img_hi = v.id_range("image")
    assert ((lab >= img_lo) & (lab < img_hi)).sum() == ((ids >= img_lo) & (ids < img_hi)).sum()


def test_mixed_vocabularies_are_refused(shards, tmp_path) -> None:
    other = _write(tmp_path / "other", "text", 5, 0, vhash="f" * 64)
    with pytest.raises(ValueError, match="different vocabularies"):
        MixtureLoader({"a": (1.0, [shards["text"]]), "b": (1.0, [other])}, seq_len=32, batch_size=1)
    with pytest.raises(ValueError, match="ratios"):
        MixtureLoader({"a": (0.0, [shards["text"]])}, seq_len=32, batch_size=1)
