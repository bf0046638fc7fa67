"""The builder: every preset builds; all eight quantizer families by name in every codec; typed overrides;
clear errors."""

from __future__ import annotations

import pytest
import torch

from omnitok import quantizers
from omnitok._overrides import apply_overrides
from omnitok.codecs.builder import CONFIG_DIR, build_codec, load_preset
from omnitok.codecs.frames import FrameCodec
from omnitok.codecs.global_motion import GlobalMotionCodec
from omnitok.codecs.image import ImageCodec
from omnitok.codecs.video import VideoCodec
from omnitok.quantizers.registry import QUANTIZERS, build_quantizer

PRESETS = ["debug", "debug-pq", "debug-aq", "debug-gumbel", "digits", "emoji64-f8", "emoji64-f4", "video-digits",
           "video-debug", "video-motion", "video-motion-debug", "video-frames-debug"]

#: one small constructor per family: name -> (kwargs, codebook_size, num_codebooks); dim 8 for every one
FAMILIES = {
    "vq": ({"dim": 8, "codebook_size": 32}, 32, 1),
    "rvq": ({"dim": 8, "codebook_size": 16, "num_quantizers": 3}, 16, 3),
    "pq": ({"dim": 8, "codebook_size": 16, "groups": 2}, 16, 2),
    "aq": ({"dim": 8, "codebook_size": 16, "num_codebooks": 2}, 16, 2),
    "fsq": ({"levels": [8, 5, 5, 5], "dim": 8}, 1000, 1),
    "lfq": ({"dim": 8, "bits": 10}, 1024, 1),
    "bsq": ({"dim": 8, "bits": 10}, 1024, 1),
    "gumbel": ({"dim": 8, "codebook_size": 32}, 32, 1),
}


@pytest.mark.parametrize("name", PRESETS)
def test_presets_build(name):
    cfg = load_preset(name)
    assert cfg["name"] == name and cfg["type"] in ("image", "video")
    codec = build_codec(cfg)
    video = {"video": VideoCodec, "frames": FrameCodec, "global-motion": GlobalMotionCodec}[cfg.get("codec", "video")]
    assert isinstance(codec, ImageCodec if cfg["type"] == "image" else video)
    size = cfg["data"]["size"]
    grid = codec.code_grid((3, size, size)) if cfg["type"] == "image" else codec.code_grid(
        (3, cfg["data"]["frames"], size, size))
    assert all(g > 0 for g in grid)


def test_preset_files_exist():
    assert {p.stem for p in CONFIG_DIR.glob("*.yaml")} >= set(PRESETS)


def test_every_quantizer_family_has_a_name():
    """The eight families exported by omnitok.quantizers, each under exactly one preset name."""
    families = {v for v in vars(quantizers).values() if isinstance(v, type) and issubclass(v, quantizers.Quantizer)}
    families -= {quantizers.Quantizer}
    assert len(families) == 8 and set(QUANTIZERS.values()) == families
    assert sorted(QUANTIZERS) == sorted(FAMILIES)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_quantizers_by_name(name):
    kwargs, k, m = FAMILIES[name]
    q = build_quantizer(name, **kwargs)
    assert isinstance(q, QUANTIZERS[name]) and q.codebook_size == k and q.num_codebooks == m


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("kind", ["image", "video"])
def test_every_quantizer_in_every_codec(name, kind):
    """Each family by name inside the image and the video codec: codes have its codebooks and range, decode runs."""
    kwargs, k, m = FAMILIES[name]
    torch.manual_seed(0)
    model = {"in_channels": 3, "channels": 4, "channel_mult": [1, 2], "num_res_blocks": 1, "z_channels": 8}
    if kind == "video":
        model["temporal_stride"] = 2
    codec = build_codec({"type": kind, "model": model, "quantizer": {"name": name, **kwargs}}).eval()
    assert isinstance(codec.quantizer, QUANTIZERS[name])
    x = torch.rand(2, 3, 8, 8) * 2 - 1 if kind == "image" else torch.rand(2, 3, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        codes = codec.encode(x)
        y = codec.decode(codes)
    grid = codec.code_grid(tuple(x.shape[1:]))
    assert codes.shape == (2, *grid, m) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < k
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_overrides_are_typed():
    """train.lr=1e-3 is a float (YAML 1.1 alone reads it as the string '1e-3'), in codec and LM presets alike."""
    from omnitok.model.config import apply_overrides as lm_overrides
    from omnitok.model.config import load_preset as lm_preset

    cfg = load_preset("debug", ["train.lr=1e-3", "train.steps=7", "quantizer.levels=[8, 5e0]", "train.name=1e-3x",
                                "train.flag=true", "train.none=null", "train.empty="])
    assert cfg["train"]["lr"] == 0.001 and isinstance(cfg["train"]["lr"], float)
    assert cfg["train"]["steps"] == 7 and isinstance(cfg["train"]["steps"], int)
    assert cfg["quantizer"]["levels"] == [8, 5.0]
    assert cfg["train"]["name"] == "1e-3x" and cfg["train"]["flag"] is True
    assert cfg["train"]["none"] is None and cfg["train"]["empty"] == ""
    lm = lm_overrides(lm_preset("debug"), ["train.lr=1e-3", "n_layer=3"])
    assert lm["train"]["lr"] == 0.001 and isinstance(lm["train"]["lr"], float) and lm["model"]["n_layer"] == 3
    assert isinstance(lm_preset("tiny")["train"]["lr"], float)


def test_overrides_and_errors():
    cfg = load_preset("debug", ["train.steps=7", "quantizer.codebook_size=64", "model.attention=false", "new.key=a"])
    assert cfg["train"]["steps"] == 7 and cfg["quantizer"]["codebook_size"] == 64
    assert cfg["model"]["attention"] is False and cfg["new"]["key"] == "a"
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides({}, ["steps"])
    with pytest.raises(ValueError, match="unknown codec preset 'nope'"):
        load_preset("nope")
    with pytest.raises(ValueError, match="unknown quantizer 'xyz'"):
        build_quantizer("xyz")
    with pytest.raises(ValueError, match="bad arguments"):
        build_quantizer("vq", dim=4, codebook_size=8, bogus=1)
    with pytest.raises(ValueError, match="'image', 'video' or 'audio'"):
        build_codec({"type": "text"})
