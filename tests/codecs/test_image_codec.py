"""ImageCodec: shapes and code grids for several sizes and factors, round trips, bad input, folders."""

from __future__ import annotations

import json

import pytest
import torch

from omnitok.codecs.base import CheckpointError, load_codec
from omnitok.codecs.image import ImageCodec
from omnitok.io.image import to_channels


def tiny(mult=(1, 2, 2), quantizer="vq", **qkw) -> ImageCodec:
    torch.manual_seed(0)
    qkw = qkw or {"dim": 4, "codebook_size": 16, "kmeans_init": False}
    return ImageCodec(channels=4, channel_mult=list(mult), z_channels=4, quantizer=quantizer, quantizer_kwargs=qkw)


@pytest.mark.parametrize(
    "mult, hw, grid",
    [((1, 1, 1), (32, 32), (8, 8)), ((1, 1, 1, 1), (64, 64), (8, 8)), ((1, 1, 1, 1), (64, 128), (8, 16)),
     ((1, 1, 1, 1, 1), (32, 64), (2, 4))],
)
def test_code_grid_follows_input(mult, hw, grid):
    codec = tiny(mult).eval()
    assert codec.factor == 2 ** (len(mult) - 1)
    assert codec.code_grid((3, *hw)) == grid
    codes = codec.encode(torch.rand(2, 3, *hw) * 2 - 1)
    assert codes.shape == (2, *grid, 1) and codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < codec.codebook_size
    assert codec.decode(codes).shape == (2, 3, *hw)


def test_decode_of_codes_equals_reconstruction():
    codec = tiny().eval()
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    with torch.no_grad():
        recon = codec(x).recon
    codes = codec.encode(x)
    torch.testing.assert_close(codec.decode(codes), recon)
    # codes of a decoded image decode to the same image again (a fixed point after one round)
    torch.testing.assert_close(codec.decode(codec.encode(x)), codec.decode(codes))


def test_training_forward_has_gradients_and_loss():
    codec = tiny().train()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = codec(x)
    ((out.recon - x).abs().mean() + out.loss).backward()
    assert codec.encoder.conv_in.weight.grad is not None
    assert "usage" in out.metrics


@pytest.mark.parametrize("hw", [(30, 32), (32, 33), (2, 4)])
def test_size_not_divisible_is_a_clear_error(hw):
    codec = tiny()
    with pytest.raises(ValueError, match="not divisible by the downsampling factor f=4"):
        codec.encode(torch.zeros(1, 3, *hw))


def test_bad_inputs():
    codec = tiny()
    with pytest.raises(ValueError, match="channels"):
        codec.encode(torch.zeros(1, 4, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        codec.encode(torch.zeros(3, 16, 16))
    with pytest.raises(ValueError, match="float"):
        codec.encode(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        codec.decode(torch.full((1, 4, 4, 1), 16))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        codec.decode(torch.full((1, 4, 4, 1), -1))
    with pytest.raises(ValueError, match="shaped"):
        codec.decode(torch.zeros(4, 4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown quantizer"):
        ImageCodec(quantizer="nope")
    with pytest.raises(ValueError, match="in_channels"):
        ImageCodec(in_channels=2)


def test_save_load_equality_and_hash(tmp_path):
    codec = tiny().eval()
    digest = codec.save_pretrained(tmp_path / "c")
    loaded = load_codec(tmp_path / "c")
    assert isinstance(loaded, ImageCodec) and loaded.weights_sha256 == digest
    for k, v in codec.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(codec.encode(x), loaded.encode(x))


def test_checkpoint_disagreeing_with_config_names_tensors(tmp_path):
    tiny().save_pretrained(tmp_path / "c")
    cfg_path = tmp_path / "c" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["config"]["z_channels"] = 6
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"shape mismatches .*quant_conv\.weight"):
        load_codec(tmp_path / "c")


@pytest.mark.parametrize(
    "name, kwargs, nc, k",
    [("fsq", {"levels": [4, 4]}, 1, 16), ("lfq", {"dim": 4, "bits": 4}, 1, 16),
     ("bsq", {"dim": 4, "bits": 4}, 1, 16),
     ("rvq", {"dim": 4, "codebook_size": 8, "num_quantizers": 2, "kmeans_init": False}, 2, 8)],
)
def test_any_quantizer(name, kwargs, nc, k):
    codec = tiny(quantizer=name, **kwargs).eval()
    codes = codec.encode(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert codes.shape == (2, 4, 4, nc) and codec.num_codebooks == nc and codec.codebook_size == k
    assert codec.decode(codes).shape == (2, 3, 16, 16)


def test_channel_conversion_rules():
    grey = torch.linspace(-1, 1, 16).reshape(1, 4, 4)
    assert torch.equal(to_channels(grey, 3), grey.expand(3, 4, 4))
    rgba = torch.cat([-torch.ones(3, 4, 4), torch.full((1, 4, 4), -1.0)])  # fully transparent black
    assert torch.allclose(to_channels(rgba, 3), torch.ones(3, 4, 4))  # -> white
    rgba[3] = 1.0  # opaque black
    assert torch.allclose(to_channels(rgba, 3), -torch.ones(3, 4, 4))
    rgb = torch.stack([torch.ones(4, 4), -torch.ones(4, 4), -torch.ones(4, 4)])  # pure red
    assert torch.allclose(to_channels(rgb, 1), torch.full((1, 4, 4), 0.299 - 0.587 - 0.114))
    with pytest.raises(ValueError, match="cannot convert 2 channels"):
        to_channels(torch.zeros(2, 4, 4), 3)
