"""The builder: counts, disjoint splits, card, resumption after a kill, rebuild rules."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pytest

from omnitok.data.build import build_dataset, shard_paths
from omnitok.data.shards import read_shard_keys
from omnitok.data.splits import split_of
from omnitok.data.types import Example
from omnitok.io.image import encode_png


class Killed(Exception):
    pass


def fake_source(n: int = 120, kill_after: int | None = None, calls: list | None = None) -> SimpleNamespace:
    """A source of n tiny random PNGs; raises Killed after ``kill_after`` yielded examples."""

    def iter_examples(ctx):
        for i in range(n):
            if kill_after is not None and i == kill_after:
                raise Killed
            key = f"fake-{i:04d}"
            if calls is not None and not ctx.is_done(key):
                calls.append(key)
            img = (ctx.rng(key).random((4, 4, 3)) * 255).astype(np.uint8)
            yield Example(key, {"png": encode_png(img)}, {"caption": f"item {i}", "label": i % 3})

    return SimpleNamespace(NAME="fake", CARD={"source": "test", "version": "1", "licence": "CC0",
                                              "description": "random"}, iter_examples=iter_examples)


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in shard_paths(folder)}


def test_counts_splits_card(tmp_path):
    card = build_dataset("fake", root=tmp_path, source=fake_source(), shard_size=16, progress=False)
    folder = tmp_path / "datasets" / "fake"
    keys = {s: [k for p in shard_paths(folder, s) for k in read_shard_keys(p)] for s in ("train", "val", "test")}
    assert sum(map(len, keys.values())) == 120 == card["total"]
    assert {s: len(k) for s, k in keys.items()} == card["counts"]
    assert not (set(keys["train"]) & set(keys["val"]) or set(keys["train"]) & set(keys["test"]))
    assert all(split_of(k) == s for s, ks in keys.items() for k in ks)
    on_disk = json.loads((folder / "card.json").read_text())
    assert on_disk["licence"] == "CC0" and on_disk["build"]["shard_size"] == 16
    for shard in on_disk["shards"]:
        assert hashlib.sha256((folder / shard["file"]).read_bytes()).hexdigest() == shard["sha256"]
        assert shard["count"] <= 16
    assert not list(folder.glob("*.tmp"))


def test_resume_after_kill_equals_uninterrupted(tmp_path):
    ref = build_dataset("fake", root=tmp_path / "ref", source=fake_source(), shard_size=8, progress=False)
    root = tmp_path / "resumed"
    with pytest.raises(Killed):
        build_dataset("fake", root=root, source=fake_source(kill_after=70), shard_size=8, progress=False)
    folder = root / "datasets" / "fake"
    kept = _digest(folder)
    assert kept and not (folder / "card.json").exists() and not list(folder.glob("*.tmp"))
    calls: list[str] = []
    card = build_dataset("fake", root=root, source=fake_source(calls=calls), shard_size=8, progress=False)
    assert _digest(folder) == _digest(tmp_path / "ref" / "datasets" / "fake")
    assert {k: v for k, v in _digest(folder).items() if k in kept} == kept  # finished shards untouched
    assert len(calls) < 120 - 40  # the source skipped the work for keys already in finished shards
    assert card["counts"] == ref["counts"]
    assert [s["sha256"] for s in card["shards"]] == [s["sha256"] for s in ref["shards"]]


def test_limit_then_full_rebuilds_and_done_is_noop(tmp_path):
    small = build_dataset("fake", root=tmp_path, source=fake_source(), limit=10, progress=False)
    assert small["total"] == 10
    full = build_dataset("fake", root=tmp_path, source=fake_source(), progress=False)
    assert full["total"] == 120
    calls: list[str] = []
    again = build_dataset("fake", root=tmp_path, source=fake_source(calls=calls), progress=False)
    assert again == full and calls == []


def test_duplicate_keys_and_bad_args(tmp_path):
    def dup(ctx):
        yield Example("same", {"txt": b"a"})
        yield Example("same", {"txt": b"b"})

    src = SimpleNamespace(NAME="dup", CARD={"version": "1"}, iter_examples=dup)
    with pytest.raises(ValueError, match="twice"):
        build_dataset("dup", root=tmp_path, source=src, progress=False)
    with pytest.raises(ValueError, match="limit"):
        build_dataset("fake", root=tmp_path, source=fake_source(), limit=0, progress=False)
    with pytest.raises(ValueError, match="unknown data source"):
        build_dataset("no-such-source", root=tmp_path, progress=False)
