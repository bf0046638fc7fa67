"""Media read correctly whatever their depth or palette, bounded before any allocation, out-of-range audio
normalised with a warning."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from omnitok.io.audio import read_audio, write_wav
from omnitok.io.image import MAX_PIXELS, decode_image, resize_tensor


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_16bit_greyscale_png_keeps_its_grey_levels():
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1024)  # 0 .. 64,512 of 65,535
    img = Image.fromarray(ramp)  # mode I;16
    assert img.mode.startswith("I;16")
    x = decode_image(_png(img))  # (3, 8, 8) in [-1, 1]
    expect = torch.from_numpy(np.round(ramp / 65535 * 255).astype(np.float32)) / 127.5 - 1
    torch.testing.assert_close(x[0], expect)
    assert float((x > 0.99).float().mean()) < 0.05  # not "almost all white" as Pillow's convert("RGB") gives


def test_palette_png_reads_its_colours():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = (255, 0, 0)
    rgb[2:] = (0, 0, 255)
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert pal.mode == "P"
    x = decode_image(_png(pal))
    assert torch.allclose(x[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    assert torch.allclose(x[:, 3, 3], torch.tensor([-1.0, -1.0, 1.0]))


def test_huge_image_refused_from_its_header():
    side = int(MAX_PIXELS ** 0.5) + 1
    data = _png(Image.new("L", (side, side)))  # a small file (one colour) that would decode to 16 M pixels
    with pytest.raises(ValueError, match=rf"huge.png: image of {side} x {side} pixels is larger"):
        decode_image(data, name="huge.png")


def test_resize_tensor_shape_and_range():
    x = torch.rand(3, 40, 30) * 2 - 1
    y = resize_tensor(x, 16)
    assert y.shape == (3, 16, 16) and y.min() >= -1 and y.max() <= 1
    assert resize_tensor(x[:1], (8, 4)).shape == (1, 8, 4)


def test_float_wav_out_of_range_is_normalised_with_a_warning():
    import soundfile as sf

    t = np.linspace(0, 1, 1600, dtype=np.float32)
    buf = io.BytesIO()
    sf.write(buf, 1e6 * np.sin(2 * np.pi * 5 * t), 16000, format="WAV", subtype="FLOAT")
    with pytest.warns(UserWarning, match=r"loud.wav: samples reach 1e\+06, outside \[-1, 1\]"):
        x, sr = read_audio(buf.getvalue(), name="loud.wav")
    assert sr == 16000 and abs(float(np.abs(x).max()) - 1.0) < 1e-4


def test_in_range_audio_is_untouched():
    x = (0.5 * np.sin(np.linspace(0, 20, 800))).astype(np.float32)
    y, _ = read_audio(write_wav(x, 8000, subtype="FLOAT"), name="ok.wav")
    np.testing.assert_allclose(y, x, atol=1e-6)


@pytest.mark.parametrize("data, match", [
    (b"", "empty audio file"),
    (b"RIFF\x00\x00\x00\x00WAVEjunk", "cannot decode audio"),
])
def test_broken_audio_one_line(data, match):
    with pytest.raises(ValueError, match=match):
        read_audio(data, name="bad.wav")
