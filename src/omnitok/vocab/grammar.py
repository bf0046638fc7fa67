"""Incremental document grammar for constrained decoding: O(1) work per token.

::

    g = vocab.grammar()              # at the start of a document
    for i in prompt_ids: g.step(i)   # VocabularyError (naming the position) on an id the grammar forbids
    mask = g.allowed_mask(device)    # bool (V,) of the ids allowed next (cached per state kind: do not modify)
    logits[~mask] = -inf
    g.step(sampled_id)

``allowed_ranges()`` gives the same set as a tuple of half-open ``(lo, hi)`` id ranges. The grammar is the
one written in :mod:`omnitok.vocab.layout`, and the only copy of it: the strict parser
(:mod:`omnitok.vocab.parser`) walks a ``GrammarState`` too, checking whole segment bodies at once with
``run_bounds`` / ``skip``; after ``<|h=h|> <|w=w|>`` it forces exactly ``w`` codes per
row (each at its codebook level), an EOR after each row and END_IMAGE after ``h`` rows, so a sampled image
always has the requested shape. ``complete`` is True where the document may stop (at top level or after EOS).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from omnitok.vocab.errors import VocabularyError

__all__ = ["GrammarState", "merge_ranges"]

Ranges = tuple[tuple[int, int], ...]

# modes
_START, _TOP, _DONE, _TEXT, _SIZE, _GRID, _AUDIO, _EOF, _END = range(9)


class _Tables:
    """Range tuples shared by every state of one vocabulary (built once, cached on the vocabulary)."""

    def __init__(self, vocab) -> None:
        sp = vocab.specials
        self.V = vocab.size
        one = lambda i: (i, i + 1)
        top = [one(sp.uncond), one(sp.eos)] + [one(sp.begin(m)) for m in vocab.entries]
        self.top: Ranges = merge_ranges(top)
        self.start: Ranges = merge_ranges(top + [one(sp.bos)])
        self.done: Ranges = (one(sp.pad),)
        self.eor: Ranges = (one(sp.eor),)
        self.eof: Ranges = (one(sp.eof),)
        self.pad: Ranges = (one(sp.delay_pad),)
        self.end = {m: (one(sp.end(m)),) for m in vocab.entries}
        self.size = {
            "h": ((sp.height_base, sp.height_base + sp.max_height),),
            "w": ((sp.width_base, sp.width_base + sp.max_width),),
            "f": ((sp.frames_base, sp.frames_base + sp.max_frames),),
        }
        self.level: dict[str, list[Ranges]] = {}
        self.level_or_pad: dict[str, list[Ranges]] = {}
        for m, e in vocab.entries.items():
            self.level[m] = [(e.level_range(k),) for k in range(e.num_codebooks)]
            self.level_or_pad[m] = [merge_ranges([e.level_range(k), one(sp.delay_pad)]) for k in range(e.num_codebooks)]
        if "text" in vocab.entries:
            e = vocab.entries["text"]
            self.text: Ranges = merge_ranges([(e.offset, e.stop), one(sp.end("text"))])
        self.level_or_end = {
            m: [merge_ranges([e.level_range(0), one(sp.end(m))])] for m, e in vocab.entries.items()
        }
        self.begin_to_modality = {sp.begin(m): m for m in vocab.entries}
        # rows 0..image_rows-1 of every video frame hold image codes (IdLayout: shared image ids)
        video = vocab.entries.get("video")
        self.image_rows = video.image_rows if video is not None else 0
        self.masks: dict[tuple[Ranges, str], Tensor] = {}


def merge_ranges(ranges: list[tuple[int, int]]) -> Ranges:
    """Half-open id ranges -> the sorted, merged tuple of the ids they cover."""
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


class GrammarState:
    """Where a (partial) id sequence stands in the document grammar."""

    __slots__ = ("_t", "v", "pos", "mode", "m", "size_left", "sizes", "h", "w", "t", "n_q",
                 "col", "row", "frame", "s", "k", "T", "delay")

    def __init__(self, vocab, position: int = 0, top: bool = False) -> None:
        """At the start of a document (BOS allowed), or with ``top`` between two segments of one; ``position``:
        the index of the next id in the caller's sequence (error messages name it)."""
        tables = getattr(vocab, "_grammar_tables", None)
        if tables is None:
            tables = vocab._grammar_tables = _Tables(vocab)
        self._t: _Tables = tables
        self.v = vocab
        self.pos = position
        self.mode = _TOP if top else _START
        self.m = ""
        self.size_left: tuple[str, ...] = ()
        self.sizes: list[int] = []
        self.h = self.w = self.t = self.n_q = 0
        self.col = self.row = self.frame = 0
        self.s = self.k = 0
        self.T = -1
        self.delay = False

    def copy(self) -> GrammarState:
        g = GrammarState.__new__(GrammarState)
        for name in GrammarState.__slots__:
            setattr(g, name, getattr(self, name))
        g.sizes = list(self.sizes)
        return g

    # ----- queries --------------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """True where the sequence may end (top level, or after EOS)."""
        return self.mode in (_START, _TOP, _DONE)

    @property
    def finished(self) -> bool:
        """True after EOS (only padding may follow): stop sampling."""
        return self.mode == _DONE

    @property
    def modality(self) -> str:
        """The segment being written ("" at top level)."""
        return self.m if self.mode not in (_START, _TOP, _DONE) else ""

    def allowed_ranges(self) -> Ranges:
        t = self._t
        mode = self.mode
        if mode == _TOP:
            return t.top
        if mode == _START:
            return t.start
        if mode == _DONE:
            return t.done
        if mode == _TEXT:
            return t.text
        if mode == _SIZE:
            return t.size[self.size_left[0]]
        if mode == _GRID:
            if self.col == self.w * self.n_q:
                return t.eor
            if self.m == "video" and self.row < t.image_rows:
                return t.level["image"][self.col % self.n_q]
            return t.level[self.m][self.col % self.n_q]
        if mode == _EOF:
            return t.eof
        if mode == _END:
            return t.end[self.m]
        # audio
        k, s = self.k, self.s
        if not self.delay:
            return t.level_or_end[self.m][0] if (k == 0 and s >= 1) else t.level[self.m][k]
        if self.T >= 0:
            if k == 0 and s == self.T + self.n_q - 1:
                return t.end[self.m]
            return t.level[self.m][k] if 0 <= s - k < self.T else t.pad
        if s < k:
            return t.pad
        if k == 0 and s >= 1:
            return t.level_or_pad[self.m][0]
        return t.level[self.m][k]

    def expected(self) -> str:
        """What may come next, in words (for error messages)."""
        mode, m = self.mode, self.m.upper()
        if mode in (_START, _TOP):
            return ("BOS, " if mode == _START else "") + "UNCOND, EOS or a BEGIN token"
        if mode == _DONE:
            return "padding (only padding may follow EOS)"
        if mode == _TEXT:
            return "a text id or END_TEXT"
        if mode == _SIZE:
            return {"h": "a height token", "w": "a width token", "f": "a frames token"}[self.size_left[0]]
        if mode == _GRID:
            where = f"row {self.row + 1} of {self.h}" + (f", frame {self.frame + 1} of {self.t}" if m == "VIDEO" else "")
            if self.col == self.w * self.n_q:
                return f"EOR closing {where} ({self.w} codes a row)"
            if m == "VIDEO" and self.row < self._t.image_rows:
                return f"an IMAGE code of level {self.col % self.n_q} (the video's image rows) in {where}"
            return f"a {m} code of level {self.col % self.n_q} in {where}"
        if mode == _EOF:
            return f"EOF after {self.h} rows of frame {self.frame + 1} of {self.t}"
        if mode == _END:
            sizes = f"{self.t}x{self.h}x{self.w}" if m == "VIDEO" else f"{self.h}x{self.w}"
            return f"END_{m} (the size tokens say {sizes})"
        return f"an AUDIO code of level {self.k}, DELAY_PAD or END_AUDIO as the pattern allows"

    def is_allowed(self, i: int) -> bool:
        return any(lo <= i < hi for lo, hi in self.allowed_ranges())

    def allowed_mask(self, device: torch.device | str | None = None) -> Tensor:
        """Bool (V,) of the allowed next ids (a cached tensor shared between states: do not modify)."""
        r = self.allowed_ranges()
        key = (r, str(device))
        mask = self._t.masks.get(key)
        if mask is None:
            mask = torch.zeros(self._t.V, dtype=torch.bool)
            for lo, hi in r:
                mask[lo:hi] = True
            mask = mask.to(device) if device is not None else mask
            self._t.masks[key] = mask
        return mask

    @staticmethod
    def batch_mask(states: list[GrammarState], device: torch.device | str | None = None) -> Tensor:
        """Bool (B, V) allowed-next masks of a batch of states (for ``logits.masked_fill(~mask, -inf)``)."""
        return torch.stack([g.allowed_mask(device) for g in states])

    # ----- transitions ------------------------------------------------------------------------------
    def step(self, i: int) -> GrammarState:
        """Consume one id (VocabularyError naming the position when it is not allowed); returns self."""
        i = int(i)
        if not self.is_allowed(i):
            ranges = ", ".join(f"[{lo},{hi})" for lo, hi in self.allowed_ranges())
            raise VocabularyError(f"expected {self.expected()}, got id {i} ({self.v.token_name(i)}); allowed: "
                                  f"{ranges}", position=self.pos)
        self._advance(i)
        self.pos += 1
        return self

    # ----- runs of ids whose next state does not depend on their values ---------------------------------
    def run_bounds(self, limit: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(lo, hi) int64 arrays: the one allowed range ``[lo[k], hi[k])`` of each of the next ``len(lo) <=
        limit`` ids, while every allowed id leads to the same next state (text ids, an image / video grid up to
        its END, padding after EOS); None where the next id decides the way on (top level, size tokens, audio,
        END). :meth:`skip` then consumes a checked prefix: a parser checks a whole body in one comparison."""
        t, mode = self._t, self.mode
        if mode == _DONE:
            return np.full(limit, t.done[0][0], np.int64), np.full(limit, t.done[0][1], np.int64)
        if mode == _TEXT:
            e = self.v.entries["text"]
            return np.full(limit, e.offset, np.int64), np.full(limit, e.stop, np.int64)
        if mode != _GRID:
            return None
        row_len = self.w * self.n_q + 1
        frame_len = self.h * row_len + (self.m == "video")
        done = self.frame * frame_len + self.row * row_len + self.col  # ids of the body consumed so far
        p = done + np.arange(min(limit, self.t * frame_len - done), dtype=np.int64)
        r = p % frame_len
        c = r % row_len
        levels = np.array([rng[0] for rng in t.level[self.m]], dtype=np.int64)  # (n_q, 2)
        lo, hi = levels[c % self.n_q, 0], levels[c % self.n_q, 1]
        if self.m == "video" and t.image_rows:  # the first rows of every frame take the image codec's ids
            image = np.array([rng[0] for rng in t.level["image"]], dtype=np.int64)
            shared = r // row_len < t.image_rows
            lo = np.where(shared, image[c % self.n_q, 0], lo)
            hi = np.where(shared, image[c % self.n_q, 1], hi)
        eor, eof = c == row_len - 1, r == frame_len - 1 if self.m == "video" else np.zeros(len(p), bool)
        lo = np.where(eor, t.eor[0][0], lo)
        hi = np.where(eor, t.eor[0][1], hi)
        return np.where(eof, t.eof[0][0], lo), np.where(eof, t.eof[0][1], hi)

    def skip(self, n: int) -> GrammarState:
        """Consume ``n`` ids that :meth:`run_bounds` allowed (the caller checked them); returns self."""
        if n and self.mode == _GRID:
            row_len = self.w * self.n_q + 1
            frame_len = self.h * row_len + (self.m == "video")
            p = self.frame * frame_len + self.row * row_len + self.col + n
            if p == self.t * frame_len:  # the whole grid: END comes next
                self.mode, self.frame, self.row, self.col = _END, (self.t if self.m == "video" else 0), 0, 0
                if self.m == "image":
                    self.row = self.h
            else:
                self.frame, r = divmod(p, frame_len)
                if r == self.h * row_len:  # after the last EOR of a frame: EOF comes next
                    self.mode, self.row, self.col = _EOF, self.h, 0
                else:
                    self.row, self.col = divmod(r, row_len)
        elif n and self.mode not in (_TEXT, _DONE):
            raise ValueError(f"skip({n}) where run_bounds() is None")
        self.pos += n
        return self

    def step_many(self, ids) -> GrammarState:
        for i in ids:
            self.step(int(i))
        return self

    def _advance(self, i: int) -> None:
        sp = self.v.specials
        mode = self.mode
        if mode in (_START, _TOP):
            if i == sp.bos or i == sp.uncond:
                self.mode = _TOP
            elif i == sp.eos:
                self.mode = _DONE
            else:
                m = self._t.begin_to_modality[i]
                self.m = m
                if m == "text":
                    self.mode = _TEXT
                elif m == "audio":
                    e = self.v.entries[m]
                    self.mode = _AUDIO
                    self.n_q = e.num_codebooks
                    self.delay = self.v.audio_pattern == "delay" and self.n_q > 1
                    self.s = self.k = 0
                    self.T = -1
                else:
                    self.mode = _SIZE
                    self.size_left = ("h", "w") if m == "image" else ("f", "h", "w")
                    self.sizes = []
            return
        if mode == _DONE:
            return
        if mode == _TEXT:
            if i == sp.end("text"):
                self.mode = _TOP
            return
        if mode == _SIZE:
            which = self.size_left[0]
            base = {"h": sp.height_base, "w": sp.width_base, "f": sp.frames_base}[which]
            self.sizes.append(i - base + 1)
            self.size_left = self.size_left[1:]
            if not self.size_left:
                if self.m == "image":
                    self.h, self.w = self.sizes
                    self.t = 1
                else:
                    self.t, self.h, self.w = self.sizes
                self.n_q = self.v.entries[self.m].num_codebooks
                self.mode = _GRID
                self.col = self.row = self.frame = 0
            return
        if mode == _GRID:
            if self.col < self.w * self.n_q:
                self.col += 1
                return
            # EOR closes a row
            self.col = 0
            self.row += 1
            if self.row == self.h:
                self.mode = _END if self.m == "image" else _EOF
            return
        if mode == _EOF:
            self.frame += 1
            self.row = 0
            self.mode = _END if self.frame == self.t else _GRID
            return
        if mode == _END:
            self.mode = _TOP
            return
        # audio
        if i == sp.end(self.m):
            self.mode = _TOP
            return
        if self.delay and self.T < 0 and self.k == 0 and i == sp.delay_pad:
            self.T = self.s
        self.k += 1
        if self.k == self.n_q:
            self.k = 0
            self.s += 1
