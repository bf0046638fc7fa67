"""FrameCodec: every frame through the image codec (checked against the image codec called frame by frame),
its grid, folders, clear errors."""

from __future__ import annotations

import pytest
import torch

from omnitok.codecs import load_codec
from omnitok.codecs.builder import build_codec, load_preset
from omnitok.codecs.frames import FrameCodec
from omnitok.codecs.image import CodecOutput, ImageCodec

IMAGE = {"in_channels": 3, "channels": 8, "channel_mult": [1, 2, 2], "num_res_blocks": 1, "z_channels": 8,
         "quantizer": "fsq", "quantizer_kwargs": {"levels": [5, 5, 5]}}


def test_matches_the_image_codec_frame_by_frame():
    torch.manual_seed(0)
    img = ImageCodec(**IMAGE).eval()
    codec = FrameCodec.from_image_codec(img)
    x = torch.rand(2, 3, 3, 16, 16) * 2 - 1  # (B, C, T, H, W)
    codes = codec.encode(x)
    assert codes.shape == (2, 3, 4, 4, 1) and codec.code_grid((3, 3, 16, 16)) == (3, 4, 4)
    for t in range(3):
        assert torch.equal(codes[:, t], img.encode(x[:, :, t]))
    video = codec.decode(codes)
    for t in range(3):
        assert torch.allclose(video[:, :, t], img.decode(codes[:, t]), atol=1e-6)


def test_forward_folders_and_errors(tmp_path):
    codec = build_codec(load_preset("video-frames-debug"))
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    out = codec(x)
    assert isinstance(out, CodecOutput) and out.recon.shape == x.shape and out.codes.shape == (1, 5, 4, 4, 1)
    codec.eval().save_pretrained(tmp_path / "f")
    again = load_codec(tmp_path / "f")
    assert isinstance(again, FrameCodec) and torch.equal(again.encode(x), codec.encode(x))
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        codec.encode(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="shaped"):
        codec.decode(torch.zeros(5, 4, 4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        codec.code_grid((3, 5, 18, 18))
