"""GlobalMotionCodec: the layout of its codes, motion found exactly on its grid of steps, the reconstruction of a
translating clip against a naive reference, folders, training through the codec trainer, clear errors."""

from __future__ import annotations

import pytest
import torch

from omnitok.codecs import load_codec
from omnitok.codecs.builder import build_codec, load_preset
from omnitok.codecs.global_motion import GlobalMotionCodec, translate
from omnitok.codecs.image import CodecOutput, ImageCodec

IMAGE = {"in_channels": 3, "channels": 8, "channel_mult": [1, 2, 2], "num_res_blocks": 1, "z_channels": 8,
         "quantizer": "fsq", "quantizer_kwargs": {"levels": [5, 5, 5]}}


def _sprite_clip(steps: list[tuple[float, float]], size: int = 16) -> torch.Tensor:
    """(1, 3, 1 + len(steps), size, size): a bright 5x4 block on -1, moved by the cumulative ``steps``."""
    first = torch.full((1, 3, size, size), -1.0)
    first[..., 5:10, 4:8] = 1.0
    bg = torch.full((1, 3), -1.0)
    frames, pos = [first], torch.zeros(1, 2)
    for d in steps:
        pos = pos + torch.tensor([d])
        frames.append(translate(first, pos, bg))
    return torch.stack(frames, 2)


def test_translate_matches_a_whole_pixel_roll():
    x = torch.full((1, 1, 8, 8), -1.0)
    x[..., 2:4, 1:3] = 1.0
    moved = translate(x, torch.tensor([[2.0, 1.0]]), torch.full((1, 1), -1.0))
    ref = torch.full_like(x, -1.0)
    ref[..., 3:5, 3:5] = 1.0  # two right, one down
    assert torch.allclose(moved, ref, atol=1e-5)


def test_code_grid_and_layout():
    codec = GlobalMotionCodec(IMAGE)
    assert codec.code_grid((3, 5, 16, 16)) == (1, 5, 4)  # 4x4 first frame + one row of 4 steps
    assert codec.code_grid((3, 9, 16, 16)) == (1, 6, 4)
    assert codec.code_grid((3, 1, 16, 16)) == (1, 4, 4)
    assert codec.codebook_size == max(125, 17 * 17)
    with pytest.raises(ValueError, match=r"T = 1 \+ k \* 4"):
        codec.code_grid((3, 6, 16, 16))


def test_motion_on_the_grid_is_found_exactly_and_decoded_as_the_reference():
    torch.manual_seed(0)
    codec = GlobalMotionCodec(IMAGE).eval()
    steps = [(0.75, -0.5), (0.75, -0.5), (-1.25, 0.25), (0.0, 1.0)]  # a bounce in x at frame 3
    x = _sprite_clip(steps)
    codes = codec.encode(x)  # (1, 1, 5, 4, 1)
    assert codes.shape == (1, 1, 5, 4, 1)
    assert torch.equal(codes[0, 0, :4], codec.image.encode(x[:, :, 0])[0])  # rows 0..3: the first frame's codes
    found = codec.steps[codes[0, 0, 4, :, 0]]
    assert torch.equal(found, torch.tensor(steps))
    # decode = the decoded first frame moved by the cumulative steps (naive reference, frame by frame)
    video = codec.decode(codes)
    first = codec.image.decode(codes[:, 0, :4])
    bg = first.flatten(2).median(-1).values
    pos = torch.zeros(1, 2)
    for t, d in enumerate(steps, start=1):
        pos = pos + torch.tensor([d])
        assert torch.allclose(video[:, :, t], translate(first, pos, bg), atol=1e-5)
    assert torch.allclose(video[:, :, 0], first)


def test_off_grid_motion_stays_within_half_a_step():
    codec = GlobalMotionCodec(IMAGE).eval()
    x = _sprite_clip([(0.6, 0.35)] * 4)
    found = codec.steps[codec.encode(x)[0, 0, 4, :, 0]].cumsum(0)
    true = torch.tensor([[0.6, 0.35]]).cumsum(0) * torch.arange(1, 5)[:, None]
    assert (found - true).abs().max() <= 0.125 + 1e-4  # closed loop: the error does not grow with t


def test_motion_codes_outside_the_grid_decode_as_no_motion():
    codec = GlobalMotionCodec(IMAGE).eval()
    codes = codec.encode(_sprite_clip([(1.0, 0.0)] * 4))
    still = codes.clone()
    still[0, 0, 4, :, 0] = 17 * 17 // 2  # the zero step
    beyond = codes.clone()
    beyond[0, 0, 4, :, 0] = 300  # >= 17 * 17: a code the shared codebook allows in a motion slot
    assert torch.equal(codec.decode(beyond), codec.decode(still))


def test_forward_is_a_codec_output_and_folders_round_trip(tmp_path):
    codec = build_codec(load_preset("video-motion-debug"))
    x = _sprite_clip([(0.5, 0.5)] * 4)
    out = codec(x)
    assert isinstance(out, CodecOutput) and out.recon.shape == x.shape and out.codes.shape == (1, 1, 5, 4, 1)
    out.recon[:, :, 1:].mean().backward()  # the image codec learns through the moved frames too
    assert codec.image.decoder.last_layer.grad.abs().sum() > 0
    codec.eval().save_pretrained(tmp_path / "gm")
    again = load_codec(tmp_path / "gm")
    assert isinstance(again, GlobalMotionCodec) and again.config == codec.config
    assert torch.equal(again.encode(x), codec.encode(x))


def test_from_image_codec_copies_the_weights():
    torch.manual_seed(1)
    img = ImageCodec(**IMAGE).eval()
    codec = GlobalMotionCodec.from_image_codec(img)
    x = _sprite_clip([(0.25, 0.0)] * 4)
    assert torch.equal(codec.encode(x)[0, 0, :4], img.encode(x[:, :, 0])[0])


def test_bad_inputs():
    codec = GlobalMotionCodec(IMAGE)
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        codec.encode(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="shaped"):
        codec.decode(torch.zeros(1, 5, 4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="step"):
        GlobalMotionCodec(IMAGE, step=0.0)
    with pytest.raises(ValueError, match="one codebook"):
        GlobalMotionCodec({**IMAGE, "quantizer": "rvq", "quantizer_kwargs": {"dim": 4, "codebook_size": 8,
                                                                              "num_quantizers": 2}})


def test_trains_with_the_codec_trainer(tmp_path):
    from omnitok.train.codec import trainer_for

    cfg = load_preset("video-motion-debug", ["train.steps=4", "train.sample_every=0", "train.save_every=0"])
    cfg["train"]["progress"] = False
    final = trainer_for(cfg["type"]).train(cfg, tmp_path / "run")
    codec = load_codec(final)
    assert isinstance(codec, GlobalMotionCodec) and codec.code_grid((3, 5, 16, 16)) == (1, 5, 4)
