"""The dataset builder: runs a source, splits its examples by key hash, writes tar shards and a card.

``build_dataset("digits")`` writes ``<root>/datasets/digits/{train,val,test}-000000.tar`` ... and ``card.json``.

Resumable: shards are numbered per split and filled in the order the source yields examples; a shard is
renamed into place only when full (or at the end), so after a kill the finished shards of each split hold a
prefix of that split's examples. A rebuild keeps them, skips their keys (``ctx.is_done(key)`` lets a source
skip expensive work too) and continues with the next shard number; the result is byte-identical to an
uninterrupted build. Build parameters live in ``build.json``; different parameters start the dataset afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from omnitok.data.paths import cache_root, dataset_dir, npm_package, npm_prefix, require_tool
from omnitok.data.shards import ShardWriter, read_shard_keys
from omnitok.data.splits import DEFAULT_SPLITS, parse_splits, split_of
from omnitok.data.types import Example

__all__ = ["BuildContext", "build_dataset", "dataset_cards", "load_card", "shard_paths"]

log = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 1000  # examples per shard
DEFAULT_SHARD_BYTES = 256 * 2**20  # a shard is closed once its payload passes this
_SHARD_RE = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{6})\.tar$")


@dataclass
class BuildContext:
    """What a source's ``iter_examples(ctx)`` gets.

    name:      dataset name (the registry name, e.g. "digits")
    root:      the cache root (``<root>/datasets/<name>`` is the output folder)
    size:      image side in pixels, or None when the source has no size (``DEFAULT_SIZE`` of the source)
    limit:     at most this many examples (None = all); a source should stop early when reached
    seed:      base seed; use ``ctx.rng(key)`` for per-example randomness that does not depend on order
    options:   source-specific string options (``omnitok data build NAME -o key=value``)
    splits:    the split fractions examples are assigned with (a source that draws something per split,
               e.g. speech's held-out voices, uses ``split_of(key, ctx.splits)``)
    card:      extra card fields a source fills while it yields (merged into ``card.json``)
    """

    name: str
    root: Path
    size: int | None = None
    limit: int | None = None
    seed: int = 0
    options: dict[str, str] = field(default_factory=dict)
    npm_root: Path | None = None
    allow_apt: bool | None = None
    done: frozenset[str] = frozenset()
    versions: dict[str, str] = field(default_factory=dict)
    splits: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SPLITS))
    card: dict[str, Any] = field(default_factory=dict)
    _progress: Any = field(default=None, repr=False)

    @property
    def work_dir(self) -> Path:
        """Scratch folder for this source (``<root>/work/<name>``), created on first use."""
        d = self.root / "work" / self.name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def npm_package(self, name: str, version: str) -> Path:
        """Install ``name@version`` with ``npm install --prefix`` into the cache (once); return its folder."""
        folder = npm_package(name, version, self.npm_root if self.npm_root is not None else npm_prefix(self.root))
        self.versions[f"npm:{name}"] = version
        return folder

    def require_tool(self, name: str, debian_pkg: str, path: str | os.PathLike | None = None) -> Path:
        """Check a system tool (or a data ``path`` of a Debian package); apt-get it when root and allowed,
        else raise MissingToolError saying ``apt-get install -y <debian_pkg>``. Records the package version."""
        found = require_tool(name, debian_pkg, path=path, allow_apt=self.allow_apt)
        version = _debian_version(debian_pkg)
        if version:
            self.versions[f"deb:{debian_pkg}"] = version
        return found

    def python_package(self, dist: str) -> str:
        """Record (and return) the installed version of a Python distribution the source uses."""
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError as e:
            raise ModuleNotFoundError(f"the Python package {dist} is needed: pip install {dist}") from e
        self.versions[f"pypi:{dist}"] = version
        return version

    def record_version(self, what: str, version: str) -> None:
        self.versions[what] = version

    def is_done(self, key: str) -> bool:
        """True when ``key`` is already in a finished shard (a resumed build); the source may skip it."""
        return key in self.done

    def rng(self, *parts: object) -> np.random.Generator:
        """A numpy Generator seeded from ``seed`` and ``parts`` (e.g. the key): same draws in any order."""
        text = "\x1f".join([str(self.seed), *map(str, parts)])
        return np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))

    def set_total(self, total: int) -> None:
        """Tell the progress bar how many examples to expect (capped by ``limit``)."""
        if self._progress is not None:
            self._progress.total = min(total, self.limit) if self.limit is not None else total
            self._progress.refresh()


def _debian_version(pkg: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        return None
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def shard_paths(folder: str | os.PathLike, split: str | None = None) -> list[Path]:
    """Finished shards of a dataset folder (optionally one split), sorted by split then index."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = _SHARD_RE.match(p.name)
        if m and (split is None or m["split"] == split):
            out.append(p)
    return sorted(out, key=lambda p: (p.name.split("-")[0], p.name))


def load_card(name: str, root: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The card of a built dataset, or None when it is not built (or not finished)."""
    path = dataset_dir(name, root) / "card.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def dataset_cards(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Cards of every finished dataset under the cache root, sorted by name."""
    base = cache_root(root) / "datasets"
    if not base.is_dir():
        return []
    cards = []
    for d in sorted(base.iterdir()):
        card = d / "card.json"
        if card.is_file():
            cards.append(json.loads(card.read_text()))
    return cards


def build_dataset(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    size: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    splits: str | Mapping[str, float] | None = None,
    shard_size: int | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    options: Mapping[str, str] | None = None,
    force: bool = False,
    progress: bool = True,
    npm_root: str | os.PathLike | None = None,
    allow_apt: bool | None = None,
    source: Any = None,
) -> dict[str, Any]:
    """Build (or finish building) dataset ``name``; returns its card (also written to ``card.json``).

    size:        image side for sources that have one (default: the source's ``DEFAULT_SIZE``)
    limit:       build only the first ``limit`` examples the source yields (tests, quick builds)
    splits:      fractions, default train=0.9,val=0.05,test=0.05 (or the source's ``SPLITS``)
    shard_size:  examples per shard (default: the source's ``SHARD_SIZE`` or 1000)
    force:       delete what is there and build again
    source:      a source module/object to use instead of the registry entry (tests)
    """
    from omnitok.data.sources import get_source

    mod = source if source is not None else get_source(name)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    default_size = getattr(mod, "DEFAULT_SIZE", None)
    size = (size if size is not None else default_size) if default_size is not None else None
    if size is not None and size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    fractions = parse_splits(splits if splits is not None else getattr(mod, "SPLITS", None))
    shard_size = int(shard_size or getattr(mod, "SHARD_SIZE", DEFAULT_SHARD_SIZE))
    card_info = dict(getattr(mod, "CARD", {}))
    params = {
        "name": name,
        "source_version": str(card_info.get("version", "")),
        "size": size,
        "limit": limit,
        "seed": seed,
        "splits": fractions,
        "shard_size": shard_size,
        "shard_bytes": shard_bytes,
        "options": dict(sorted((options or {}).items())),
    }
    root_path = cache_root(root)
    out = dataset_dir(name, root_path)
    build_json = out / "build.json"
    card_path = out / "card.json"

    if out.is_dir() and not force and build_json.is_file():
        previous = json.loads(build_json.read_text())
        if previous == params and card_path.is_file():
            card = json.loads(card_path.read_text())
            if all((out / s["file"]).is_file() for s in card.get("shards", [])):
                log.info("%s is already built at %s", name, out)
                return card
        if previous != params:
            log.warning("%s: build parameters changed; rebuilding %s from scratch", name, out)
            force = True
    if force and out.is_dir():
        for p in list(shard_paths(out)) + [card_path, build_json]:
            p.unlink(missing_ok=True)
        for p in out.glob("*.tmp"):
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    for p in out.glob("*.tmp"):  # half-written shards of a killed build
        p.unlink()
    card_path.unlink(missing_ok=True)
    _write_json(build_json, params)

    # Finished shards of a previous, interrupted build: keep them, skip their keys.
    done: set[str] = set()
    next_index: dict[str, int] = {s: 0 for s in fractions}
    for p in shard_paths(out):
        m = _SHARD_RE.match(p.name)
        assert m is not None
        if m["split"] not in fractions:
            p.unlink()
            continue
        try:
            done.update(read_shard_keys(p))
        except Exception as e:  # noqa: BLE001 - an unreadable finished shard is rebuilt from scratch
            raise RuntimeError(f"{p} is unreadable ({e}); rebuild with force=True / --force") from e
        next_index[m["split"]] = max(next_index[m["split"]], int(m["index"]) + 1)
    if done:
        log.info("%s: resuming, %d examples already in finished shards", name, len(done))

    ctx = BuildContext(
        name=name, root=root_path, size=size, limit=limit, seed=seed, options=dict(options or {}),
        npm_root=Path(npm_root) if npm_root is not None else None, allow_apt=allow_apt, done=frozenset(done),
        splits=dict(fractions),
    )
    writers: dict[str, ShardWriter] = {}
    seen: set[str] = set()
    t0 = time.time()
    bar = tqdm(total=limit, desc=f"build {name}", unit="ex", disable=not progress, dynamic_ncols=True)
    ctx._progress = bar
    try:
        examples: Iterable[Example] = mod.iter_examples(ctx)
        for ex in examples:
            if ex.key in seen:
                raise ValueError(f"source {name} yielded the key {ex.key!r} twice; keys must be unique")
            seen.add(ex.key)
            bar.update(1)
            if ex.key not in done:
                split = split_of(ex.key, fractions)
                w = writers.get(split)
                if w is None:
                    w = writers[split] = ShardWriter(out / f"{split}-{next_index[split]:06d}.tar")
                    next_index[split] += 1
                w.write(ex)
                if w.count >= shard_size or w.nbytes >= shard_bytes:
                    w.close()
                    del writers[split]
            if limit is not None and len(seen) >= limit:
                break
        for split in list(writers):
            writers.pop(split).close()
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    finally:
        bar.close()
    missing = done - seen
    if missing:
        raise RuntimeError(f"{name}: {len(missing)} keys in finished shards were not produced this time "
                           f"(e.g. {sorted(missing)[:3]}); the source is not deterministic, rebuild with --force")

    card = _make_card(name, out, params, {**card_info, **ctx.card}, ctx.versions, time.time() - t0)
    _write_json(card_path, card)
    return card


def _make_card(name: str, out: Path, params: dict[str, Any], info: dict[str, Any],
               versions: dict[str, str], seconds: float) -> dict[str, Any]:
    shards = []
    counts: dict[str, int] = {s: 0 for s in params["splits"]}
    sizes: dict[str, int] = {s: 0 for s in params["splits"]}
    for p in shard_paths(out):
        split = p.name.split("-")[0]
        n = len(read_shard_keys(p))
        nbytes = p.stat().st_size
        counts[split] = counts.get(split, 0) + n
        sizes[split] = sizes.get(split, 0) + nbytes
        shards.append({"file": p.name, "split": split, "count": n, "bytes": nbytes, "sha256": _sha256(p)})
    try:
        omnitok_version = metadata.version("omnitok")
    except metadata.PackageNotFoundError:
        omnitok_version = "unknown"
    all_versions = {"omnitok": omnitok_version, "python": sys.version.split()[0], "numpy": np.__version__}
    all_versions.update(sorted(versions.items()))
    return {
        "name": name,
        **info,
        "counts": counts,
        "total": sum(counts.values()),
        "bytes": sizes,
        "total_bytes": sum(sizes.values()),
        "shards": shards,
        "build": params,
        "versions": all_versions,
        "build_seconds": round(seconds, 2),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
