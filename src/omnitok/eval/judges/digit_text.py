"""Which digit a caption or transcript names: :func:`digit_from_text` (the judge of image -> text and of the
speech judge's words)."""

from __future__ import annotations

import re

from omnitok.data.sources.digits import DIGIT_WORDS

__all__ = ["DIGIT_WORDS", "digit_from_text"]


def digit_from_text(text: str) -> int | None:
    """The first digit a caption names ("the digit seven", "a handwritten 7", "number 7", "oh") or None."""
    for tok in re.findall(r"[a-z]+|\d", text.lower()):
        if tok.isdigit():
            return int(tok)
        if tok in DIGIT_WORDS:
            return DIGIT_WORDS.index(tok)
        if tok == "oh":
            return 0
    return None
