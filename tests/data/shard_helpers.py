"""Helpers of the data tests (tests/data is on sys.path under pytest's default import mode)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from omnitok.data.token_shards import TokenShardWriter
from omnitok.data.tokenize import shard_meta
from omnitok.vocab import TASKS, Document, Segment, Vocabulary


def write_shards(out: Path, vocab: Vocabulary, task: str, docs: Iterable[tuple[list[Segment], bool]],
                 vocab_hash: str | None = None) -> str:
    """Token shards of ``task`` (400 ids a shard) holding ``docs``: (segments, whether the first one is the
    condition); -> the folder."""
    w = TokenShardWriter(out, vocab_hash=vocab_hash or vocab.hash, vocab_size=vocab.size, task=task,
                         meta=shard_meta(vocab), shard_tokens=400)
    for segs, conditioned in docs:
        ids, spans = vocab.encode_with_spans(Document(segs))
        w.add(ids, spans[0] if conditioned else (0, 0), TASKS[task])
        w.end_batch(1)
    w.close()
    return str(out)
