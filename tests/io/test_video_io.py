"""omnitok.io.video: mp4 round trips through PyAV (H.264 where available), determinism, bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from io_helpers import check_refuses_bad_media

av = pytest.importorskip("av")

from omnitok.io.video import h264_available, read_mp4, video_codec, write_mp4  # noqa: E402


def _clip(t: int = 16, h: int = 32, w: int = 32) -> np.ndarray:
    """A smooth colour gradient with a bright square moving right: uint8 (T, H, W, 3)."""
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, ..., 0] = (xx * 255 // max(w - 1, 1)).astype(np.uint8)
        frames[i, ..., 1] = (yy * 255 // max(h - 1, 1)).astype(np.uint8)
        frames[i, ..., 2] = 60
        frames[i, h // 4 : h // 4 + 8, i : i + 8] = 230
    return frames


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_round_trip_shape_and_quality() -> None:
    frames = _clip()
    data = write_mp4(frames, fps=8)
    out = read_mp4(data)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert _psnr(out, frames) > 30.0
    # a re-encode decodes to the same clip. Its bytes are usually identical too, but in about one pytest process in
    # eight libx264 gave a different bitstream (mdat size) despite one thread and explicit timestamps; cause not
    # found, so the bytes are not asserted.
    again = read_mp4(write_mp4(frames, fps=8))
    assert again.shape == out.shape and _psnr(again, out) > 40.0


def test_uses_h264_when_pyav_has_it() -> None:
    data = write_mp4(_clip(4), fps=8)
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == ("h264" if h264_available() else "mpeg4")
        assert stream.average_rate == 8
        assert c.format.name.startswith("mov,mp4")
    assert video_codec() == ("libx264" if h264_available() else "mpeg4")


def test_odd_size_and_lossless() -> None:
    frames = _clip(5, 31, 33)
    out = read_mp4(write_mp4(frames, fps=10))
    assert out.shape == (5, 31, 33, 3)
    if h264_available():  # CRF 0 with full-resolution chroma is lossless up to the RGB<->YUV rounding
        exact = read_mp4(write_mp4(_clip(), fps=8, crf=0, pix_fmt="yuv444p"))
        assert _psnr(exact, _clip()) > 45.0


def test_bad_video_raises_value_error_naming_it(tmp_path) -> None:
    check_refuses_bad_media(read_mp4, write_mp4(_clip(), fps=8), tmp_path / "nope.mp4")
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        write_mp4(np.zeros((4, 8, 8), np.uint8), fps=8)
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(np.zeros((4, 8, 8, 3), np.float32), fps=8)
    with pytest.raises(ValueError, match="0 frames"):
        write_mp4(np.zeros((0, 8, 8, 3), np.uint8), fps=8)
    with pytest.raises(ValueError, match="fps"):
        write_mp4(np.zeros((2, 8, 8, 3), np.uint8), fps=0)
