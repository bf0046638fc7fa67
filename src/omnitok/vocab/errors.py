"""Errors raised by the vocabulary."""

from __future__ import annotations

__all__ = ["VocabularyError"]


class VocabularyError(ValueError):
    """An id sequence breaks the document grammar, or a vocabulary folder / codec does not match.

    ``position`` is the index of the offending id in the sequence (None when the error is not about a
    position, e.g. a weights-hash mismatch).
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        self.reason = message
        super().__init__(message if position is None else f"position {position}: {message}")
