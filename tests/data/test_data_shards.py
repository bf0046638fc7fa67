"""Tar shards and hash splits."""

from __future__ import annotations

import hashlib

import pytest

from omnitok.data.shards import ShardWriter, example_from_files, iter_shard, read_shard_keys, write_shard
from omnitok.data.splits import parse_splits, split_of
from omnitok.data.types import Example


def _examples(n: int) -> list[Example]:
    return [Example(f"ex-{i:03d}", {"txt": f"text {i}".encode(), "bin": bytes([i % 256]) * i}, {"i": i})
            for i in range(n)]


def test_round_trip_and_determinism(tmp_path):
    a = write_shard(tmp_path / "a.tar", _examples(12))
    b = write_shard(tmp_path / "b.tar", _examples(12))
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    assert read_shard_keys(a) == [f"ex-{i:03d}" for i in range(12)]
    got = [example_from_files(k, f) for k, f in iter_shard(a)]
    assert [g.key for g in got] == [e.key for e in _examples(12)]
    for g, e in zip(got, _examples(12)):
        assert g.files == e.files and g.meta == e.meta


def test_half_written_shard_never_appears(tmp_path):
    path = tmp_path / "train-000000.tar"
    with pytest.raises(RuntimeError), ShardWriter(path) as w:
        w.write(_examples(1)[0])
        raise RuntimeError("killed")
    assert not path.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("key", ["a.b", "a/b", ""])
def test_bad_keys_rejected(tmp_path, key):
    with pytest.raises(ValueError, match="key"), ShardWriter(tmp_path / "x.tar") as w:
        w.write(Example(key, {"txt": b"x"}))


def test_truncated_shard_warns_and_keeps_prefix(tmp_path):
    path = write_shard(tmp_path / "t.tar", _examples(20))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(RuntimeWarning, match="t.tar"):
        keys = [k for k, _ in iter_shard(path)]
    assert 0 < len(keys) < 20


def test_splits_deterministic_and_proportional():
    keys = [f"k{i}" for i in range(20000)]
    first = [split_of(k) for k in keys]
    assert first == [split_of(k) for k in keys]
    frac = {s: first.count(s) / len(keys) for s in ("train", "val", "test")}
    assert abs(frac["train"] - 0.9) < 0.01 and abs(frac["val"] - 0.05) < 0.01
    assert split_of("k1", "train=1,val=0,test=0") == "train"
    assert parse_splits("train=8,val=1,test=1") == {"train": 0.8, "val": 0.1, "test": 0.1}
    with pytest.raises(ValueError, match="splits"):
        parse_splits("train")
