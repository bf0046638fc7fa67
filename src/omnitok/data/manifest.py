"""A user's own data as a folder plus a JSONL manifest, read like a shard.

Each line of the manifest is a JSON object; media fields name files relative to the manifest's folder::

    {"image": "cats/001.png", "caption": "a cat on a mat"}
    {"audio": "clips/a.flac", "transcript": "hello there", "split": "val"}
    {"video": "v/clip.mp4", "caption": "a ball bouncing", "key": "clip-7"}
    {"text": "a whole document, inline"}            (or {"text_file": "docs/a.txt"})

Media fields: ``image`` (png/webp/jpg), ``audio`` (flac/wav), ``video`` (mp4), ``text_file`` (txt) and inline
``text``. Every other field goes into the example's meta (``caption``, ``transcript``, labels, ...).
The key is the ``key`` field, else ``<manifest stem>-<line number>``. A row's split is its ``split`` field;
a manifest without any ``split`` field is split by key hash like the built datasets.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST_NAME", "find_manifest", "iter_manifest", "write_manifest"]

MANIFEST_NAME = "manifest.jsonl"
MEDIA_FIELDS = {"image": None, "audio": None, "video": None, "text_file": "txt"}
_BAD_KEY = re.compile(r"[./\\\s]+")


def find_manifest(path: str | os.PathLike) -> Path | None:
    """``path`` itself when it is a .jsonl file, ``path/manifest.jsonl`` for a folder, else None."""
    p = Path(path)
    if p.is_file() and p.suffix == ".jsonl":
        return p
    if p.is_dir() and (p / MANIFEST_NAME).is_file():
        return p / MANIFEST_NAME
    return None


def _rows(manifest: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(manifest, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{manifest}:{lineno}: not valid JSON ({e})") from e
            if not isinstance(row, dict):
                raise ValueError(f"{manifest}:{lineno}: each line must be a JSON object")
            yield lineno, row


def manifest_has_splits(manifest: str | os.PathLike) -> bool:
    return any("split" in row for _, row in _rows(Path(manifest)))


def iter_manifest(manifest: str | os.PathLike, split: str | None = None,
                  splits: dict[str, float] | None = None) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {ext: bytes})`` like :func:`omnitok.data.shards.iter_shard` (meta as ``json`` bytes).

    ``split``: keep only rows of that split (``split`` field, else key hash with ``splits`` fractions).
    A missing media file is not an error here: the bytes are empty and the loader skips the example with
    a warning, like a corrupt file in a shard.
    """
    from omnitok.data.splits import split_of

    manifest = Path(manifest)
    folder = manifest.parent
    use_field = split is not None and manifest_has_splits(manifest)
    for lineno, row in _rows(manifest):
        key = str(row.get("key") or f"{manifest.stem}-{lineno:06d}")
        key = _BAD_KEY.sub("_", key)
        if split is not None:
            row_split = row.get("split") if use_field else split_of(key, splits)
            if row_split != split:
                continue
        files: dict[str, bytes] = {}
        meta: dict[str, Any] = {}
        for name, value in row.items():
            if name in MEDIA_FIELDS:
                file = folder / str(value)
                ext = MEDIA_FIELDS[name] or file.suffix.lstrip(".").lower() or name
                try:
                    files[ext] = file.read_bytes()
                except OSError:
                    files[ext] = b""
                meta[f"{name}_path"] = str(value)
            elif name == "text":
                files["txt"] = str(value).encode("utf-8")
            elif name != "key":
                meta[name] = value
        files["json"] = json.dumps(meta, ensure_ascii=False).encode("utf-8")
        yield key, files


def write_manifest(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Write rows as a JSONL manifest (helper for users and tests)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
