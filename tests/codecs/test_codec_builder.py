"""The builder: every preset builds; quantizers by name; overrides; clear errors."""

from __future__ import annotations

import pytest

from omnitok.codecs.builder import CONFIG_DIR, apply_overrides, build_codec, build_quantizer, load_preset
from omnitok.codecs.image import ImageCodec
from omnitok.codecs.video import VideoCodec

PRESETS = ["debug", "digits", "emoji64-f8", "emoji64-f4", "video-digits", "video-debug"]


@pytest.mark.parametrize("name", PRESETS)
def test_presets_build(name):
    cfg = load_preset(name)
    assert cfg["name"] == name and cfg["type"] in ("image", "video")
    codec = build_codec(cfg)
    assert isinstance(codec, ImageCodec if cfg["type"] == "image" else VideoCodec)
    size = cfg["data"]["size"]
    grid = codec.code_grid((3, size, size)) if cfg["type"] == "image" else codec.code_grid(
        (3, cfg["data"]["frames"], size, size))
    assert all(g > 0 for g in grid)


def test_preset_files_exist():
    assert {p.stem for p in CONFIG_DIR.glob("*.yaml")} >= set(PRESETS)


@pytest.mark.parametrize("name, kwargs, k", [("vq", {"dim": 4, "codebook_size": 32}, 32),
                                             ("fsq", {"levels": [8, 5, 5, 5]}, 1000),
                                             ("lfq", {"dim": 8, "bits": 10}, 1024),
                                             ("bsq", {"dim": 8, "bits": 10}, 1024),
                                             ("rvq", {"dim": 4, "codebook_size": 16, "num_quantizers": 3}, 16)])
def test_quantizers_by_name(name, kwargs, k):
    assert build_quantizer(name, **kwargs).codebook_size == k


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
    with pytest.raises(ValueError, match="'image' or 'video'"):
        build_codec({"type": "text"})
