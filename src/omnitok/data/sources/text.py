"""A plain-text corpus from three Debian packages, stored as ``.txt`` examples.

* ``fortunes`` (``/usr/share/games/fortunes``): one example per fortune (the ``%``-separated items), key
  ``fortune-<file>-<index>``. Licence: BSD (fortune-mod); quotations of varied authorship.
* ``bible-kjv`` (``bible -f gen1:1-rev22:21``): one example per chapter (1,189), one verse per line as
  ``<verse> <text>``, key ``kjv-<book>-<chapter>``. The KJV text is out of copyright; the ``bible`` program is GPL-2+.
* ``wordnet-base`` (``/usr/share/wordnet/data.{noun,verb,adj,adv}``): definitions, one line per synset
  ``<words> (<pos>): <gloss>``, 50 synsets per example, key ``wordnet-<pos>-<chunk>``. WordNet 3.0 licence
  (Princeton, permissive with notice).

The three streams are interleaved (round robin) so a ``--limit`` slice holds all three. ``meta``:
``source`` (fortunes / bible-kjv / wordnet), ``licence``, ``lines`` and per-source fields (file, book,
chapter, pos). ``read_fortunes`` / ``read_bible`` / ``read_wordnet`` are reusable (e.g. short sentences for
speech synthesis).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Any

from omnitok.data.build import BuildContext
from omnitok.data.types import Example

NAME = "text"
FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
LICENCES = {
    "fortunes": "BSD (Debian fortunes / fortune-mod); quotations of varied authorship",
    "bible-kjv": "public domain text (King James Version, 1611); bible-kjv program GPL-2+",
    "wordnet": "WordNet 3.0 licence (Princeton University; use and redistribution with notice)",
}
CARD = {
    "source": "Debian packages fortunes, bible-kjv, wordnet-base",
    "version": "1",
    "licence": "; ".join(f"{k}: {v}" for k, v in LICENCES.items()),
    "description": "English text: fortune cookies (one per example), the King James Bible (one chapter per "
    "example), WordNet definitions (50 synsets per example)",
    "modality": "text",
}
MODALITY = "text"
WORDNET_CHUNK = 50
POS_NAMES = {"noun": "noun", "verb": "verb", "adj": "adjective", "adv": "adverb"}
_VERSE = re.compile(r"^(?P<book>\d?[A-Za-z]+)(?P<chapter>\d+):(?P<verse>\d+)\s+(?P<text>.*)$")
_KEY_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_fortunes(folder: Path = FORTUNES_DIR) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(key, text, meta)`` for every fortune, files in sorted order (``.dat`` / ``.u8`` files skipped)."""
    for path in sorted(folder.iterdir()):
        if path.suffix or not path.is_file():
            continue
        items = re.split(r"^%\s*$", _decode(path.read_bytes()), flags=re.MULTILINE)
        index = 0
        for item in items:
            text = item.strip("\n").rstrip()
            if not text.strip():
                continue
            key = f"fortune-{_KEY_SAFE.sub('_', path.name)}-{index:05d}"
            index += 1
            yield key, text + "\n", {"source": "fortunes", "licence": LICENCES["fortunes"], "file": path.name}


def read_bible(bible: str | Path = "bible") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(key, text, meta)`` per chapter of the KJV from ``bible -f gen1:1-rev22:21``."""
    proc = subprocess.run([str(bible), "-f", "gen1:1-rev22:21"], capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`bible -f gen1:1-rev22:21` failed: {_decode(proc.stderr)[-500:]}")
    chapter: tuple[str, int] | None = None
    verses: list[str] = []

    def emit() -> tuple[str, str, dict[str, Any]]:
        assert chapter is not None
        book, number = chapter
        meta = {"source": "bible-kjv", "licence": LICENCES["bible-kjv"], "book": book, "chapter": number}
        return f"kjv-{book}-{number:03d}", "\n".join(verses) + "\n", meta

    for line in _decode(proc.stdout).splitlines():
        m = _VERSE.match(line.strip())
        if m is None:
            if verses and line.strip():  # a verse continued on the next line
                verses[-1] += " " + line.strip()
            continue
        here = (m["book"], int(m["chapter"]))
        if here != chapter and verses:
            yield emit()
            verses = []
        chapter = here
        verses.append(f"{m['verse']} {m['text'].strip()}")
    if verses:
        yield emit()


def _wordnet_lines(path: Path, pos: str) -> Iterator[str]:
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if raw.startswith(" ") or "|" not in raw:
            continue  # licence header
        head, _, gloss = raw.partition("|")
        fields = head.split()
        count = int(fields[3], 16)
        words = [re.sub(r"\([a-z]+\)$", "", w).replace("_", " ") for w in fields[4 : 4 + 2 * count : 2]]
        yield f"{', '.join(words)} ({POS_NAMES[pos]}): {gloss.strip()}"


def read_wordnet(folder: Path = WORDNET_DIR, chunk: int = WORDNET_CHUNK) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(key, text, meta)`` with ``chunk`` definitions per example, nouns, verbs, adjectives, adverbs."""
    for pos in POS_NAMES:
        lines = list(_wordnet_lines(folder / f"data.{pos}", pos))
        for i in range(0, len(lines), chunk):
            meta = {"source": "wordnet", "licence": LICENCES["wordnet"], "pos": POS_NAMES[pos]}
            yield f"wordnet-{pos}-{i // chunk:05d}", "\n".join(lines[i : i + chunk]) + "\n", meta


def iter_examples(ctx: BuildContext) -> Iterator[Example]:
    ctx.require_tool("fortunes", "fortunes", path=FORTUNES_DIR / "fortunes")
    bible = ctx.require_tool("bible", "bible-kjv")
    ctx.require_tool("wordnet", "wordnet-base", path=WORDNET_DIR / "data.noun")
    produced = 0
    streams = zip_longest(read_fortunes(), read_bible(bible), read_wordnet())
    for group in streams:
        for item in group:
            if item is None:
                continue
            if ctx.limit is not None and produced >= ctx.limit:
                return
            produced += 1
            key, text, meta = item
            meta = {**meta, "lines": text.count("\n")}
            yield Example(key=key, files={"txt": text.encode("utf-8")}, meta=meta)
