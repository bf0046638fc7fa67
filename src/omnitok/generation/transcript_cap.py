"""A transcript never runs on: the text after a speech prompt gets at most as many ids as the speech can hold.

A model that has not learnt to end a transcript (a voice it never heard, a noisy clip) keeps writing digits
until ``max_new_tokens``. Speech says only so much per second, so the text generated right after an audio
segment is capped at ``ceil(TEXT_IDS_PER_SECOND * seconds) + TEXT_IDS_SLACK`` ids, END included.

The bound was measured, not guessed: over 400 clips of every flite voice and 77 espeak-ng voices at 0.8-1.25x
speed (digit strings, single digits, emoji names and sentences; ``docs/experiments.md``, 2026-12-03), the
quickstart's 1,024-id text codec needed at most 10.4 text ids per second of audio (a 12-id sentence in 1.15 s,
flite kal16 at 1.25x), 99th percentile 8.0, median 2.3. 12 ids/s is 1.15x the fastest clip; the 4 slack ids
cover END and a word cut at the clip's edge. A codec with a much finer text vocabulary may need more: pass
``ids_per_second``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from omnitok.vocab.document import Audio, Segment

__all__ = ["TEXT_IDS_PER_SECOND", "TEXT_IDS_SLACK", "audio_seconds", "transcript_cap"]

TEXT_IDS_PER_SECOND = 12.0
TEXT_IDS_SLACK = 4


def audio_seconds(segment: Segment, frame_rate: float | None) -> float | None:
    """Duration of an audio segment from its codes (T frames / frame rate); None when it is not audio, has no
    codes yet or the frame rate is unknown."""
    if not isinstance(segment, Audio) or segment.codes is None or not frame_rate:
        return None
    return int(segment.codes.shape[0]) / float(frame_rate)


def transcript_cap(
    prompt: Sequence[Segment],
    frame_rate: float | None,
    ids_per_second: float = TEXT_IDS_PER_SECOND,
    slack: int = TEXT_IDS_SLACK,
) -> int | None:
    """The most text ids (END included) to generate after ``prompt``, or None when its last segment is not
    speech with codes (any other prompt keeps ``max_new_tokens``)."""
    if not prompt:
        return None
    seconds = audio_seconds(prompt[-1], frame_rate)
    if seconds is None:
        return None
    return math.ceil(ids_per_second * seconds) + slack
