"""Word error rate: word-level Levenshtein distance / reference length, with a simple text normaliser."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["corpus_wer", "edit_distance", "normalize_text", "wer"]

_DIGITS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
           "7": "seven", "8": "eight", "9": "nine"}


def normalize_text(text: str) -> list[str]:
    """Lower-case, digits spelled out one by one, "oh" -> "zero", punctuation dropped (apostrophes kept)."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"\d", lambda m: f" {_DIGITS[m.group()]} ", text)
    words = re.sub(r"[^a-z' ]+", " ", text).split()
    return ["zero" if w == "oh" else w.strip("'") for w in words if w.strip("'")]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Minimum substitutions + insertions + deletions turning ``ref`` into ``hyp`` (O(len(ref) * len(hyp)))."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(reference: str, hypothesis: str) -> float:
    """WER of one utterance (normalised); an empty reference gives 0 for an empty hypothesis, else 1."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / len(ref)


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> float:
    """Sum of edit distances over the sum of reference lengths, for (reference, hypothesis) pairs."""
    errors = words = 0
    for reference, hypothesis in pairs:
        ref, hyp = normalize_text(reference), normalize_text(hypothesis)
        errors += edit_distance(ref, hyp)
        words += len(ref)
    return errors / words if words else 0.0
