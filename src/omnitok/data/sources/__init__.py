"""Real data sources and their registry.

The source contract
-------------------
A source is a module in this package that defines::

    NAME: str                      # registry name, e.g. "digits"
    CARD: dict                     # {"source": ..., "version": ..., "licence": ..., "description": ...}
                                   # (version: of the upstream data; bump it to force rebuilds)
    def iter_examples(ctx: BuildContext) -> Iterator[Example]: ...

and may define::

    DEFAULT_SIZE: int | None       # image/video side used when ``--size`` is not given (None: no size)
    SPLITS: dict[str, float]       # split fractions (default train 0.9 / val 0.05 / test 0.05)
    SHARD_SIZE: int                # examples per shard (default 1000)
    MODALITY: str                  # "image" | "audio" | "video" | "text" (for ``omnitok data show``)

``iter_examples`` yields :class:`omnitok.data.types.Example` (key, files ``{ext: bytes}``, meta) in a
deterministic order with unique keys (no dots or slashes). ``meta`` holds ``caption`` (images, video) or
``transcript`` (audio) or nothing extra (text), plus ``label``/other labels, ``source`` and ``licence``.
It should stop after ``ctx.limit`` examples (the builder stops anyway), may skip keys for which
``ctx.is_done(key)`` is true (already in finished shards of a resumed build; skipping saves the work), and
should draw randomness from ``ctx.rng(key)`` so that an example does not depend on which others were built.

``BuildContext`` (omnitok.data.build) gives: ``root``, ``size``, ``limit``, ``seed``, ``options``,
``work_dir``, ``npm_package(name, version) -> Path``, ``require_tool(name, debian_pkg, path=None) -> Path``
(raises MissingToolError naming ``apt-get install -y <pkg>``), ``python_package(dist) -> str``,
``record_version(what, version)``, ``is_done(key)``, ``rng(*parts)``, ``set_total(n)``.

The builder (``omnitok.data.build.build_dataset``) splits by key hash, writes the shards and ``card.json``.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["SOURCES", "available_sources", "get_source", "register_source"]

# name -> module path (imported only when used, so a missing optional package affects only that source)
SOURCES: dict[str, str] = {
    "digits": "omnitok.data.sources.digits",
    "emoji": "omnitok.data.sources.emoji",
    "text": "omnitok.data.sources.text",
    "speech": "omnitok.data.sources.speech",
    "video": "omnitok.data.sources.video",
}


def register_source(name: str, module: str) -> None:
    """Add a source (a module path following the contract above) to the registry."""
    SOURCES[name] = module


def available_sources() -> list[str]:
    """Names of registered sources whose module exists."""
    out = []
    for name, module in SOURCES.items():
        if importlib.util.find_spec(module) is not None:
            out.append(name)
    return out


def get_source(name: str) -> ModuleType:
    """Import the source module ``name``; ValueError for an unknown name."""
    if name not in SOURCES:
        raise ValueError(f"unknown data source {name!r}; expected one of {sorted(SOURCES)}")
    mod = importlib.import_module(SOURCES[name])
    for attr in ("NAME", "CARD", "iter_examples"):
        if not hasattr(mod, attr):
            raise TypeError(f"data source module {SOURCES[name]} lacks {attr} (see omnitok.data.sources)")
    return mod
