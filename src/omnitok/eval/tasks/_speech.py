"""What the speech tasks (t2s, s2t, i2s, s2i) share: WER blocks per engine and the length of generated speech."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from omnitok.eval.settings import EvalSettings
from omnitok.eval.wer import corpus_wer

__all__ = ["UNTIL_END_SLACK", "audio_frames", "until_end", "wer_block"]

UNTIL_END_SLACK = 1.5  # with until_end: the cap on frames is 1.5x the group's mean reference duration


def wer_block(pairs: list[tuple[str, str]], engines: list[str]) -> dict[str, Any]:
    """{"wer", "n", "per_engine": {engine: {"wer", "n"}}} of (reference, hypothesis) pairs."""
    out: dict[str, Any] = {"wer": corpus_wer(pairs), "n": len(pairs)}
    by: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for e, p in zip(engines, pairs):
        by[e].append(p)
    out["per_engine"] = {e: {"wer": corpus_wer(v), "n": len(v)} for e, v in sorted(by.items())}
    return out


def until_end(s: EvalSettings, task: str) -> bool:
    """Whether the model ends the speech itself in ``task`` (its own setting wins over the audio modality's)."""
    for where in (task, "audio"):
        if "until_end" in (s.sampling.get(where) or {}):
            return bool(s.sampling[where]["until_end"])
    return False


def audio_frames(seconds: float, fps: float, s: EvalSettings, task: str) -> int:
    """Frames to generate for speech whose references last ``seconds`` on average: that length, or with
    ``until_end`` a cap of UNTIL_END_SLACK times it (the model ends the speech itself)."""
    return max(1, round(seconds * fps * (UNTIL_END_SLACK if until_end(s, task) else 1.0)))
