"""`omnitok encode` / `omnitok decode`: PNG and mp4 round trips through code files, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from omnitok.cli import main
from omnitok.codecs.image import ImageCodec
from omnitok.codecs.video import VideoCodec
from omnitok.io.codes import read_codes


@pytest.fixture(scope="module")
def image_codec(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("codec") / "img"
    codec = ImageCodec(channels=4, channel_mult=[1, 2, 2], z_channels=4, quantizer="fsq",
                       quantizer_kwargs={"levels": [4, 4]})
    digest = codec.save_pretrained(folder)
    return folder, digest


def _png(path, size=(16, 24), mode="RGBA"):
    rng = np.random.default_rng(0)
    channels = {"RGBA": 4, "RGB": 3, "L": 1}[mode]
    arr = rng.integers(0, 255, (size[0], size[1], channels), dtype=np.uint8)
    Image.fromarray(arr[..., 0] if channels == 1 else arr, mode=mode).save(path)
    return path


@pytest.mark.parametrize("mode", ["RGBA", "L"])
def test_png_round_trip(tmp_path, image_codec, mode):
    folder, digest = image_codec
    src = _png(tmp_path / "in.png", mode=mode)
    assert main(["encode", str(src), "--codec", str(folder), "--device", "cpu"]) == 0
    code_file = tmp_path / "in.codes.safetensors"
    codes, meta = read_codes(code_file)
    assert codes.shape == (4, 6, 1) and codes.dtype == torch.int64
    assert meta["codec_weights_sha256"] == digest and meta["modality"] == "image" and meta["source"] == "in.png"
    out = tmp_path / "out.png"
    assert main(["decode", str(code_file), "--codec", str(folder), "--out", str(out), "--device", "cpu"]) == 0
    img = Image.open(out)
    assert img.size == (24, 16) and img.mode == "RGB"
    # decoding is deterministic and re-encoding the same file gives the same codes
    assert main(["encode", str(src), "--codec", str(folder), "--out", str(tmp_path / "again.codes.safetensors")]) == 0
    assert torch.equal(read_codes(tmp_path / "again.codes.safetensors")[0], codes)


def test_encode_errors(tmp_path, image_codec, capsys):
    folder, _ = image_codec
    bad = _png(tmp_path / "odd.png", size=(15, 24), mode="RGB")
    assert main(["encode", str(bad), "--codec", str(folder)]) == 1
    assert "not divisible by the downsampling factor f=4" in capsys.readouterr().err
    assert main(["encode", str(bad), "--codec", str(folder), "--crop"]) == 0
    assert read_codes(tmp_path / "odd.codes.safetensors")[0].shape == (3, 6, 1)
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(_png(tmp_path / "full.png").read_bytes()[:60])
    assert main(["encode", str(trunc), "--codec", str(folder)]) == 1
    assert "trunc.png" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("hi")
    assert main(["encode", str(tmp_path / "x.txt"), "--codec", str(folder)]) == 1
    assert "unsupported file type" in capsys.readouterr().err


def test_decode_refuses_other_weights_and_bad_files(tmp_path, image_codec, capsys):
    folder, _ = image_codec
    src = _png(tmp_path / "a.png")
    assert main(["encode", str(src), "--codec", str(folder)]) == 0
    torch.manual_seed(1)
    other = tmp_path / "other"
    ImageCodec(channels=4, channel_mult=[1, 2, 2], z_channels=4, quantizer="fsq",
               quantizer_kwargs={"levels": [4, 4]}).save_pretrained(other)
    assert main(["decode", str(tmp_path / "a.codes.safetensors"), "--codec", str(other)]) == 1
    assert "made by codec weights" in capsys.readouterr().err
    assert main(["decode", str(tmp_path / "a.codes.safetensors"), "--codec", str(other), "--force"]) == 0
    (tmp_path / "junk.codes.safetensors").write_bytes(b"garbage")
    assert main(["decode", str(tmp_path / "junk.codes.safetensors"), "--codec", str(folder)]) == 1
    assert "cannot read code file" in capsys.readouterr().err


def test_mp4_round_trip(tmp_path):
    from omnitok.io.video import read_mp4, write_mp4

    torch.manual_seed(0)
    folder = tmp_path / "vid"
    VideoCodec(channels=4, channel_mult=[1, 2], z_channels=4, temporal_stride=2, quantizer="fsq",
               quantizer_kwargs={"levels": [4, 4]}).save_pretrained(folder)
    frames = np.random.default_rng(0).integers(0, 255, (6, 8, 8, 3), dtype=np.uint8)
    (tmp_path / "clip.mp4").write_bytes(write_mp4(frames, 8))
    assert main(["encode", str(tmp_path / "clip.mp4"), "--codec", str(folder)]) == 1  # 6 != 1 + 2k
    assert main(["encode", str(tmp_path / "clip.mp4"), "--codec", str(folder), "--trim"]) == 0
    codes, meta = read_codes(tmp_path / "clip.codes.safetensors")
    assert codes.shape == (3, 4, 4, 1) and meta["modality"] == "video"
    assert main(["decode", str(tmp_path / "clip.codes.safetensors"), "--codec", str(folder)]) == 0
    assert read_mp4((tmp_path / "clip.mp4").read_bytes()).shape == (6, 8, 8, 3)  # source untouched
    assert read_mp4((tmp_path / "clip.decoded.mp4").read_bytes()).shape == (5, 8, 8, 3)


def test_mp4_round_trip_global_motion(tmp_path):
    """--trim keeps the most frames a GlobalMotionCodec takes (1 + k * w: 7 of 8 frames at a 2 x 2 code grid)."""
    from omnitok.codecs.global_motion import GlobalMotionCodec
    from omnitok.io.video import read_mp4, write_mp4

    torch.manual_seed(0)
    folder = tmp_path / "gm"
    GlobalMotionCodec({"channels": 4, "channel_mult": [1, 2, 2], "z_channels": 4, "quantizer": "fsq",
                       "quantizer_kwargs": {"levels": [4, 4]}}).save_pretrained(folder)
    frames = np.random.default_rng(0).integers(0, 255, (8, 8, 8, 3), dtype=np.uint8)
    (tmp_path / "clip.mp4").write_bytes(write_mp4(frames, 8))
    assert main(["encode", str(tmp_path / "clip.mp4"), "--codec", str(folder)]) == 1  # 8 != 1 + 2k
    assert main(["encode", str(tmp_path / "clip.mp4"), "--codec", str(folder), "--trim"]) == 0
    codes, meta = read_codes(tmp_path / "clip.codes.safetensors")
    assert codes.shape == (1, 2 + 3, 2, 1) and meta["modality"] == "video"
    assert main(["decode", str(tmp_path / "clip.codes.safetensors"), "--codec", str(folder)]) == 0
    assert read_mp4((tmp_path / "clip.decoded.mp4").read_bytes()).shape == (7, 8, 8, 3)
