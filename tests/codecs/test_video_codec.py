"""VideoCodec: grids for strides 1/2/4, causality (first frame alone, earlier codes ignore later frames),
image == one-frame video, bad input, save/load."""

from __future__ import annotations

import pytest
import torch

from omnitok.codecs.base import load_codec
from omnitok.codecs.video import VideoCodec


def tiny(stride: int = 2) -> VideoCodec:
    torch.manual_seed(0)
    return VideoCodec(channels=4, channel_mult=[1, 1], z_channels=4, temporal_stride=stride,
                      quantizer="fsq", quantizer_kwargs={"levels": [5, 5, 5]}).eval()


@pytest.mark.parametrize("stride, frames, grid", [(1, 3, (3, 4, 4)), (2, 5, (3, 4, 4)), (4, 9, (3, 4, 4)),
                                                  (4, 1, (1, 4, 4))])
def test_shapes_and_grid(stride, frames, grid):
    codec = tiny(stride)
    x = torch.rand(2, 3, frames, 8, 8) * 2 - 1
    assert codec.code_grid((3, frames, 8, 8)) == grid
    codes = codec.encode(x)
    assert codes.shape == (2, *grid, 1)
    y = codec.decode(codes)
    assert y.shape == x.shape
    with torch.no_grad():
        torch.testing.assert_close(y, codec(x).recon)


def test_causal_first_frame_alone_and_image_is_one_frame_video():
    codec = tiny(2)
    x = torch.rand(1, 3, 5, 8, 8) * 2 - 1
    with torch.no_grad():
        lat = codec.encode_latents(x)  # (1, D, 3, 4, 4)
        lat_first = codec.encode_latents(x[:, :, :1])
        torch.testing.assert_close(lat[:, :, :1], lat_first)
        x2 = x.clone()
        x2[:, :, 3:] = torch.rand_like(x2[:, :, 3:])  # change frames 3 and 4 (latent step 2)
        lat2 = codec.encode_latents(x2)
    torch.testing.assert_close(lat2[:, :, :2], lat[:, :, :2])  # steps 0 and 1 see frames <= 2 only
    assert not torch.allclose(lat2[:, :, 2], lat[:, :, 2])


def test_bad_inputs():
    codec = tiny(4)
    with pytest.raises(ValueError, match=r"T = 1 \+ k \* 4"):
        codec.encode(torch.zeros(1, 3, 4, 8, 8))
    with pytest.raises(ValueError, match="not divisible"):
        codec.encode(torch.zeros(1, 3, 5, 9, 8))
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        codec.encode(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="must lie in"):
        codec.decode(torch.full((1, 2, 4, 4, 1), 125))
    with pytest.raises(ValueError, match="temporal_stride"):
        VideoCodec(temporal_stride=3)


def test_save_load(tmp_path):
    codec = tiny(2)
    codec.save_pretrained(tmp_path / "v")
    loaded = load_codec(tmp_path / "v")
    assert isinstance(loaded, VideoCodec)
    x = torch.rand(1, 3, 5, 8, 8) * 2 - 1
    assert torch.equal(loaded.encode(x), codec.encode(x))
