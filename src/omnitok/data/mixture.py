"""Mixture + packing loader: draws documents from several token-shard sets and packs them into batches.

PACKED-BATCH CONTRACT (read by the LM trainer, ``omnitok.train.lm``)
===================================================================
``MixtureLoader(sources, seq_len, batch_size, seed=0, ...)`` is an iterator; ``next(loader)`` returns a
``dict[str, Tensor]`` (all on CPU; the trainer moves them):

* ``input_ids``    (B, T) int64  token ids fed to the model. Padding is ``vocab.pad_id`` (= 0).
* ``labels``       (B, T) int64  ALREADY SHIFTED next-token targets: ``labels[b, t]`` is the id that should be
                                 predicted at position t, i.e. ``input_ids[b, t + 1]`` when position t+1 belongs
                                 to the same document, else ``-100``. So ``-100`` on padding, on the last token
                                 of every document (its EOS has no successor) and wherever a loss is switched
                                 off (``loss_on_condition=False`` masks the condition segment). The trainer
                                 must NOT shift again: ``F.cross_entropy(logits.view(-1, V), labels.view(-1),
                                 ignore_index=-100)``.
* ``position_ids`` (B, T) int64  restarts at 0 at the first token of every document; 0 on padding.
* ``document_ids`` (B, T) int64  0, 1, 2, ... for the documents packed in a row (per row), ``-1`` on padding.
                                 Attention must not cross documents: allowed(q, k) =
                                 ``document_ids[b, q] == document_ids[b, k] and k <= q`` (padding attends only
                                 to padding, so no row of the mask is empty).
* ``modality``     (B, T) uint8  modality of the LABEL token at t (of ``labels[b, t]``): 0 special, 1 text,
                                 2 image, 3 audio, 4 video; 0 where ``labels == -100``. Use it to weight or
                                 report the loss per modality (the constants are ``MODALITY_IDS`` below and in
                                 ``omnitok.vocab.special``).
* ``task``         (B, T) uint8  task id of the document each position belongs to (``TASK_IDS`` below,
                                 ``omnitok.vocab.document.TASKS``); 0 on padding.
* ``segment_ids``  (B, T) int64  only when some source is masked (``masked=`` below): -1 (causal) except on
                                 the block of a masked image, which holds one id >= 0 per block; the model
                                 attends both ways inside a block (``Transformer.forward(segment_ids=...)``).

Masked-image documents (MaskGIT, arXiv 2202.04200; in one causal model as Show-o, arXiv 2408.12528):
``masked={source: p}`` turns each document drawn from that source whose LAST segment is an image (the target:
caption2image, speech2image, image-only) into a masked document with probability p. Its image block (the codes
and the EOR after each row, between ``<|h|> <|w|>`` and END_IMAGE) becomes one bidirectional segment; a cosine
share ``ceil(cos(pi/2 u) N)`` (u ~ U(0, 1), at least 1) of its N codes is replaced by ``mask_id`` and the
labels of such a document are the original codes AT the masked positions (not shifted: a masked position
predicts itself) and -100 everywhere else. Its task id is ``masked_image``. The same loader keeps giving
next-token documents, so one model learns both.

Packing: documents are never split across rows. The loader keeps the next ``lookahead`` (default 16) documents
of the mixture stream in a buffer and fills each row with the first buffered document that still fits (first-fit);
when none fits, the rest of the row is padding. ``lookahead=1`` is plain greedy packing in stream order. A document
longer than ``seq_len`` is truncated to ``seq_len`` tokens (counted in ``loader.stats["truncated"]``).

Mixture: each document is drawn from source i with probability ``ratio_i / sum(ratios)``; within a source the
documents are visited in a seeded random permutation per epoch (a new permutation each epoch; with
``world_size`` > 1 rank r takes every world_size-th document of it, so ranks see disjoint documents). A source
is one or more token-shard folders (e.g. "pairs" = caption2image + image2caption of digits and emoji). The default
(``DEFAULT_RATIOS``): text-only 0.50, image-text pairs 0.25, interleaved 0.15, image-only 0.10.

Classifier-free-guidance dropout (done HERE, at load time, so one set of shards serves every p): with
probability ``cfg_dropout`` the condition segment(s) of a conditional document (span recorded in the shard
index) are replaced by the single special token ``<|uncond|>`` (``vocab.uncond_id``). So a document is
``BOS <condition segments> <target segment> EOS`` or ``BOS <|uncond|> <target segment> EOS``; generation builds
its unconditional prompt the same way.

Determinism and resuming: for a fixed ``seed`` (and rank / world size) the sequence of batches is fixed.
``loader.state_dict()`` (JSON-serialisable dict) taken after batch k, fed to ``load_state_dict`` of a fresh
loader built with the same sources, makes its next batch equal batch k+1 exactly.
Distributed: pass ``rank`` and ``world_size``; each rank draws its own stream (seeded with ``seed`` and ``rank``).

Other attributes: ``loader.vocab_size``, ``loader.pad_id``, ``loader.uncond_id`` (read from the shard metadata;
all sources must share one vocabulary hash, else ``ValueError``), ``loader.stats`` (documents, tokens, padding,
truncated, per source).

Example::

    loader = MixtureLoader({"text": (0.5, ["tok/text"]), "pairs": (0.5, ["tok/digits-c2i", "tok/emoji-i2c"])},
                           seq_len=1024, batch_size=8, seed=0, cfg_dropout=0.1)
    batch = next(loader)            # dict of (8, 1024) tensors as above
    state = loader.state_dict()     # json.dumps-able
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from omnitok.data.token_shards import TokenShards
from omnitok.vocab.document import TASKS
from omnitok.vocab.special import MODALITY_IDS as _VOCAB_MODALITY_IDS
from omnitok.vocab.special import SpecialTokens

__all__ = ["DEFAULT_RATIOS", "MODALITY_IDS", "TASK_IDS", "MixtureLoader", "mask_image_target", "mask_schedule",
           "pack_documents"]

#: modality type ids used by ``modality`` tensors: ``omnitok.vocab.special.MODALITY_IDS`` (one definition)
MODALITY_IDS: dict[str, int] = _VOCAB_MODALITY_IDS

#: task ids used by ``task`` tensors: ``omnitok.vocab.document.TASKS`` (one definition); 0 = padding / unknown
TASK_IDS: dict[str, int] = TASKS

#: the seed's default mixture (source group -> ratio)
DEFAULT_RATIOS: dict[str, float] = {"text": 0.50, "pairs": 0.25, "interleaved": 0.15, "image": 0.10}


class _Source:
    """One mixture component: several token-shard folders seen as one list of documents."""

    def __init__(self, name: str, ratio: float, shards: Sequence[TokenShards | str | os.PathLike]) -> None:
        if ratio < 0:
            raise ValueError(f"source {name!r}: ratio must be >= 0, got {ratio}")
        self.name, self.ratio = name, float(ratio)
        self.sets = [s if isinstance(s, TokenShards) else TokenShards(s) for s in shards]
        if not self.sets:
            raise ValueError(f"source {name!r}: no token-shard folders given")
        self.offsets = np.cumsum([0] + [len(s) for s in self.sets])
        self.n = int(self.offsets[-1])
        if self.n == 0:
            raise ValueError(f"source {name!r}: its token shards hold no documents")
        # (N, 4) length, cond_start, cond_stop, task of every document, for packing decisions
        self.info = np.concatenate([s.index[:, 1:5] for s in self.sets])

    def get(self, i: int) -> tuple[np.ndarray, tuple[int, int], int]:
        k = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return self.sets[k].document(i - int(self.offsets[k]))


class MixtureLoader(Iterator[dict[str, Tensor]]):
    """Mixture + packing loader; see the contract at the top of this module."""

    def __init__(
        self,
        sources: Mapping[str, tuple[float, Sequence[TokenShards | str | os.PathLike]]],
        seq_len: int,
        batch_size: int,
        *,
        seed: int = 0,
        cfg_dropout: float = 0.0,
        loss_on_condition: bool = True,
        lookahead: int = 16,
        rank: int = 0,
        world_size: int = 1,
        modality_table: np.ndarray | None = None,
        masked: Mapping[str, float] | None = None,
        mask_id: int | None = None,
    ) -> None:
        if seq_len < 2 or batch_size < 1:
            raise ValueError(f"seq_len must be >= 2 and batch_size >= 1, got {seq_len}, {batch_size}")
        if not 0.0 <= cfg_dropout <= 1.0:
            raise ValueError(f"cfg_dropout must be in [0, 1], got {cfg_dropout}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside [0, world_size={world_size})")
        if lookahead < 1:
            raise ValueError(f"lookahead must be >= 1, got {lookahead}")
        self.sources = [_Source(name, r, shards) for name, (r, shards) in sources.items()]
        ratios = np.array([s.ratio for s in self.sources])
        if ratios.sum() <= 0:
            raise ValueError(f"the mixture ratios must have a positive sum, got {dict(zip(sources, ratios))}")
        self.probs = ratios / ratios.sum()
        hashes = {ts.vocab_hash for s in self.sources for ts in s.sets}
        if len(hashes) != 1:
            raise ValueError(f"the sources were tokenised with different vocabularies: {sorted(hashes)}")
        first = self.sources[0].sets[0].meta
        self.vocab_hash = hashes.pop()
        self.vocab_size = int(first["vocab_size"])
        self.pad_id = int(first.get("pad_id", SpecialTokens.pad))
        self.uncond_id = int(first.get("uncond_id", SpecialTokens.uncond))
        if modality_table is None:
            modality_table = np.zeros(self.vocab_size, dtype=np.uint8)
            for lo, hi, m in first.get("modality_ranges", []):
                modality_table[lo:hi] = m
        self.modality_table = np.asarray(modality_table, dtype=np.uint8)
        names = [s.name for s in self.sources]
        masked = {k: float(v) for k, v in (masked or {}).items()}
        unknown = sorted(set(masked) - set(names))
        if unknown:
            raise ValueError(f"masked: unknown sources {unknown}; the sources are {names}")
        if any(not 0.0 <= p <= 1.0 for p in masked.values()):
            raise ValueError(f"masked: every probability must be in [0, 1], got {masked}")
        self.mask_prob = [masked.get(n, 0.0) for n in names]
        self.with_segments = any(p > 0 for p in self.mask_prob)
        if self.with_segments and (mask_id is None or not 0 <= mask_id < self.vocab_size):
            raise ValueError(f"masked sources need the vocabulary's <|mask|> id (mask_id), got {mask_id!r}; "
                             "tokenise with a vocabulary built with_mask=True")
        self.mask_id = mask_id
        self.seq_len, self.batch_size = int(seq_len), int(batch_size)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.cfg_dropout, self.loss_on_condition, self.lookahead = float(cfg_dropout), loss_on_condition, lookahead
        self._rng = np.random.default_rng([self.seed, self.rank, 0x6D1C])
        self._epoch = [0] * len(self.sources)
        self._cursor = [0] * len(self.sources)
        self._perm: list[np.ndarray | None] = [None] * len(self.sources)
        self._buffer: list[tuple[int, int, bool, int]] = []  # (source, document, condition dropped, mask seed)
        self.batches = 0
        self.stats: dict[str, Any] = {"documents": 0, "tokens": 0, "padding": 0, "truncated": 0,
                                      "per_source": {s.name: 0 for s in self.sources}}

    # ----- the document stream ----------------------------------------------------------------------
    def _order(self, si: int) -> np.ndarray:
        perm = self._perm[si]
        if perm is None:
            src = self.sources[si]
            full = np.random.default_rng([self.seed, si, self._epoch[si], 0x5EED]).permutation(src.n)
            perm = full[self.rank :: self.world_size]
            if perm.size == 0:  # fewer documents than ranks: every rank reuses the whole permutation
                perm = full
            self._perm[si] = perm
        return perm

    def _draw(self) -> tuple[int, int, bool, int]:
        si = int(self._rng.choice(len(self.sources), p=self.probs))
        perm = self._order(si)
        doc = int(perm[self._cursor[si]])
        self._cursor[si] += 1
        if self._cursor[si] == len(perm):
            self._cursor[si] = 0
            self._epoch[si] += 1
            self._perm[si] = None
        _, a, b, _ = self.sources[si].info[doc]
        drop = bool(b > a and self.cfg_dropout > 0 and self._rng.random() < self.cfg_dropout)
        mseed = -1  # >= 0: mask this document's image target, with this seed (the rng is untouched when off)
        if self.mask_prob[si] > 0 and self._rng.random() < self.mask_prob[si]:
            mseed = int(self._rng.integers(0, 2**31))
        return si, doc, drop, mseed

    def _length(self, item: tuple[int, int, bool, int]) -> int:
        si, doc, drop, _ = item
        L, a, b, _ = (int(x) for x in self.sources[si].info[doc])
        if drop:
            L = L - (b - a) + 1
        return min(L, self.seq_len)

    def _materialise(self, item: tuple[int, int, bool, int]) -> tuple[Any, ...]:
        """ids (truncated to seq_len), condition span, task id (+ labels and block span when masked)."""
        si, doc, drop, mseed = item
        ids, (a, b), task = self.sources[si].get(doc)
        ids = ids.astype(np.int64)
        if drop:
            ids = np.concatenate([ids[:a], [self.uncond_id], ids[b:]])
            b = a + 1
        if len(ids) > self.seq_len:
            ids = ids[: self.seq_len]
            self.stats["truncated"] += 1
        if mseed >= 0:
            masked = mask_image_target(ids, b, self.modality_table, int(self.mask_id), np.random.default_rng(mseed))
            if masked is not None:
                self.stats["masked"] = self.stats.get("masked", 0) + 1
                inp, labels, span = masked
                return inp, a, min(b, len(ids)), TASK_IDS["masked_image"], labels, span
        return ids, a, min(b, len(ids)), task

    # ----- packing ----------------------------------------------------------------------------------------
    def __iter__(self) -> MixtureLoader:
        return self

    def __next__(self) -> dict[str, Tensor]:
        rows: list[list[tuple[np.ndarray, int, int, int]]] = []
        for _ in range(self.batch_size):
            row: list[tuple[np.ndarray, int, int, int]] = []
            room = self.seq_len
            while room > 0:
                while len(self._buffer) < self.lookahead:
                    self._buffer.append(self._draw())
                pick = next((j for j, it in enumerate(self._buffer) if self._length(it) <= room), None)
                if pick is None:
                    break
                item = self._buffer.pop(pick)
                doc = self._materialise(item)
                row.append(doc)
                room -= len(doc[0])
                self.stats["documents"] += 1
                self.stats["per_source"][self.sources[item[0]].name] += 1
            rows.append(row)
        self.batches += 1
        return pack_documents(rows, self.seq_len, self.pad_id, self.modality_table, self.loss_on_condition,
                              self.stats, with_segments=self.with_segments)

    # ----- resuming ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "sources": [s.name for s in self.sources],
            "source_sizes": [s.n for s in self.sources],
            "rng": self._rng.bit_generator.state,
            "epoch": list(self._epoch),
            "cursor": list(self._cursor),
            "buffer": [list(map(int, it)) for it in self._buffer],
            "batches": self.batches,
            "stats": {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.stats.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        mine = ([s.name for s in self.sources], [s.n for s in self.sources], self.seed, self.rank, self.world_size)
        theirs = (list(state["sources"]), list(state["source_sizes"]), state["seed"], state["rank"],
                  state["world_size"])
        if mine != theirs:
            raise ValueError(f"loader state was saved for (sources, sizes, seed, rank, world) = {theirs}, "
                             f"this loader has {mine}")
        self._rng.bit_generator.state = state["rng"]
        self._epoch = [int(x) for x in state["epoch"]]
        self._cursor = [int(x) for x in state["cursor"]]
        self._perm = [None] * len(self.sources)
        self._buffer = [(int(it[0]), int(it[1]), bool(it[2]), int(it[3]) if len(it) > 3 else -1)
                        for it in state["buffer"]]
        self.batches = int(state["batches"])
        self.stats = {k: (dict(v) if isinstance(v, dict) else v) for k, v in state["stats"].items()}


def pack_documents(
    rows: Sequence[Sequence[tuple[np.ndarray, int, int, int]]],
    seq_len: int,
    pad_id: int,
    modality_table: np.ndarray,
    loss_on_condition: bool = True,
    stats: dict[str, Any] | None = None,
    with_segments: bool = False,
) -> dict[str, Tensor]:
    """Rows of (ids, cond_start, cond_stop, task) documents -> the packed-batch dict of the contract.

    A masked document is (ids, cond_start, cond_stop, task, labels, (block_start, block_stop)) (from
    :func:`mask_image_target`): its labels are taken as they are and its block becomes a segment.
    ``with_segments`` adds ``segment_ids`` to the batch."""
    B, T = len(rows), seq_len
    input_ids = np.full((B, T), pad_id, dtype=np.int64)
    labels = np.full((B, T), -100, dtype=np.int64)
    position_ids = np.zeros((B, T), dtype=np.int64)
    document_ids = np.full((B, T), -1, dtype=np.int64)
    task = np.zeros((B, T), dtype=np.uint8)
    segment_ids = np.full((B, T), -1, dtype=np.int64)
    for r, row in enumerate(rows):
        o = 0
        for d, (ids, a, b, t, *masked) in enumerate(row):
            L = len(ids)
            if o + L > T:
                raise ValueError(f"row {r}: documents hold more than seq_len={T} ids")
            input_ids[r, o : o + L] = ids
            lab = labels[r, o : o + L]
            if masked:  # a masked image: loss on the masked codes only, the block attends both ways
                doc_labels, (s0, s1) = masked
                lab[:] = doc_labels
                segment_ids[r, o + s0 : o + s1] = d
            else:
                lab[: L - 1] = ids[1:]
            if not loss_on_condition and b > a and not masked:
                lab[max(a - 1, 0) : b - 1] = -100  # targets inside the condition span
            position_ids[r, o : o + L] = np.arange(L)
            document_ids[r, o : o + L] = d
            task[r, o : o + L] = t
            o += L
        if stats is not None:
            stats["tokens"] += o
            stats["padding"] += T - o
    valid = labels != -100
    modality = np.where(valid, modality_table[np.where(valid, labels, 0)], 0).astype(np.uint8)
    out = {
        "input_ids": torch.from_numpy(input_ids),
        "labels": torch.from_numpy(labels),
        "position_ids": torch.from_numpy(position_ids),
        "document_ids": torch.from_numpy(document_ids),
        "modality": torch.from_numpy(modality),
        "task": torch.from_numpy(task),
    }
    if with_segments:
        out["segment_ids"] = torch.from_numpy(segment_ids)
    return out


def mask_schedule(progress: np.ndarray | float) -> np.ndarray:
    """MaskGIT's cosine schedule: the share of codes masked at ``progress`` in [0, 1] (1 at 0, 0 at 1)."""
    return np.cos(np.pi / 2 * np.asarray(progress, dtype=np.float64))


def mask_image_target(ids: np.ndarray, cond_stop: int, modality_table: np.ndarray, mask_id: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[int, int]] | None:
    """A document whose last segment is a complete image (after the condition) -> its masked version:
    (input ids with a cosine share of the codes replaced by ``mask_id``, labels (L,) = the original code at each
    masked position and -100 elsewhere, (block_start, block_stop) = the codes and EORs of the image).
    None when the document has no such image (it stays a next-token document)."""
    begin, end = SpecialTokens().begin("image"), SpecialTokens().end("image")  # independent of the size limits
    starts = np.flatnonzero(ids == begin)
    if len(starts) == 0 or starts[-1] < cond_stop:
        return None
    s0 = int(starts[-1]) + 3  # BEGIN_IMAGE <|h|> <|w|>
    ends = np.flatnonzero(ids[s0:] == end)
    if len(ends) == 0:  # truncated
        return None
    s1 = s0 + int(ends[0])
    if np.any(modality_table[ids[s1 + 1 :]] != 0):  # another media / text segment follows: not the target
        return None
    codes = s0 + np.flatnonzero(modality_table[ids[s0:s1]] != 0)  # code positions (the EORs stay)
    if len(codes) == 0:
        return None
    n = max(1, int(np.ceil(float(mask_schedule(rng.random())) * len(codes))))
    chosen = rng.choice(codes, size=min(n, len(codes)), replace=False)
    inp = ids.copy()
    inp[chosen] = mask_id
    labels = np.full(len(ids), -100, dtype=np.int64)
    labels[chosen] = ids[chosen]
    return inp, labels, (s0, s1)
