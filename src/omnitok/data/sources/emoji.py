"""Emoji images in two styles, with names as captions and Unicode categories as labels.

* ``fluent-3d``: npm ``@lobehub/fluent-emoji-3d`` (MIT; about 3,391 WebP at 256 px, files named by code
  points such as ``1f600.webp``); the name comes from the code points through PyPI ``emoji``'s ``demojize``.
* ``twitter``: npm ``emoji-datasource-twitter`` (Twemoji 64 px PNGs, graphics CC-BY 4.0 by Twitter; the
  ``emoji.json`` index is MIT) with ``name``, ``short_names``, ``category``, ``subcategory``; skin-tone
  variations included.

RGBA is composited onto white and resized (Lanczos) to ``size`` (default 64) and stored as RGB PNG. The
caption is the CLDR name (``emoji.demojize``; e.g. "grinning face", "person biking: light skin tone"),
falling back to the data-source name. Category / subcategory come from ``emoji.json`` for both styles (matched
by code points, ignoring FE0F), so ``label`` is the category. Examples alternate between the styles so a
``--limit`` slice has both. Keys: ``fluent-<codepoints>`` / ``twitter-<codepoints>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Any

from omnitok.data.build import BuildContext
from omnitok.data.types import Example
from omnitok.io.image import encode_png, image_to_rgb_array, resize_rgb

NAME = "emoji"
FLUENT_PACKAGE, FLUENT_VERSION = "@lobehub/fluent-emoji-3d", "1.1.0"
TWITTER_PACKAGE, TWITTER_VERSION = "emoji-datasource-twitter", "16.0.0"
FLUENT_LICENCE = "MIT (Microsoft Fluent Emoji, packaged by LobeHub)"
TWITTER_LICENCE = "CC-BY-4.0 (Twemoji graphics by Twitter, Inc. and contributors); index MIT (iamcal/emoji-data)"
CARD = {
    "source": f"npm {FLUENT_PACKAGE}@{FLUENT_VERSION} + npm {TWITTER_PACKAGE}@{TWITTER_VERSION}",
    "version": f"{FLUENT_VERSION}+{TWITTER_VERSION}",
    "licence": f"fluent-3d: {FLUENT_LICENCE}; twitter: {TWITTER_LICENCE}",
    "description": "emoji images in two styles (fluent-3d, twitter), RGB on white, caption = emoji name, "
    "label = Unicode category",
    "modality": "image",
}
MODALITY = "image"
DEFAULT_SIZE = 64


def _codepoints(stem: str) -> list[int]:
    """``"1f3f4-e0067_e0062"`` -> [0x1f3f4, 0xe0067, 0xe0062]."""
    return [int(part, 16) for part in stem.replace("_", "-").split("-") if part]


def _norm(cps: list[int]) -> str:
    """Canonical code-point string without FE0F, e.g. ``"1f600"``, ``"0023-20e3"``."""
    return "-".join(f"{c:04x}" for c in cps if c != 0xFE0F)


def _cldr_name(cps: list[int]) -> str | None:
    import emoji

    chars = "".join(chr(c) for c in cps)
    for candidate in (chars, chars.replace("\ufe0f", ""), chars + "\ufe0f"):
        name = emoji.demojize(candidate, delimiters=("\x00", "\x00"))
        if name != candidate and name.startswith("\x00") and name.endswith("\x00") and name.count("\x00") == 2:
            return name.strip("\x00").replace("_", " ")
    return None


def _index(twitter_dir: Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """emoji.json entries, and normalised code points (base and skin variations) -> entry."""
    path = twitter_dir / "emoji.json"
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the emoji index ({e})") from e
    by_cps: dict[str, dict[str, Any]] = {}
    for e in entries:
        for unified in [e.get("unified"), e.get("non_qualified"),
                        *[v.get("unified") for v in (e.get("skin_variations") or {}).values()]]:
            if unified:
                by_cps.setdefault(_norm(_codepoints(unified.lower())), e)
    return entries, by_cps


def _image(path: Path, size: int) -> bytes:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            rgb = image_to_rgb_array(img)  # (H, W, 3) on white
    except Exception as e:  # Pillow raises several types for a bad file
        raise ValueError(f"{path}: cannot read emoji image ({e})") from e
    return encode_png(resize_rgb(rgb, size))


def _meta(style: str, cps: list[int], entry: dict[str, Any] | None, licence: str,
          fallback_name: str | None) -> dict[str, Any]:
    name = _cldr_name(cps) or (fallback_name or "").lower() or _norm(cps)
    meta: dict[str, Any] = {
        "caption": name,
        "name": name,
        "style": style,
        "codepoints": _norm(cps),
        "category": entry.get("category") if entry else None,
        "subcategory": entry.get("subcategory") if entry else None,
        "source": f"{NAME}/{style}",
        "licence": licence,
    }
    meta["label"] = meta["category"] or "unknown"
    if entry:
        meta["short_names"] = list(entry.get("short_names") or [])
        meta["datasource_name"] = entry.get("name")
    return meta


def _fluent(ctx: BuildContext, by_cps: dict[str, dict[str, Any]], size: int) -> Iterator[Example]:
    assets = ctx.npm_package(FLUENT_PACKAGE, FLUENT_VERSION) / "assets"
    seen: set[str] = set()
    for path in sorted(assets.glob("*.webp")):
        try:
            cps = _codepoints(path.stem)
        except ValueError:
            continue
        norm = _norm(cps)
        if norm in seen:  # the package holds a few duplicates such as 23-fe0f-20e3 / 0023-fe0f-20e3
            continue
        seen.add(norm)
        key = f"fluent-{norm}"
        meta = _meta("fluent-3d", cps, by_cps.get(norm), FLUENT_LICENCE, None)
        yield Example(key=key, files={} if ctx.is_done(key) else {"png": _image(path, size)}, meta=meta)


def _twitter(ctx: BuildContext, entries: list[dict[str, Any]], folder: Path, size: int) -> Iterator[Example]:
    images = folder / "img" / "twitter" / "64"
    seen: set[str] = set()
    for e in entries:
        variants = [(e["unified"], e.get("image"), e.get("has_img_twitter", True))]
        for v in (e.get("skin_variations") or {}).values():
            variants.append((v["unified"], v.get("image"), v.get("has_img_twitter", True)))
        for unified, image, has_img in variants:
            path = images / (image or f"{unified.lower()}.png")
            if not has_img:
                continue
            if not path.is_file():
                raise ValueError(f"{path} is missing from {TWITTER_PACKAGE}; reinstall it (delete {folder})")
            cps = _codepoints(unified.lower())
            if _norm(cps) in seen:
                continue
            seen.add(_norm(cps))
            key = f"twitter-{_norm(cps)}"
            meta = _meta("twitter", cps, e, TWITTER_LICENCE, e.get("name"))
            yield Example(key=key, files={} if ctx.is_done(key) else {"png": _image(path, size)}, meta=meta)


def iter_examples(ctx: BuildContext) -> Iterator[Example]:
    size = ctx.size or DEFAULT_SIZE
    ctx.python_package("emoji")
    ctx.python_package("pillow")
    folder = ctx.npm_package(TWITTER_PACKAGE, TWITTER_VERSION)
    entries, by_cps = _index(folder)
    ctx.set_total(3391 + sum(1 + len(e.get("skin_variations") or {}) for e in entries))
    produced = 0
    for pair in zip_longest(_fluent(ctx, by_cps, size), _twitter(ctx, entries, folder, size)):
        for ex in pair:
            if ex is None:
                continue
            if ctx.limit is not None and produced >= ctx.limit:
                return
            produced += 1
            yield ex
