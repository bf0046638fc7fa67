"""What the speech tasks (t2s, s2t, i2s, s2i) share: WER blocks per engine (and per seen / unseen voice) and the
length of generated speech."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from omnitok.eval.settings import EvalSettings
from omnitok.eval.wer import corpus_wer

__all__ = ["UNTIL_END_SLACK", "audio_frames", "until_end", "voice_group", "wer_block"]

UNTIL_END_SLACK = 1.5  # with until_end: the cap on frames is 1.5x the group's mean reference duration


def voice_group(meta: dict[str, Any]) -> str | None:
    """"seen" / "unseen" for a clip of a speech build with held-out voices (meta ``heldout_voice``), else None."""
    if "heldout_voice" not in meta:
        return None
    return "unseen" if meta["heldout_voice"] else "seen"


def _per(keys: list[str] | list[str | None], pairs: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    by: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for k, p in zip(keys, pairs):
        if k is not None:
            by[k].append(p)
    return {k: {"wer": corpus_wer(v), "n": len(v)} for k, v in sorted(by.items())}


def wer_block(pairs: list[tuple[str, str]], engines: list[str], groups: list[str | None] | None = None,
              voices: list[str] | None = None) -> dict[str, Any]:
    """{"wer", "n", "per_engine": {engine: {"wer", "n"}}} of (reference, hypothesis) pairs; with ``groups``
    (:func:`voice_group` of each clip) also "per_voice_group" ({"seen": ..., "unseen": ...}), with ``voices``
    "per_voice"."""
    out: dict[str, Any] = {"wer": corpus_wer(pairs), "n": len(pairs), "per_engine": _per(engines, pairs)}
    if groups is not None and any(g is not None for g in groups):
        out["per_voice_group"] = _per(groups, pairs)
    if voices is not None:
        out["per_voice"] = _per(voices, pairs)
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
