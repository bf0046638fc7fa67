"""Grammar-constrained decoding as a per-step table on the device: no host work per token.

When the target's layout is known before decoding starts (an image of h x w codes with an EOR after each row,
a video of t frames, audio of T frames laid out by the codebook pattern) every position's allowed id set is
known too. :func:`step_table` writes that down once, as the distinct additive masks ``bias`` (M, V) (0 where
allowed, -inf elsewhere) and the per-step choice ``index`` (S,), so the decode loop adds ``bias[index[s]]`` to
the logits with a gather and never consults the grammar (which lives in ``omnitok.vocab.grammar``) on the host.

The table is derived from the vocabulary's own encoder: encode a segment of the requested shape with dummy
codes, then every special id in it is forced, and every codec id allows its whole codebook level. The tests
replay every table against :class:`~omnitok.vocab.grammar.GrammarState`, so the two cannot drift apart.

Text has no fixed layout: its table allows text ids and END_TEXT at every step except the last, which forces
END_TEXT (so a sequence cut by ``max_new_tokens`` still decodes); the loop stops early once every row has
emitted END_TEXT, checked on the host only every few steps.

Audio can be of fixed length (exactly T frames, then END_AUDIO) or, with ``until_end=True``, end where the model
ends it, as an autoregressive TTS model predicts its own stop: END_AUDIO is then allowed at every whole-frame
boundary from ``min_frames`` on and forced after T frames (a one-codebook stream or the flatten pattern; the
delay pattern's tail of pads cannot be decided per step by a table).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from omnitok.vocab.document import Audio, Image, Video
from omnitok.vocab.grammar import Ranges, merge_ranges
from omnitok.vocab.vocabulary import Vocabulary

__all__ = ["StepTable", "prompt_head_length", "step_table"]



@dataclass
class StepTable:
    """Allowed ids per generated position: step s may emit ids where ``bias[index[s]] == 0``.

    ranges: the distinct allowed sets as half-open id ranges (``ranges[index[s]]``), for humans and tests.
    stop_id: an id after which a row is finished (END_TEXT for text), or None when the length is fixed.
    """

    bias: Tensor  # (M, V) float32, 0 or -inf
    index: Tensor  # (S,) long
    ranges: list[Ranges]
    stop_id: int | None = None

    @property
    def num_steps(self) -> int:
        return int(self.index.shape[0])

    def to(self, device: torch.device | str) -> StepTable:
        return StepTable(self.bias.to(device), self.index.to(device), self.ranges, self.stop_id)

    def step_bias(self, steps: Tensor | int) -> Tensor:
        """Bias rows for step(s): int -> (V,); (B,) or (B, L) long -> (B, V) / (B, L, V). Steps past the end
        reuse the last step's set."""
        if isinstance(steps, int):
            return self.bias[self.index[min(steps, self.num_steps - 1)]]
        return self.bias[self.index[steps.clamp(max=self.num_steps - 1)]]

    def forced(self) -> np.ndarray:
        """(S,) bool: steps whose set holds exactly one id."""
        one = np.array([len(r) == 1 and r[0][1] - r[0][0] == 1 for r in self.ranges])
        return one[self.index.cpu().numpy()]


def _masks(vocab: Vocabulary, ranges: list[Ranges]) -> Tensor:
    bias = torch.full((len(ranges), vocab.size), float("-inf"))
    for m, rs in enumerate(ranges):
        for lo, hi in rs:
            bias[m, lo:hi] = 0.0
    return bias


def prompt_head_length(target: str) -> int:
    """Ids of the target segment that the prompt already holds: BEGIN (+ the size tokens)."""
    return {"text": 1, "image": 3, "audio": 1, "video": 4}[target]


def step_table(vocab: Vocabulary, target: str, grid: Sequence[int] | None = None,
               max_new_tokens: int | None = None, until_end: bool = False, min_frames: int = 1) -> StepTable:
    """The allowed ids of each generated position after ``vocab.encode_prompt(..., target, grid)``.

    grid: (h, w) for image, (t, h, w) for video, (T,) time steps for audio; text takes ``max_new_tokens``
    (>= 1) instead. The table covers the target segment up to and including its END token.
    until_end (audio only): T is the most frames; END_AUDIO may also follow any frame from ``min_frames`` on
    (``stop_id`` is then END_AUDIO).
    """
    if until_end and target != "audio":
        raise ValueError(f"until_end is for audio (text always stops at END_TEXT), not {target!r}")
    if target == "text":
        if not max_new_tokens or max_new_tokens < 1:
            raise ValueError(f"text generation needs max_new_tokens >= 1, got {max_new_tokens}")
        e = vocab._entry("text")
        end = vocab.end_id("text")
        ranges: list[Ranges] = [merge_ranges([(e.offset, e.stop), (end, end + 1)]), ((end, end + 1),)]
        index = torch.zeros(max_new_tokens, dtype=torch.long)
        index[-1] = 1
        return StepTable(_masks(vocab, ranges), index, ranges, stop_id=end)
    e = vocab._entry(target)
    need = {"image": 2, "video": 3, "audio": 1}[target]
    if grid is None or len(grid) != need:
        raise ValueError(f"grid: a {target} target needs {need} sizes "
                         f"({'(h, w)' if target == 'image' else '(t, h, w)' if target == 'video' else '(T,)'}), "
                         f"got {grid!r}")
    shape = tuple(int(g) for g in grid)
    if min(shape) < 1:
        raise ValueError(f"grid sizes must be >= 1, got {shape}")
    zeros = torch.zeros(*shape, e.num_codebooks, dtype=torch.long)
    seg = {"image": Image, "video": Video, "audio": Audio}[target](codes=zeros)
    ids = vocab.encode_segment(seg)[prompt_head_length(target):]  # (S,) the generated part, END included
    level_of = {}
    shared = [vocab.entries["image"]] if target == "video" and e.image_rows else []  # the video's image rows
    for entry in [e, *shared]:
        for k in range(entry.num_codebooks):
            lo, hi = entry.level_range(k)
            level_of[lo] = (lo, hi)  # dummy code 0 of level k is the level's first id
    steps: list[Ranges] = [(level_of[i],) if i in level_of else ((i, i + 1),) for i in ids.tolist()]
    stop_id = None
    if until_end:  # END_AUDIO may also start any whole frame from min_frames on (step f * n_q starts frame f)
        n_q, T = e.num_codebooks, shape[0]
        if vocab.audio_pattern == "delay" and n_q > 1:
            raise ValueError(f"until_end: audio of {n_q} codebooks in the delay pattern has a tail of pads after "
                             "its last frame; use a one-codebook codec or the flatten pattern, or a fixed length")
        if not 1 <= min_frames <= T:
            raise ValueError(f"min_frames must be in 1..{T} (the grid's frames), got {min_frames}")
        stop_id = vocab.end_id("audio")
        for f in range(min_frames, T):
            steps[f * n_q] = merge_ranges([*steps[f * n_q], (stop_id, stop_id + 1)])
    ranges: list[Ranges] = []
    lookup: dict[Ranges, int] = {}
    index = torch.empty(len(steps), dtype=torch.long)
    for k, r in enumerate(steps):
        if r not in lookup:
            lookup[r] = len(ranges)
            ranges.append(r)
        index[k] = lookup[r]
    return StepTable(_masks(vocab, ranges), index, ranges, stop_id)
