"""Token shards: documents of vocabulary ids in memory-mapped files, with an index of document offsets.

A token-shard folder (one task of one dataset split, written by ``omnitok tokenize``)::

    part-r<rank>.json               one per writer rank: vocabulary hash and size, dtype, task, dataset, split,
                                    the finished shards, ``examples_done`` (for resuming) and ``complete``
    r<rank>-<k:05d>.tokens          raw little-endian uint16 (vocabulary < 65,536 ids) or uint32 ids
    r<rank>-<k:05d>.index.npy       int64 (N, 5): start, length, cond_start, cond_stop, task id per document
                                    (the condition span is relative to the document start; (0, 0) = none)

A shard and its index are written under ``*.tmp`` names and renamed when complete; ``part-r<rank>.json`` is
rewritten after each shard, so a killed run resumes after its last finished shard (``TokenShardWriter`` skips
the examples already tokenised). Under ``torchrun`` every rank writes its own ``r<rank>-*`` files.
``TokenShards(folder)`` reads all parts (refusing parts made with different vocabularies).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["INDEX_COLUMNS", "TokenShardWriter", "TokenShards", "grid_summary", "token_dtype"]

INDEX_COLUMNS = ("start", "length", "cond_start", "cond_stop", "task")
FORMAT_VERSION = 1


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


class TokenShardWriter:
    """Append documents; a shard is closed once it holds ``shard_tokens`` ids (checked between batches).

    Usage::

        w = TokenShardWriter(out, vocab_hash=v.hash, vocab_size=v.size, task="caption2image", meta={...})
        skip = w.examples_done                    # > 0 when resuming
        for batch in batches(skip):
            for ids, span, task in docs(batch): w.add(ids, span, task)
            w.end_batch(len(batch))               # may close a shard and record progress
        w.close()
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        vocab_hash: str,
        vocab_size: int,
        task: str = "",
        rank: int = 0,
        world_size: int = 1,
        shard_tokens: int = 1 << 24,
        meta: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rank, self.world_size = rank, world_size
        self.dtype = token_dtype(vocab_size)
        self.shard_tokens = int(shard_tokens)
        self.part_path = self.dir / f"part-r{rank}.json"
        self.part: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "vocab_hash": vocab_hash,
            "vocab_size": int(vocab_size),
            "dtype": self.dtype.str,
            "task": task,
            "rank": rank,
            "world_size": world_size,
            "shards": [],
            "examples_done": 0,
            "documents": 0,
            "tokens": 0,
            "complete": False,
            **(meta or {}),
        }
        if self.part_path.exists() and not overwrite:
            old = json.loads(self.part_path.read_text())
            for key in ("vocab_hash", "task", "world_size", "dtype"):
                if old.get(key) != self.part[key]:
                    raise ValueError(
                        f"{self.part_path}: was written with {key}={old.get(key)!r}, now {self.part[key]!r}; "
                        "use another --out folder or --overwrite"
                    )
            self.part = old
        elif overwrite:
            for p in self.dir.glob(f"r{rank}-*"):
                p.unlink()
            self.part_path.unlink(missing_ok=True)
        # drop half-written files of an interrupted run
        listed = {s["tokens"] for s in self.part["shards"]} | {s["index"] for s in self.part["shards"]}
        for p in self.dir.glob(f"r{rank}-*"):
            if p.name not in listed:
                p.unlink()
        self._ids: list[np.ndarray] = []
        self._rows: list[tuple[int, int, int, int, int]] = []
        self._n = 0
        self._pending_examples = 0

    @property
    def examples_done(self) -> int:
        """Examples consumed by the finished shards (skip them when resuming)."""
        return int(self.part["examples_done"])

    @property
    def complete(self) -> bool:
        return bool(self.part["complete"])

    def add(self, ids: np.ndarray | Sequence[int], cond_span: tuple[int, int] = (0, 0), task: int = 0) -> None:
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError(f"a document must be a non-empty 1-D id array, got shape {ids.shape}")
        if ids.min() < 0 or ids.max() >= self.part["vocab_size"]:
            raise ValueError(f"document ids outside [0, {self.part['vocab_size']}): [{ids.min()}, {ids.max()}]")
        a, b = cond_span
        if not 0 <= a <= b <= len(ids):
            raise ValueError(f"cond_span {cond_span} outside the document of length {len(ids)}")
        self._rows.append((self._n, len(ids), a, b, int(task)))
        self._ids.append(ids.astype(self.dtype))
        self._n += len(ids)

    def end_batch(self, n_examples: int) -> None:
        """Record that ``n_examples`` more examples were consumed; closes the shard when it is full."""
        self._pending_examples += int(n_examples)
        if self._n >= self.shard_tokens:
            self._flush()

    def _flush(self) -> None:
        pending = self._pending_examples
        if not self._rows:
            if pending:
                self.part["examples_done"] += pending
                self._pending_examples = 0
                _write_json(self.part_path, self.part)
            return
        k = len(self.part["shards"])
        name = f"r{self.rank}-{k:05d}"
        tok_path, idx_path = self.dir / f"{name}.tokens", self.dir / f"{name}.index.npy"
        tmp_tok, tmp_idx = tok_path.with_name(tok_path.name + ".tmp"), self.dir / f"{name}.index.tmp.npy"
        np.concatenate(self._ids).tofile(tmp_tok)
        np.save(tmp_idx, np.asarray(self._rows, dtype=np.int64).reshape(-1, len(INDEX_COLUMNS)))
        os.replace(tmp_tok, tok_path)
        os.replace(tmp_idx, idx_path)
        self.part["shards"].append(
            {"tokens": tok_path.name, "index": idx_path.name, "documents": len(self._rows), "num_tokens": self._n}
        )
        self.part["documents"] += len(self._rows)
        self.part["tokens"] += self._n
        self.part["examples_done"] += pending
        self._pending_examples = 0
        _write_json(self.part_path, self.part)
        self._ids, self._rows, self._n = [], [], 0

    def close(self) -> dict[str, Any]:
        """Write the last shard and mark this part complete; returns the part record."""
        self._flush()
        self.part["complete"] = True
        _write_json(self.part_path, self.part)
        return self.part


class TokenShards:
    """Read-only view of a token-shard folder: ``len``, ``shards[i] -> ids`` (a memory-mapped view).

    ``allow_incomplete=True`` reads what finished shards there are while a tokenisation still runs.
    """

    def __init__(self, directory: str | os.PathLike, allow_incomplete: bool = False) -> None:
        self.dir = Path(directory)
        parts = sorted(self.dir.glob("part-r*.json"))
        if not parts:
            raise ValueError(f"{self.dir}: not a token-shard folder (no part-r*.json; run `omnitok tokenize`)")
        self.parts = [json.loads(p.read_text()) for p in parts]
        hashes = {p["vocab_hash"] for p in self.parts}
        if len(hashes) != 1:
            raise ValueError(f"{self.dir}: parts were made with different vocabularies: {sorted(hashes)}")
        self.vocab_hash: str = hashes.pop()
        self.vocab_size = int(self.parts[0]["vocab_size"])
        self.meta = {k: v for k, v in self.parts[0].items() if k not in ("shards", "rank")}
        missing = [p["rank"] for p in self.parts if not p["complete"]]
        world = int(self.parts[0]["world_size"])
        if not allow_incomplete and (missing or len(self.parts) != world):
            raise ValueError(
                f"{self.dir}: tokenisation not finished (incomplete ranks {missing}, {len(self.parts)} of "
                f"{world} parts); finish it or pass allow_incomplete=True"
            )
        self._tokens: list[np.memmap] = []
        index = []
        for p in self.parts:
            dt = np.dtype(p["dtype"])
            for s in p["shards"]:
                tok = self.dir / s["tokens"]
                n = tok.stat().st_size // dt.itemsize
                if n != s["num_tokens"]:
                    raise ValueError(f"{tok}: holds {n} ids, its part file says {s['num_tokens']}")
                mm = np.memmap(tok, dtype=dt, mode="r", shape=(n,)) if n else np.zeros(0, dt)
                idx = np.load(self.dir / s["index"], allow_pickle=False)
                if idx.ndim != 2 or idx.shape[1] != len(INDEX_COLUMNS) or len(idx) != s["documents"]:
                    raise ValueError(f"{self.dir / s['index']}: malformed index of shape {idx.shape}")
                shard_col = np.full((len(idx), 1), len(self._tokens), dtype=np.int64)
                index.append(np.concatenate([idx, shard_col], axis=1))
                self._tokens.append(mm)
        self.index = np.concatenate(index) if index else np.zeros((0, len(INDEX_COLUMNS) + 1), np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def lengths(self) -> np.ndarray:
        return self.index[:, 1]

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    def __getitem__(self, i: int) -> np.ndarray:
        start, length, _, _, _, shard = self.index[i]
        return self._tokens[shard][start : start + length]

    def document(self, i: int) -> tuple[np.ndarray, tuple[int, int], int]:
        """(ids, condition span relative to the document, task id)."""
        start, length, a, b, task, shard = (int(x) for x in self.index[i])
        return np.asarray(self._tokens[shard][start : start + length]), (a, b), task

    def __repr__(self) -> str:
        return (f"TokenShards({self.dir}, documents={len(self)}, tokens={self.num_tokens}, "
                f"task={self.meta.get('task')!r}, vocab={self.vocab_hash[:12]})")


def grid_summary(shards: list[TokenShards], vocab: Any, per_source: int = 64) -> dict[str, list[int]]:
    """The code grids a model trained on ``shards`` has seen, for generation defaults
    (``generation_config.json``): per modality the most common image (h, w) and video (t, h, w) grid and the
    longest audio segment in frames, read from the first ``per_source`` documents of each folder.

    vocab: a :class:`~omnitok.vocab.vocabulary.Vocabulary` (codecs need not be loaded: codes only)."""
    from collections import Counter

    seen: dict[str, Counter] = {"image": Counter(), "video": Counter()}
    audio_max = 0
    for ts in shards:
        for i in range(min(per_source, len(ts))):
            doc = vocab.decode(np.asarray(ts[i], dtype=np.int64), errors="partial")
            for seg in doc.segments:
                codes = getattr(seg, "codes", None)
                if codes is None or seg.modality == "text":
                    continue
                if seg.modality in seen:
                    seen[seg.modality][tuple(int(x) for x in codes.shape[:-1])] += 1
                elif seg.modality == "audio":
                    audio_max = max(audio_max, int(codes.shape[0]))
    out = {m: list(c.most_common(1)[0][0]) for m, c in seen.items() if c}
    if audio_max:
        out["audio"] = [audio_max]
    return out
