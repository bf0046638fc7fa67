"""Text members of data shards: UTF-8 bytes <-> str."""

from __future__ import annotations

__all__ = ["TEXT_EXTS", "decode_text"]

TEXT_EXTS = ("txt",)  # the text members a data shard may hold


def decode_text(data: bytes, *, name: str = "text") -> str:
    """UTF-8 bytes -> str (ValueError on invalid UTF-8)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{name}: text is not valid UTF-8 ({e})") from e
