"""Incremental document grammar for constrained decoding: O(1) work per token.

::

    g = vocab.grammar()              # at the start of a document
    for i in prompt_ids: g.step(i)   # VocabularyError (naming the position) on an id the grammar forbids
    mask = g.allowed_mask(device)    # bool (V,) of the ids allowed next (cached per state kind: do not modify)
    logits[~mask] = -inf
    g.step(sampled_id)

``allowed_ranges()`` gives the same set as a tuple of half-open ``(lo, hi)`` id ranges. The grammar is the
one written in :mod:`omnitok.vocab.vocabulary`; after ``<|h=h|> <|w=w|>`` it forces exactly ``w`` codes per
row (each at its codebook level), an EOR after each row and END_IMAGE after ``h`` rows, so a sampled image
always has the requested shape. ``complete`` is True where the document may stop (at top level or after EOS).
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnitok.vocab.errors import VocabularyError

__all__ = ["GrammarState"]

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
        self.top: Ranges = _merge(top)
        self.start: Ranges = _merge(top + [one(sp.bos)])
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
            self.level_or_pad[m] = [_merge([e.level_range(k), one(sp.delay_pad)]) for k in range(e.num_codebooks)]
        if "text" in vocab.entries:
            e = vocab.entries["text"]
            self.text: Ranges = _merge([(e.offset, e.stop), one(sp.end("text"))])
        self.level_or_end = {
            m: [_merge([e.level_range(0), one(sp.end(m))])] for m, e in vocab.entries.items()
        }
        self.begin_to_modality = {sp.begin(m): m for m in vocab.entries}
        self.masks: dict[tuple[Ranges, str], Tensor] = {}


def _merge(ranges: list[tuple[int, int]]) -> Ranges:
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

    def __init__(self, vocab) -> None:
        tables = getattr(vocab, "_grammar_tables", None)
        if tables is None:
            tables = vocab._grammar_tables = _Tables(vocab)
        self._t: _Tables = tables
        self.v = vocab
        self.pos = 0
        self.mode = _START
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
            raise VocabularyError(
                f"id {i} ({self.v.token_name(i)}) not allowed here; allowed: {ranges}", position=self.pos
            )
        self._advance(i)
        self.pos += 1
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
