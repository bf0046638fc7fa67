"""omnitok.io.audio: FLAC/WAV round trips, downmix, the numpy resampler against a naive reference, bad input."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from io_helpers import check_refuses_bad_media

sf = pytest.importorskip("soundfile")

from omnitok.io.audio import downmix, read_audio, resample, write_flac, write_wav  # noqa: E402


def _tone(freq: float, sr: int, seconds: float = 0.5) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


@pytest.mark.parametrize(("orig", "target"), [(22050, 16000), (16000, 44100), (48000, 16000), (16000, 24000)])
def test_resample_tone_matches_analytic(orig: int, target: int) -> None:
    y = resample(_tone(440.0, orig), orig, target)
    assert y.dtype == np.float32
    assert y.shape == (math.ceil(int(orig * 0.5) * target / orig),)
    ref = _tone(440.0, target)[: y.shape[0]]
    edge = target // 50  # the ends see zero padding
    assert np.abs(y[edge:-edge] - ref[edge:-edge]).max() < 1e-3


def test_resample_removes_content_above_the_new_nyquist() -> None:
    y = resample(_tone(10000.0, 22050), 22050, 16000)  # 10 kHz > 8 kHz Nyquist of 16 kHz
    assert np.sqrt(np.mean(y[400:-400] ** 2)) < 1e-3
    assert np.sqrt(np.mean(resample(_tone(7000.0, 22050), 22050, 16000)[400:-400] ** 2)) > 0.3


def test_resample_matches_naive_sum() -> None:
    """The polyphase filter bank equals y[n] = sum_k x[k] h(n * orig / target - k) computed directly."""
    from omnitok.io.audio import _sinc_kernels

    orig, target, width_zc, rolloff, beta = 441, 320, 16, 0.95, 8.6
    x = np.random.default_rng(0).standard_normal(2000).astype(np.float32)
    y = resample(x, orig, target, lowpass_width=width_zc, rolloff=rolloff, beta=beta)
    base = min(orig, target) * rolloff
    _, width = _sinc_kernels(orig, target, width_zc, rolloff, beta)
    for n in (0, 1, 7, 300, 777, y.shape[0] - 1):
        t_in = n * orig / target  # output sample n sits at this input time
        k = np.arange(math.floor(t_in) - width - 1, math.ceil(t_in) + width + 2)
        k = k[(k >= 0) & (k < x.shape[0])]
        u = np.clip((k - t_in) * base / orig, -width_zc, width_zc)
        h = np.sinc(u) * np.i0(beta * np.sqrt(1 - (u / width_zc) ** 2)) / np.i0(beta) * base / orig
        assert y[n] == pytest.approx(float(np.dot(x[k], h)), abs=1e-4)


def test_resample_same_rate_and_bad_args() -> None:
    x = _tone(300.0, 16000)
    np.testing.assert_array_equal(resample(x, 16000, 16000), x)
    with pytest.raises(ValueError, match="sample rates"):
        resample(x, 0, 16000)
    with pytest.raises(ValueError, match="mono"):
        resample(np.zeros((10, 2), np.float32), 16000, 8000)


def test_flac_and_wav_round_trip() -> None:
    x = _tone(440.0, 16000)
    for data in (write_flac(x, 16000), write_wav(x, 16000)):
        y, sr = read_audio(data)
        assert sr == 16000 and y.dtype == np.float32 and y.shape == x.shape
        assert np.abs(y - x).max() <= 1.0 / 32768 + 1e-6  # 16-bit quantisation
    assert sf.info(io.BytesIO(write_flac(x, 16000))).subtype == "PCM_16"


def test_read_resamples_and_downmixes(tmp_path) -> None:
    left, right = _tone(440.0, 22050), 0.25 * _tone(440.0, 22050)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 22050, subtype="FLOAT")
    y, sr = read_audio(path)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)
    assert sr == 22050
    y16, sr16 = read_audio(path, target_sr=16000)
    assert sr16 == 16000 and y16.shape == (math.ceil(len(left) * 16000 / 22050),)
    np.testing.assert_allclose(downmix(np.stack([left, right], axis=1)), (left + right) / 2, atol=1e-6)


def test_bad_audio_raises_value_error_naming_it(tmp_path) -> None:
    check_refuses_bad_media(read_audio, write_flac(_tone(440.0, 16000, 1.0), 16000), tmp_path / "missing.flac",
                            junk_match="junk.*cannot decode")
    wav = write_wav(_tone(440.0, 16000, 1.0), 16000)
    with pytest.raises(ValueError, match="clip-8: truncated WAV"):
        read_audio(wav[: len(wav) // 2], name="clip-8")
    with pytest.raises(ValueError, match="no samples"):
        buf = io.BytesIO()
        sf.write(buf, np.zeros(0, np.float32), 16000, format="WAV")
        read_audio(buf.getvalue(), name="silent")
    nan = _tone(440.0, 16000)
    nan[10] = np.nan
    buf = io.BytesIO()
    sf.write(buf, nan, 16000, format="WAV", subtype="FLOAT")
    with pytest.raises(ValueError, match="NaN"):
        read_audio(buf.getvalue(), name="nan")
    with pytest.raises(ValueError, match="NaN"):
        write_flac(nan, 16000)
    with pytest.raises(ValueError, match="empty"):
        write_flac(np.zeros(0, np.float32), 16000)
