"""Masked-image documents in the mixture: cosine share of masked codes, labels on them only, one bidirectional
segment over the image block, next-token documents unchanged beside them, exact resume."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from shard_helpers import write_shards

from omnitok.data.debug import debug_vocabulary
from omnitok.data.mixture import TASK_IDS, MixtureLoader, mask_image_target, mask_schedule
from omnitok.vocab import Document, Image, Text, Vocabulary


@functools.cache
def vocab() -> Vocabulary:
    return debug_vocabulary(with_mask=True)


def _write(out, task: str, n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)

    def docs():
        for _ in range(n):
            text = Text(codes=torch.from_numpy(rng.integers(0, 300, int(rng.integers(1, 8)))))
            img = Image(codes=torch.from_numpy(rng.integers(0, 64, (3, 4))))
            yield ([text, img] if task == "caption2image" else [img, text]), True

    return write_shards(out, vocab(), task, docs())


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    return {"c2i": _write(d / "c2i", "caption2image", 40, 0), "i2c": _write(d / "i2c", "image2caption", 40, 1)}


def _loader(shards, p: float = 0.5, **kw) -> MixtureLoader:
    return MixtureLoader({"c2i": (0.5, [shards["c2i"]]), "i2c": (0.5, [shards["i2c"]])}, seq_len=64, batch_size=4,
                         seed=0, masked={"c2i": p}, mask_id=vocab().mask_id, **kw)


def test_mask_image_target_on_one_document():
    v = vocab()
    table = v._modality_table
    doc = Document([Text(codes=torch.tensor([5, 6])), Image(codes=torch.arange(12).view(3, 4))])
    ids, spans = v.encode_with_spans(doc)
    ids = np.asarray(ids)
    inp, labels, (s0, s1) = mask_image_target(ids, spans[0][1], table, v.mask_id, np.random.default_rng(0))
    codes = np.flatnonzero(table[ids] == 2)
    assert (s0, s1) == (codes[0], codes[-1] + 2)  # codes and EORs, up to END_IMAGE
    assert ids[s1] == v.end_id("image") and np.all(ids[s0:s1][table[ids[s0:s1]] == 0] == v.specials.eor)
    masked = np.flatnonzero(inp == v.mask_id)
    assert len(masked) >= 1 and set(masked) <= set(codes)
    assert np.array_equal(np.flatnonzero(labels != -100), masked) and np.array_equal(labels[masked], ids[masked])
    assert np.array_equal(np.delete(inp, masked), np.delete(ids, masked))
    # an image that is the condition is never masked
    doc = Document([Image(codes=torch.arange(12).view(3, 4)), Text(codes=torch.tensor([5]))])
    cond_first, sp = v.encode_with_spans(doc)
    assert mask_image_target(np.asarray(cond_first), sp[0][1], table, v.mask_id, np.random.default_rng(0)) is None


def test_masked_share_follows_the_cosine_schedule():
    v = vocab()
    ids = np.asarray(v.encode(Document([Image(codes=torch.zeros(8, 8, dtype=torch.long))])))
    shares = [len(np.flatnonzero(mask_image_target(ids, 0, v._modality_table, v.mask_id,
                                                   np.random.default_rng(s))[0] == v.mask_id)) / 64
              for s in range(400)]
    # E[cos(pi/2 u)] = 2/pi for u ~ U(0, 1); ceil adds at most 1/64
    assert abs(np.mean(shares) - 2 / np.pi) < 0.05 and min(shares) >= 1 / 64
    assert mask_schedule(0.0) == 1.0 and abs(float(mask_schedule(1.0))) < 1e-12


def test_batches_mix_masked_and_next_token_documents_and_resume_exactly(shards):
    v = vocab()
    loader = _loader(shards)
    batches = [next(loader) for _ in range(6)]
    b = batches[0]
    assert set(b) == {"input_ids", "labels", "position_ids", "document_ids", "modality", "task", "segment_ids"}
    tasks = torch.cat([x["task"].flatten() for x in batches])
    assert (tasks == TASK_IDS["masked_image"]).any() and (tasks == TASK_IDS["caption2image"]).any()
    assert (tasks == TASK_IDS["image2caption"]).any()
    for x in batches:
        m = x["input_ids"] == v.mask_id
        seg = x["segment_ids"]
        masked_doc = x["task"] == TASK_IDS["masked_image"]
        assert torch.equal(x["labels"] != -100, m | (~masked_doc & (x["labels"] != -100)))
        assert (seg[m] >= 0).all() and (seg[~masked_doc] == -1).all()
        assert torch.equal(seg[seg >= 0], x["document_ids"][seg >= 0])
        assert (x["modality"][m] == 2).all()  # the label of a masked position is its image code
    state = loader.state_dict()
    nxt = next(loader)
    again = _loader(shards)
    again.load_state_dict(state)
    assert all(torch.equal(nxt[k], v2) for k, v2 in next(again).items())
    assert loader.stats["masked"] > 0


def test_masking_off_keeps_the_plain_stream_and_bad_options_are_refused(shards):
    plain = MixtureLoader({"c2i": (0.5, [shards["c2i"]]), "i2c": (0.5, [shards["i2c"]])}, seq_len=64, batch_size=4,
                          seed=0)
    off = _loader(shards, p=0.0)
    for _ in range(3):
        a, b = next(plain), next(off)
        assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="unknown sources"):
        MixtureLoader({"c2i": (1.0, [shards["c2i"]])}, 64, 2, masked={"nope": 0.5}, mask_id=vocab().mask_id)
    with pytest.raises(ValueError, match="mask_id"):
        MixtureLoader({"c2i": (1.0, [shards["c2i"]])}, 64, 2, masked={"c2i": 0.5})
