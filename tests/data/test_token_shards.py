"""Token shards: write, read back through memory maps, resume after a kill, refuse mixed vocabularies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from omnitok.data.token_shards import TokenShards, TokenShardWriter, token_dtype


def _docs(n: int, seed: int = 0, vocab_size: int = 1000) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab_size, int(rng.integers(1, 50))) for _ in range(n)]


def test_dtype_choice() -> None:
    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.uint32
    with pytest.raises(ValueError):
        token_dtype(0)


def test_write_read_round_trip(tmp_path) -> None:
    docs = _docs(300)
    w = TokenShardWriter(tmp_path, vocab_hash="h", vocab_size=1000, task="text", shard_tokens=500)
    for i, d in enumerate(docs):
        w.add(d, (0, min(2, len(d))), task=i % 3)
        if i % 10 == 9:
            w.end_batch(10)
    part = w.close()
    assert part["complete"] and part["documents"] == 300 and len(part["shards"]) > 3
    ts = TokenShards(tmp_path)
    assert len(ts) == 300 and ts.num_tokens == sum(len(d) for d in docs) and ts.vocab_hash == "h"
    for i in (0, 17, 299):
        ids, span, task = ts.document(i)
        np.testing.assert_array_equal(ids, docs[i])
        assert span == (0, min(2, len(docs[i]))) and task == i % 3
        assert isinstance(ts[i], np.memmap)
    with pytest.raises(ValueError, match="outside"):
        TokenShardWriter(tmp_path / "x", vocab_hash="h", vocab_size=10).add(np.array([10]))


def test_resume_after_kill_gives_the_same_shards(tmp_path) -> None:
    docs = _docs(200, seed=1)

    def run(out, stop_at=None):
        w = TokenShardWriter(out, vocab_hash="h", vocab_size=1000, task="text", shard_tokens=300)
        start = w.examples_done
        for b in range(start, 200, 8):
            batch = docs[b : b + 8]
            for d in batch:
                w.add(d)
            w.end_batch(len(batch))
            if stop_at is not None and b >= stop_at:
                return None  # "killed": the open shard is lost
        return w.close()

    run(tmp_path / "full")
    run(tmp_path / "killed", stop_at=120)
    part = json.loads((tmp_path / "killed" / "part-r0.json").read_text())
    assert not part["complete"] and 0 < part["examples_done"] < 200
    (tmp_path / "killed" / "r0-99999.tokens.tmp").write_bytes(b"junk")  # a half-written leftover
    with pytest.raises(ValueError, match="not finished"):
        TokenShards(tmp_path / "killed")
    assert len(TokenShards(tmp_path / "killed", allow_incomplete=True)) == part["documents"]
    run(tmp_path / "killed")
    a, b = TokenShards(tmp_path / "full"), TokenShards(tmp_path / "killed")
    assert len(a) == len(b) == 200
    assert all(np.array_equal(a[i], b[i]) for i in range(200))
    assert not (tmp_path / "killed" / "r0-99999.tokens.tmp").exists()


def test_ranks_and_vocab_hash_checks(tmp_path) -> None:
    for r in range(2):
        w = TokenShardWriter(tmp_path, vocab_hash="h", vocab_size=1000, task="text", rank=r, world_size=2)
        w.add(np.array([r, 1, 2]))
        w.close()
    ts = TokenShards(tmp_path)
    assert len(ts) == 2 and sorted(int(ts[i][0]) for i in range(2)) == [0, 1]
    with pytest.raises(ValueError, match="vocab_hash"):
        TokenShardWriter(tmp_path, vocab_hash="other", vocab_size=1000, task="text")
    w = TokenShardWriter(tmp_path / "b", vocab_hash="other", vocab_size=1000, task="text")
    w.add(np.array([1]))
    w.close()
    (tmp_path / "b" / "part-r0.json").rename(tmp_path / "part-r7.json")
    with pytest.raises(ValueError, match="different vocabularies"):
        TokenShards(tmp_path)
    with pytest.raises(ValueError, match="not a token-shard folder"):
        TokenShards(tmp_path / "nothing")
