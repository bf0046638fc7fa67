"""Microphone augmentation: each effect against what it should do to a sine, noise or an impulse."""

from __future__ import annotations

import numpy as np
import pytest

from omnitok.data import audio_augment as aa

SR = 16000


def sine(freq: float, seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec)) * SR / len(x)


def test_speed_is_faster_and_higher() -> None:
    x = sine(400.0)
    y = aa.speed(x, 1.1, SR)
    assert abs(len(y) - len(x) / 1.1) <= 1
    assert peak_hz(y) == pytest.approx(440.0, abs=3.0)
    assert aa.speed(x, 1.0, SR) is not x and np.array_equal(aa.speed(x, 1.0, SR), x)


def test_time_stretch_keeps_the_pitch() -> None:
    x = sine(500.0)
    y = aa.time_stretch(x, 0.8)
    assert len(y) == round(len(x) / 0.8)
    assert peak_hz(y) == pytest.approx(500.0, abs=3.0)
    # the stretched tone keeps its level (no holes, no doubling from the overlap-add)
    mid = y[len(y) // 4 : 3 * len(y) // 4]
    assert np.sqrt(np.mean(mid**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.1)


@pytest.mark.parametrize("semitones", [3.0, -2.0])
def test_pitch_shift_moves_the_frequency_not_the_length(semitones: float) -> None:
    x = sine(440.0)
    y = aa.pitch_shift(x, semitones, SR)
    assert len(y) == len(x)
    ratio = round(2 ** (semitones / 12), 2)
    assert peak_hz(y) == pytest.approx(440.0 * ratio, abs=4.0)
    with pytest.raises(ValueError, match="semitones"):
        aa.pitch_shift(x, 13.0, SR)


def test_gain_scales_and_clips() -> None:
    x = sine(300.0, amp=0.1)
    assert np.abs(aa.gain(x, 20.0 * np.log10(2))).max() == pytest.approx(0.2, rel=1e-3)
    assert np.abs(aa.gain(x, 40.0)).max() == 1.0  # 0.1 * 100 clipped


@pytest.mark.parametrize("snr", [5.0, 20.0])
def test_add_noise_hits_the_snr(snr: float) -> None:
    x = sine(300.0, amp=0.1)
    y = aa.add_noise(x, snr, np.random.default_rng(0), "pink")
    n = y - x
    measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(n.astype(np.float64) ** 2))
    assert measured == pytest.approx(snr, abs=0.3)
    assert np.array_equal(
        aa.add_noise(np.zeros(100, np.float32), 10.0, np.random.default_rng(0)), np.zeros(100)
    )


@pytest.mark.parametrize(("colour", "ratio"), [("white", 10.0), ("pink", 1.0), ("brown", 0.1)])
def test_noise_colours(colour: str, ratio: float) -> None:
    """Power in the octave 1-2 kHz over the octave 100-200 Hz: 10 for white, 1 for pink (1/f), 0.1 for brown."""
    w = aa.noise(SR * 4, colour, np.random.default_rng(1))
    assert np.sqrt(np.mean(w.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)
    p = np.abs(np.fft.rfft(w)) ** 2
    f = np.fft.rfftfreq(len(w), 1 / SR)
    band = lambda lo, hi: p[(f >= lo) & (f < hi)].sum()  # noqa: E731
    assert band(1000, 2000) / band(100, 200) == pytest.approx(ratio, rel=0.25)


def test_reverb_tail_decays_at_rt60() -> None:
    rt60 = 0.4
    imp = np.zeros(SR, np.float32)
    imp[0] = 1.0
    y = aa.reverb(imp, rt60, np.random.default_rng(0), SR)
    assert len(y) == len(imp) and np.abs(y).max() == pytest.approx(1.0)
    energy = lambda t: float(np.mean(y[int(t * SR) : int(t * SR) + 400].astype(np.float64) ** 2))  # noqa: E731
    drop_db = 10 * np.log10(energy(0.05) / energy(0.05 + rt60 / 2))
    assert drop_db == pytest.approx(30.0, abs=4.0)  # half of the 60 dB in half the time
    x = sine(300.0)
    assert np.array_equal(aa.reverb(x, 0.0, np.random.default_rng(0), SR), x)


def test_draw_and_apply_are_deterministic() -> None:
    x = sine(250.0, 0.5)
    a = aa.draw(np.random.default_rng(5))
    assert a == aa.draw(np.random.default_rng(5))
    assert np.array_equal(aa.apply(x, a, SR), aa.apply(x, a, SR))
    assert {"gain_db", "seed"} <= set(a)
    off = aa.AugmentConfig(p_speed=0, p_pitch=0, p_reverb=0, p_noise=0, gain_range=(0.0, 0.0))
    p = aa.draw(np.random.default_rng(5), off)
    assert set(p) == {"gain_db", "seed"}
    assert np.array_equal(aa.apply(x, p, SR), x)
    # over many draws every effect is used at about its probability
    # (a speed that rounds to 1.00, 1 in 20 of the range, is left out)
    many = [aa.draw(np.random.default_rng(i)) for i in range(2000)]
    assert sum("speed" in d for d in many) / 2000 == pytest.approx(0.5 * 0.95, abs=0.04)
    assert sum("rt60" in d for d in many) / 2000 == pytest.approx(0.3, abs=0.04)


def test_bad_input_says_what() -> None:
    with pytest.raises(ValueError, match=r"speed: expected non-empty mono audio"):
        aa.speed(np.zeros((2, 10), np.float32), 1.1)
    with pytest.raises(ValueError, match="factor"):
        aa.speed(sine(100.0), 3.0)


def _band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1.0 / SR)
    return float(spec[(f >= lo) & (f < hi)].sum())


def test_band_limit_removes_what_a_narrow_channel_cannot_hold() -> None:
    # a 1 kHz tone passes an 8 kHz capture; a 6 kHz tone (above its 4 kHz Nyquist) does not
    x = sine(1000.0) + sine(6000.0)
    y = aa.band_limit(x, 8000, SR)
    assert y.shape == x.shape and y.dtype == np.float32
    assert _band_energy(y, 900, 1100) == pytest.approx(_band_energy(x, 900, 1100), rel=0.05)
    assert _band_energy(y, 5900, 6100) < 1e-3 * _band_energy(x, 5900, 6100)
    # a 12 kHz capture keeps a 5 kHz tone (its cut-off is 0.95 x 6 kHz) and still drops 6 kHz
    w = sine(5000.0) + sine(6000.0)
    z = aa.band_limit(w, 12000, SR)
    assert _band_energy(z, 4900, 5100) == pytest.approx(_band_energy(w, 4900, 5100), rel=0.05)
    assert _band_energy(z, 5900, 6100) < 1e-2 * _band_energy(w, 5900, 6100)
    assert np.array_equal(aa.band_limit(x, SR, SR), x)
    with pytest.raises(ValueError, match="band_limit: capture_rate"):
        aa.band_limit(x, 1000, SR)


def test_band_is_drawn_last_so_other_effects_stay() -> None:
    with_band = aa.AugmentConfig(p_band=0.5)
    draws = [(aa.draw(np.random.default_rng(i)), aa.draw(np.random.default_rng(i), with_band)) for i in range(400)]
    for old, new in draws:
        assert {k: v for k, v in new.items() if k != "band_hz"} == old
    bands = [new["band_hz"] for _, new in draws if "band_hz" in new]
    assert len(bands) / 400 == pytest.approx(0.5, abs=0.08)
    assert set(bands) <= {8000, 9000, 10000, 11000, 12000} and len(set(bands)) > 1
    x = sine(6000.0, 0.5)
    params = {"band_hz": 8000, "seed": 0}
    assert _band_energy(aa.apply(x, params, SR), 5900, 6100) < 1e-3 * _band_energy(x, 5900, 6100)


def test_time_stretch_never_reads_past_the_last_frame() -> None:
    # 1 / 1.12 and these lengths made np.arange overshoot its stop: an IndexError on the last frame
    for n in (5775, 5812, 12176):
        y = aa.time_stretch(np.full(n, 0.1, np.float32), 1.0 / 1.12)
        assert len(y) == round(n * 1.12)
    assert len(aa.pitch_shift(np.full(5775, 0.1, np.float32), 12 * np.log2(1.12), SR)) == 5775
