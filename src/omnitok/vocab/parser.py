"""The strict parser: an id sequence -> a Document of code segments, by walking the vocabulary's grammar.

There is one grammar (:class:`omnitok.vocab.grammar.GrammarState`); the parser steps it over the ids, so a
sequence parses exactly when constrained decoding could have produced it. Where the grammar says a run of ids
has a fixed layout (text ids, an image / video grid, padding after EOS) the parser checks the whole run with one
numpy comparison (``GrammarState.run_bounds`` / ``skip``); elsewhere it steps one id at a time. Text runs end at
the first non-text id, found once per sequence, so a long sequence of many segments parses in O(n log n).

``partial=True`` keeps every well-formed segment and lists the problems (``doc.problems``), resuming at the next
id that can start a segment.
"""

from __future__ import annotations

import numpy as np

from omnitok.vocab import patterns
from omnitok.vocab.document import Audio, Document, Image, Segment, Text, Uncond, Video, codes_tensor
from omnitok.vocab.errors import VocabularyError
from omnitok.vocab.grammar import GrammarState
from omnitok.vocab.layout import CodecEntry, IdLayout

__all__ = ["parse_ids"]


def parse_ids(layout: IdLayout, ids: np.ndarray, partial: bool = False) -> Document:
    """1-D int64 ``ids`` -> Document (codes only). Strict: VocabularyError naming the first position the grammar
    forbids (``len(ids)`` when the sequence stops inside a segment); ``partial``: problems in ``doc.problems``."""
    sp, n = layout.specials, len(ids)
    doc = Document(segments=[], bos=False, eos=False)
    problems: list[VocabularyError] = []
    text_stops: np.ndarray | None = None  # positions of the ids that cannot be inside a text body
    starts: np.ndarray | None = None  # positions of the ids that can start a segment (partial resync)
    g = GrammarState(layout)
    i, seg = 0, -1  # next position; start of the open segment (-1: none)
    while i < n:
        try:
            if g.modality == "" and not g.finished:  # top level: the id decides what comes
                t = int(ids[i])
                g.step(t)
                if t == sp.bos:
                    doc.bos = True
                elif t == sp.uncond:
                    doc.segments.append(Uncond())
                elif t == sp.eos:
                    doc.eos = True
                else:
                    seg = i
                i += 1
                continue
            limit = n - i
            if g.modality == "text":
                if text_stops is None:
                    e = layout.entries["text"]
                    text_stops = np.flatnonzero((ids < e.offset) | (ids >= e.stop))
                k = int(np.searchsorted(text_stops, i))
                limit = (int(text_stops[k]) if k < len(text_stops) else n) - i
            bounds = g.run_bounds(limit) if limit > 0 else None
            if bounds is not None and len(bounds[0]):
                lo, hi = bounds
                body = ids[i : i + len(lo)]
                ok = (body >= lo) & (body < hi)
                k = len(body) if ok.all() else int(np.argmin(ok))
                if k:
                    g.skip(k)
                    i += k
                    continue
            g.step(int(ids[i]))  # one id (VocabularyError naming it when the grammar forbids it)
            i += 1
            if seg >= 0 and g.modality == "":  # END closed the segment
                doc.segments.append(_segment(layout, ids[seg:i]))
                seg = -1
        except VocabularyError as e:
            if not partial:
                raise
            problems.append(e)
            if starts is None:
                starts = np.flatnonzero(np.isin(ids, [sp.uncond, sp.eos, *(sp.begin(m) for m in layout.entries)]))
            k = int(np.searchsorted(starts, (seg if seg >= 0 else i) + 1))
            if k == len(starts):
                break
            i, seg = int(starts[k]), -1
            g = GrammarState(layout, position=i, top=True)
    else:
        if not g.complete:
            e = VocabularyError(f"the sequence ends inside an unfinished {g.modality} segment: expected {g.expected()}",
                                position=n)
            if not partial:
                raise e
            problems.append(e)
    doc.problems = problems
    return doc


def _segment(layout: IdLayout, ids: np.ndarray) -> Segment:
    """The ids of one well-formed segment, BEGIN to END -> a code segment."""
    sp = layout.specials
    m = layout.modality_of_begin(int(ids[0]))
    e = layout.entries[m]
    if m == "text":
        return Text(codes=codes_tensor(ids[1:-1] - e.offset))
    if m == "image":
        h, w = int(ids[1]) - sp.height_base + 1, int(ids[2]) - sp.width_base + 1
        grid = ids[3:-1].reshape(h, -1)[:, :-1].reshape(h, w, e.num_codebooks)  # rows without their EOR
        return Image(codes=codes_tensor(_lower(grid, e)))
    if m == "video":
        t = int(ids[1]) - sp.frames_base + 1
        h, w = int(ids[2]) - sp.height_base + 1, int(ids[3]) - sp.width_base + 1
        frames = ids[4:-1].reshape(t, -1)[:, :-1].reshape(t, h, -1)[:, :, :-1].reshape(t, h, w, e.num_codebooks)
        codes = np.concatenate([_lower(frames[:, rows], entry) for rows, entry in layout.video_rows(h)], axis=1)
        return Video(codes=codes_tensor(codes))
    delay = layout.audio_pattern == "delay" and e.num_codebooks > 1
    grid = patterns.from_stream(ids[1:-1], "delay" if delay else "flatten", e.num_codebooks)
    return Audio(codes=codes_tensor(_lower(grid, e)))


def _lower(grid: np.ndarray, e: CodecEntry) -> np.ndarray:
    """vocabulary ids (..., n_q) -> codes (per-level offsets removed)."""
    return grid - (e.offset + e.codebook_size * np.arange(e.num_codebooks, dtype=np.int64))
