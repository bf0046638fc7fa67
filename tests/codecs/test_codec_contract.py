"""One codec contract: every codec's training forward returns the same CodecOutput; codecs take a Quantizer built
by the registry (the builder hands one over) and save its name and arguments to rebuild it."""

from __future__ import annotations

import pytest
import torch

from omnitok.codecs.audio import AudioCodec
from omnitok.codecs.base import CodecOutput, load_codec
from omnitok.codecs.builder import build_codec
from omnitok.codecs.image import ImageCodec
from omnitok.quantizers.fsq import FSQ
from omnitok.quantizers.registry import build_quantizer

AUDIO = dict(sample_rate=16000, ratios=(2, 4, 5, 8), dim=16, enc_channels=4, dec_channels=4, bottleneck_residual=1)
AUDIO_Q = {"name": "rvq", "num_codebooks": 3, "codebook_size": 32, "quantizer_dropout": 0.0, "kmeans_init": False}
IMAGE = {"channels": 4, "channel_mult": [1, 2], "z_channels": 4}


def test_every_codec_returns_one_output_type() -> None:
    torch.manual_seed(0)
    image = build_codec({"type": "image", "model": IMAGE, "quantizer": {"name": "fsq", "levels": [5, 5, 5]}})
    audio = build_codec({"type": "audio", "model": AUDIO, "quantizer": AUDIO_Q})
    video = build_codec({"type": "video", "model": {**IMAGE, "temporal_stride": 2},
                         "quantizer": {"name": "fsq", "levels": [5, 5, 5]}})
    assert video.config["quantizer"] == "fsq" and video.config["quantizer_kwargs"] == {"levels": [5, 5, 5]}
    for codec, x in ((image, torch.rand(2, 3, 8, 8) * 2 - 1), (audio, torch.rand(2, 1, 640) * 2 - 1),
                     (video, torch.rand(2, 3, 5, 8, 8) * 2 - 1)):
        out = codec(x)
        assert type(out) is CodecOutput and out.recon.shape == x.shape, type(codec).__name__
        assert out.codes.shape[:1] == (2,) and out.codes.shape[-1] == codec.num_codebooks and out.loss.dim() == 0


def test_the_builder_hands_the_codec_a_quantizer_and_the_folder_rebuilds_it(tmp_path) -> None:
    image = build_codec({"type": "image", "model": IMAGE, "quantizer": {"name": "pq", "dim": 8, "codebook_size": 16,
                                                                        "groups": 2}})
    assert image.config["quantizer"] == "pq" and image.config["quantizer_kwargs"] == {"dim": 8, "codebook_size": 16,
                                                                                      "groups": 2}
    image.save_pretrained(tmp_path / "img")
    back = load_codec(tmp_path / "img")
    assert type(back.quantizer) is type(image.quantizer) and back.config == image.config
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    assert torch.equal(back.encode(x), image.eval().encode(x))


def test_an_audio_codec_takes_a_residual_vq_instance_or_its_arguments_alike() -> None:
    torch.manual_seed(0)
    by_args = AudioCodec(**AUDIO, codebook_size=32, num_codebooks=3, quantizer_dropout=0.0,
                         quantizer_kwargs={"kmeans_init": False})
    q = build_quantizer("rvq", dim=16, codebook_size=32, num_quantizers=3, quantizer_dropout=0.0, kmeans_init=False)
    by_instance = AudioCodec(**AUDIO, quantizer=q)
    assert by_instance.config == by_args.config and by_instance.quantizer is q
    with pytest.raises(ValueError, match="residual VQ"):
        AudioCodec(**AUDIO, quantizer=build_quantizer("fsq", levels=[5, 5, 5]))


def test_a_quantizer_not_built_by_the_registry_is_refused() -> None:
    with pytest.raises(ValueError, match="build_quantizer"):
        ImageCodec(**IMAGE, quantizer=FSQ(levels=[5, 5, 5]))
    with pytest.raises(ValueError, match="quantizer_kwargs go with a quantizer name"):
        ImageCodec(**IMAGE, quantizer=build_quantizer("fsq", levels=[5, 5, 5]), quantizer_kwargs={"levels": [3]})
    with pytest.raises(ValueError, match="quantizer.name must be rvq"):
        build_codec({"type": "audio", "model": AUDIO, "quantizer": {**AUDIO_Q, "name": "vq"}})
