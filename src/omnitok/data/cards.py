"""Dataset cards: reading, checking and printing the ``card.json`` the builder writes.

A card holds: ``name``, ``source``, ``version``, ``licence``, ``description``, ``modality``, ``counts`` (per
split), ``total``, ``bytes`` (per split), ``total_bytes``, ``shards`` (file, split, count, bytes, sha256),
``build`` (parameters: size, limit, seed, splits, shard_size, ...), ``versions`` (omnitok, python, numpy,
``npm:<pkg>``, ``deb:<pkg>``, ``pypi:<dist>``), ``build_seconds``, ``built_at``; a speech build also has
``speakers`` (held-out voices, training voices, clips per split per voice; data/sources/speech.py).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from omnitok.data.build import dataset_cards, load_card
from omnitok.data.paths import dataset_dir

__all__ = ["format_info", "human_bytes", "speaker_summary", "verify_card"]

REQUIRED_FIELDS = ("name", "source", "version", "licence", "counts", "shards", "versions")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def verify_card(name: str, root: str | os.PathLike | None = None) -> list[str]:
    """Problems with a built dataset (missing fields or shards, checksum mismatches); [] when all is well."""
    card = load_card(name, root)
    if card is None:
        return [f"{name}: not built (no card.json under {dataset_dir(name, root)})"]
    problems = [f"{name}: card lacks {f!r}" for f in REQUIRED_FIELDS if f not in card]
    folder = dataset_dir(name, root)
    for shard in card.get("shards", []):
        path = Path(folder) / shard["file"]
        if not path.is_file():
            problems.append(f"{name}: shard {path} is missing")
            continue
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != shard["sha256"]:
            problems.append(f"{name}: shard {path} does not match its sha256 in the card")
    return problems


def format_info(cards: list[dict[str, Any]] | None = None, root: str | os.PathLike | None = None) -> str:
    """A text table of built datasets: counts per split, size on disk, build time, licence."""
    cards = dataset_cards(root) if cards is None else cards
    if not cards:
        return "no datasets built yet (run `omnitok data build all`)"
    rows = [("name", "modality", "train", "val", "test", "total", "size", "shards", "built in", "licence")]
    for c in cards:
        counts = c.get("counts", {})
        rows.append((
            c.get("name", "?"),
            c.get("modality", "?"),
            str(counts.get("train", 0)),
            str(counts.get("val", 0)),
            str(counts.get("test", 0)),
            str(c.get("total", sum(counts.values()))),
            human_bytes(c.get("total_bytes", 0)),
            str(len(c.get("shards", []))),
            f"{c.get('build_seconds', 0):.0f} s",
            (c.get("licence") or "")[:60],
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines += [line for c in cards if (line := speaker_summary(c))]
    return "\n".join(lines)


def speaker_summary(card: dict[str, Any]) -> str | None:
    """One line on a speech card's voices: how many train, which are held out and their val/test clips."""
    sp = card.get("speakers")
    if not sp:
        return None
    per = sp.get("clips_per_voice") or {}
    unseen = sp.get("unseen_voices") or []
    held = sum(n for split, row in per.items() if split != "train" for v, n in row.items() if v in unseen)
    total = sum(n for split, row in per.items() if split != "train" for n in row.values())
    line = (f"{card.get('name', '?')}: {len(sp.get('train_voices') or [])} voices in train, "
            f"{len({v for row in per.values() for v in row})} in all")
    if sp.get("heldout_voices"):
        line += (f"; held out of train ({', '.join(sp['heldout_voices'])}): {len(unseen)} voices, "
                 f"{held} of {total} val/test clips")
    return line + (f"; {sp['augmented']} clips with microphone effects" if sp.get("augmented") else "")
