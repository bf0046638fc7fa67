"""Helpers of the media io tests (tests/io is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def check_refuses_bad_media(read: Callable[..., Any], valid: bytes, missing: Path, junk_match: str = "junk") -> None:
    """What every media reader does with bad input: a ValueError that names it for the first half of a ``valid``
    file, for no bytes, for bytes of no known format (its message matching ``junk_match``) and for a ``missing``
    path."""
    with pytest.raises(ValueError, match="half.*(corrupt|truncated)"):
        read(valid[: len(valid) // 2], name="half")
    with pytest.raises(ValueError, match="empty"):
        read(b"", name="nothing")
    with pytest.raises(ValueError, match=junk_match):
        read(b"\x00\x01garbage" * 50, name="junk")
    with pytest.raises(ValueError, match=re.escape(str(missing))):
        read(missing)
