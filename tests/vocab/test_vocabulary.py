"""Vocabulary: layout, exact round trips over 10,000 random documents, strict parsing, folders and hashes."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from vocab_helpers import make_vocab, random_doc

from omnitok.codecs.debug import DebugImageCodec, debug_text_codec
from omnitok.vocab import (
    MODALITY_IDS,
    Audio,
    Document,
    Image,
    Text,
    Uncond,
    Video,
    Vocabulary,
    VocabularyError,
)

CONFIGS = [("delay", 1, 4), ("flatten", 2, 3), ("delay", 2, 1)]


def test_layout_is_disjoint_and_recorded() -> None:
    v = make_vocab()
    sp = v.specials
    ranges = sorted((e.offset, e.stop) for e in v.entries.values())
    assert ranges[0][0] == sp.size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert v.size == ranges[-1][1]
    assert len(set(sp.names())) == sp.size
    names = [v.token_name(i) for i in range(v.size)]
    assert names[v.bos_id] == "<|bos|>" and names[v.height_id(8)] == "<|h=8|>"
    assert names[v.id_range("audio", 1)[0]] == "audio:L1:0"
    d = v.to_dict()
    assert set(d["codecs"]) == {"text", "image", "audio", "video"}
    assert all(len(e["weights_sha256"]) == 64 for e in d["codecs"].values())


def test_round_trip_10000_random_documents() -> None:
    """10,000 seeded random documents over three layouts: decode(encode(doc)) == doc and back to the same ids."""
    rng = np.random.default_rng(0)
    vocabs = [make_vocab(*c) for c in CONFIGS]
    t0 = time.perf_counter()
    n_tokens = 0
    for i in range(10_000):
        v = vocabs[i % len(vocabs)]
        doc = random_doc(rng, v)
        ids = v.encode(doc)
        back = v.decode(ids)
        assert back.same_codes(doc), f"document {i} did not round-trip"
        assert torch.equal(v.encode(back), ids)
        n_tokens += len(ids)
        if i % 10 == 0:  # the incremental grammar accepts every id of a well-formed document
            g = v.grammar()
            g.step_many(ids.tolist())
            assert g.complete
    assert n_tokens > 100_000
    assert time.perf_counter() - t0 < 40


@st.composite
def documents(draw, vocab: Vocabulary):
    e = vocab.entries
    seg_kinds = draw(st.lists(st.sampled_from(["text", "image", "audio", "video", "uncond"]), max_size=4))
    segs = []
    for kind in seg_kinds:
        if kind == "text":
            segs.append(Text(codes=torch.tensor(draw(st.lists(st.integers(0, e["text"].codebook_size - 1), max_size=10)),
                                                dtype=torch.long)))
        elif kind == "image":
            h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
            seed = draw(st.integers(0, 2**31))
            codes = np.random.default_rng(seed).integers(0, 64, (h, w, e["image"].num_codebooks))
            segs.append(Image(codes=torch.from_numpy(codes)))
        elif kind == "audio":
            T = draw(st.integers(1, 10))
            seed = draw(st.integers(0, 2**31))
            segs.append(Audio(codes=torch.from_numpy(np.random.default_rng(seed).integers(0, 32, (T, e["audio"].num_codebooks)))))
        elif kind == "video":
            t, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
            seed = draw(st.integers(0, 2**31))
            segs.append(Video(codes=torch.from_numpy(np.random.default_rng(seed).integers(0, 48, (t, h, w)))))
        else:
            segs.append(Uncond())
    return Document(segs, bos=draw(st.booleans()), eos=draw(st.booleans()))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), config=st.sampled_from(CONFIGS))
def test_round_trip_hypothesis(data, config) -> None:
    v = make_vocab(*config)
    doc = data.draw(documents(v))
    ids = v.encode(doc)
    back = v.decode(ids)
    assert back.same_codes(doc)
    mod = v.modality_of(ids)
    assert mod.dtype == torch.uint8 and mod.shape == ids.shape
    for seg, (a, b) in zip(doc.segments, v.encode_with_spans(doc)[1]):
        if not isinstance(seg, Uncond):
            body = mod[a:b]
            # structural tokens are special, every code id has its segment's modality
            assert set(body.tolist()) <= {0, MODALITY_IDS[seg.modality]}
            n_codes = seg.codes.numel()
            assert int((body == MODALITY_IDS[seg.modality]).sum()) == n_codes


def _grammar_verdict(v: Vocabulary, ids: list[int]) -> int | None:
    """Position the incremental grammar rejects (len(ids) when it stops in an incomplete state), else None."""
    g = v.grammar()
    for p, i in enumerate(ids):
        if not g.is_allowed(i):
            return p
        g.step(i)
    return None if g.complete else len(ids)


def _check_decode_agrees(v: Vocabulary, ids: list[int]) -> None:
    verdict = _grammar_verdict(v, ids)
    try:
        v.decode(ids)
        ok, pos = True, None
    except VocabularyError as e:
        ok, pos = False, e.position
    assert ok == (verdict is None), (ids, verdict)
    if not ok:
        assert pos is not None and 0 <= pos <= len(ids)
    partial = v.decode(ids, errors="partial")
    assert (len(partial.problems) == 0) == ok


def test_fuzz_decode_random_and_mutated_sequences() -> None:
    """Only VocabularyError, never another exception; strict decode agrees with the incremental grammar."""
    rng = np.random.default_rng(1)
    for cfg in CONFIGS:
        v = make_vocab(*cfg)
        special = v.specials.size
        for _ in range(1500):
            n = int(rng.integers(0, 40))
            # half structural ids (so segments actually start), half codec ids, a few out of range
            ids = np.where(rng.random(n) < 0.5, rng.integers(0, special, n), rng.integers(special, v.size, n))
            ids = np.where(rng.random(n) < 0.03, rng.integers(-3, v.size + 3, n), ids)
            _check_decode_agrees(v, ids.tolist())
        for _ in range(1500):  # mutate a valid encoding: replace, delete or insert one id
            ids = v.encode(random_doc(rng, v)).tolist()
            op = int(rng.integers(0, 3))
            p = int(rng.integers(0, len(ids) + 1))
            new = int(rng.integers(-1, v.size + 1))
            if op == 0 and p < len(ids):
                ids[p] = new
            elif op == 1 and p < len(ids):
                del ids[p]
            else:
                ids.insert(p, new)
            _check_decode_agrees(v, ids)


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.integers(-5, 1200), max_size=60))
def test_fuzz_decode_hypothesis(ids: list[int]) -> None:
    _check_decode_agrees(make_vocab(), ids)


def test_decode_long_garbage_is_fast() -> None:
    v = make_vocab()
    rng = np.random.default_rng(2)
    ids = rng.integers(0, v.size, 200_000)
    ids[::50] = v.begin_id("text")
    ids[7::97] = v.begin_id("image")
    t0 = time.perf_counter()
    doc = v.decode(ids, errors="partial")
    assert time.perf_counter() - t0 < 10
    assert doc.problems
    with pytest.raises(VocabularyError):
        v.decode(ids)


def test_strict_errors_name_the_position() -> None:
    v = make_vocab()
    img = Image(codes=torch.zeros(2, 3, 1, dtype=torch.long))
    ids = v.encode(Document([Text(codes=torch.tensor([1, 2])), img])).tolist()
    # END without BEGIN
    with pytest.raises(VocabularyError, match="position 1") as ei:
        v.decode([v.bos_id, v.end_id("image"), v.eos_id])
    assert ei.value.position == 1
    # a row count that disagrees with the size tokens: drop the last row (3 codes + EOR)
    start = ids.index(v.begin_id("image"))
    short = ids[: start + 3 + 4] + ids[start + 3 + 8 :]
    with pytest.raises(VocabularyError, match="position") as ei:
        v.decode(short)
    assert ei.value.position == start + 3 + 4
    # a row longer than the width token says
    long_row = ids[: start + 6] + [v.id_range("image")[0]] + ids[start + 6 :]
    with pytest.raises(VocabularyError) as ei:
        v.decode(long_row)
    assert ei.value.position == start + 6
    # an id out of range
    with pytest.raises(VocabularyError, match="position 2"):
        v.decode([v.bos_id, v.begin_id("text"), v.size + 5, v.end_id("text")])
    with pytest.raises(VocabularyError):
        v.decode(torch.tensor([0.5, 1.0]))


def test_partial_keeps_well_formed_segments() -> None:
    v = make_vocab()
    good_text = Text(codes=torch.tensor([5, 6, 7]))
    good_img = Image(codes=torch.ones(2, 2, 1, dtype=torch.long))
    ids_text = v.encode(Document([good_text], bos=False, eos=False)).tolist()
    ids_img = v.encode(Document([good_img], bos=False, eos=False)).tolist()
    broken_img = ids_img[:-3] + ids_img[-1:]  # last row cut short
    seq = [v.bos_id] + ids_text + [v.end_id("audio")] + broken_img + ids_img + [v.eos_id]
    doc = v.decode(seq, errors="partial")
    assert [type(s).__name__ for s in doc.segments] == ["Text", "Image"]
    assert doc.segments[0].codes.tolist() == [5, 6, 7]
    assert len(doc.problems) == 2
    assert [p.position for p in doc.problems] == [1 + len(ids_text), 2 + len(ids_text) + len(broken_img) - 1]
    assert doc.eos


def test_encode_rejects_bad_codes() -> None:
    v = make_vocab()
    with pytest.raises(VocabularyError, match=r"\[0, 64\)"):
        v.encode([Image(codes=torch.full((2, 2), 64))])
    with pytest.raises(VocabularyError, match="height 9"):
        v.encode([Image(codes=torch.zeros(9, 2, dtype=torch.long))])
    with pytest.raises(VocabularyError, match="n_q"):
        v.encode([Audio(codes=torch.zeros(3, 2, dtype=torch.long))])
    with pytest.raises(VocabularyError, match="needs data or codes"):
        v.encode([Image()])


def test_raw_segments_are_encoded_with_the_codecs() -> None:
    v = make_vocab()
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 16, 12, generator=g) * 2 - 1
    doc = Document([Text("handwritten digit seven"), Image(data=img), Audio(data=torch.rand(1, 400, generator=g)),
                    Video(data=torch.rand(3, 4, 8, 8, generator=g))])
    ids = v.encode(doc)
    back = v.decode(ids, data=True)
    assert back.segments[0].text == "handwritten digit seven"
    assert back.segments[1].codes.shape == (4, 3, 1) and back.segments[1].data.shape == (3, 16, 12)
    assert back.segments[2].codes.shape == (5, 4)
    assert back.segments[3].codes.shape == (2, 2, 2, 1) and back.segments[3].data.shape == (3, 4, 8, 8)
    assert back.same_codes(doc)


def test_save_load_and_hash_mismatch(tmp_path) -> None:
    v = make_vocab()
    v.save(tmp_path / "vocab")
    info = json.loads((tmp_path / "vocab" / "vocab.json").read_text())
    assert info["hash"] == v.hash and info["audio_pattern"] == "delay"
    loaded = Vocabulary.load(tmp_path / "vocab")
    assert loaded.hash == v.hash and set(loaded.codecs) == {"text", "image", "audio", "video"}
    doc = Document([Text("spoken digit three"), Image(data=torch.zeros(3, 8, 8))])
    assert torch.equal(loaded.encode(doc), v.encode(doc))
    layout_only = Vocabulary.load(tmp_path / "vocab", load_codecs=False)
    assert layout_only.codecs == {} and layout_only.size == v.size
    other = DebugImageCodec(patch=4, codebook_size=64, num_codebooks=1, seed=1)
    with pytest.raises(VocabularyError, match="hash"):
        Vocabulary.load(tmp_path / "vocab", codecs={"image": other})
    with pytest.warns(RuntimeWarning, match="hash"):
        Vocabulary.load(tmp_path / "vocab", codecs={"image": other}, accept_hash_mismatch=True)
    wrong_size = DebugImageCodec(patch=4, codebook_size=32)
    with pytest.raises(VocabularyError, match="codes"):
        Vocabulary.load(tmp_path / "vocab", codecs={"image": wrong_size}, accept_hash_mismatch=True)
    with pytest.raises(VocabularyError, match="not a vocabulary folder"):
        Vocabulary.load(tmp_path / "nowhere")


def test_build_from_codec_folders(tmp_path) -> None:
    text = debug_text_codec()
    text.save_pretrained(tmp_path / "bpe")
    DebugImageCodec().save_pretrained(tmp_path / "img")
    v = Vocabulary.build({"text": tmp_path / "bpe", "image": tmp_path / "img"})
    assert v.entries["text"].name == "bpe" and v.entries["image"].name == "img"
    v.save(tmp_path / "v")
    assert (tmp_path / "v" / "codecs" / "text" / "tokenizer.json").exists()
    assert Vocabulary.load(tmp_path / "v").hash == v.hash
    with pytest.raises(ValueError, match="not a modality"):
        Vocabulary.build({"smell": DebugImageCodec()})


def test_clips_of_any_length_go_to_encode_many_together(monkeypatch) -> None:
    v = make_vocab()
    audio = v.codecs["audio"]
    calls: list[int] = []

    def encode_many(clips):  # a codec that pads exactly (AudioCodec.encode_many) gets every clip in one call
        calls.append(len(clips))
        return [audio.encode(c[None])[0] for c in clips]

    monkeypatch.setattr(audio, "encode_many", encode_many, raising=False)
    g = torch.Generator().manual_seed(0)
    docs = [Document([Text("spoken digit"), Audio(data=torch.rand(1, n, generator=g) * 2 - 1)]) for n in (400, 160, 800)]
    v.fill_codes(docs, batch_size=2)
    assert calls == [3]
    for d in docs:
        assert torch.equal(d.segments[1].codes, audio.encode(d.segments[1].data[None])[0])
