"""WebDataset tar shards: writing (atomic, byte-for-byte deterministic) and reading.

A shard is a plain tar whose members are ``<key>.<ext>``; the members of one example are adjacent and the meta
dict is ``<key>.json`` (the convention of WebDataset / img2dataset). The key is everything before the first dot.
A shard is written under ``<name>.tmp`` and renamed when complete, so a file named ``*.tar`` is never half-written.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omnitok.data.types import Example

__all__ = ["ShardWriter", "example_from_files", "iter_shard", "read_shard_keys", "write_shard"]


def _check_key(key: str) -> None:
    if not key or "." in key or "/" in key or "\\" in key:
        raise ValueError(f"example key must be non-empty without dots or slashes, got {key!r}")


class ShardWriter:
    """Write examples into one tar shard; ``close()`` renames ``path.tmp`` to ``path``.

    Members get mtime 0, uid/gid 0 and mode 0o644, and are written in the order given (meta last), so the
    same examples always give the same bytes (and the same sha256 in the dataset card).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.tmp_path = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.tmp_path, "wb")  # noqa: SIM115 - closed in close()
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.GNU_FORMAT)  # noqa: SIM115
        self.count = 0
        self.nbytes = 0
        self.keys: list[str] = []

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.addfile(info, io.BytesIO(data))
        self.nbytes += len(data)

    def write(self, example: Example) -> None:
        _check_key(example.key)
        for ext in sorted(example.files):
            if ext == "json":
                raise ValueError(f"example {example.key}: 'json' is reserved for meta; put it in example.meta")
            self._add(f"{example.key}.{ext}", example.files[ext])
        meta = json.dumps(example.meta, sort_keys=True, ensure_ascii=False).encode("utf-8")
        self._add(f"{example.key}.json", meta)
        self.count += 1
        self.keys.append(example.key)

    def close(self) -> Path:
        """Finish the tar, fsync and rename it into place; returns the final path."""
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the half-written temporary file."""
        with contextlib.suppress(Exception):  # best effort on an already broken file
            self._tar.close()
        self._file.close()
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_shard(path: str | os.PathLike, examples: list[Example]) -> Path:
    """Write ``examples`` into the shard ``path`` atomically."""
    with ShardWriter(path) as w:
        for ex in examples:
            w.write(ex)
    return Path(path)


def example_from_files(key: str, files: dict[str, bytes]) -> Example:
    """Group of tar members -> Example (``json`` member parsed into meta; invalid JSON raises ValueError)."""
    files = dict(files)
    raw = files.pop("json", None)
    meta: dict[str, Any] = {}
    if raw is not None:
        meta = json.loads(raw.decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError(f"{key}.json must hold a JSON object")
    return Example(key=key, files=files, meta=meta)


def iter_shard(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {ext: bytes})`` for each example of a tar shard, in stored order.

    A truncated or unreadable tar ends the iteration with a warning naming the shard (examples read so far are
    kept); it never raises mid-epoch.
    """
    path = Path(path)
    key: str | None = None
    group: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                k, dot, ext = base.partition(".")
                if not dot:
                    continue
                if key is not None and k != key:
                    yield key, group
                    group = {}
                key = k
                f = tar.extractfile(member)
                group[ext] = f.read() if f is not None else b""
    except (tarfile.TarError, OSError, EOFError) as e:
        warnings.warn(f"shard {path}: unreadable after key {key!r} ({e}); rest of the shard skipped",
                      RuntimeWarning, stacklevel=2)
        return
    if key is not None:
        yield key, group


def read_shard_keys(path: str | os.PathLike) -> list[str]:
    """The example keys of a shard, in order, reading only tar headers."""
    keys: list[str] = []
    with tarfile.open(path, mode="r:*") as tar:
        for member in tar:
            k = member.name.rsplit("/", 1)[-1].partition(".")[0]
            if member.isfile() and (not keys or keys[-1] != k):
                keys.append(k)
    return keys
