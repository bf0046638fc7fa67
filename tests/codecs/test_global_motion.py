"""GlobalMotionCodec: the layout of its codes, motion found exactly on its grid of steps, the motion search against
the naive search (every candidate translated with grid_sample) on moving-digit clips, the reconstruction of a
translating clip against a naive reference, folders, training through the codec trainer, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from omnitok.codecs import load_codec
from omnitok.codecs.builder import build_codec, load_preset
from omnitok.codecs.global_motion import (
    GlobalMotionCodec,
    _background,
    _bilinear_taps,
    _shifted_windows,
    translate,
)
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


def naive_estimate_motion(codec: GlobalMotionCodec, x: torch.Tensor) -> torch.Tensor:
    """The motion search as first written: each frame's 25 candidates made with ``translate`` (affine_grid +
    grid_sample on 25 copies of the first frame) and their mean squared error against the frame."""
    b, _, t, hh, ww = x.shape
    g = x.float().mean(1)
    ref = g[:, 0] - _background(g[:, :1])[..., None]
    spec = torch.fft.rfft2(ref).conj()
    half = codec.levels // 2
    pos = torch.zeros(b, 2)
    ids = []
    for i in range(1, t):
        frame = g[:, i] - _background(g[:, i : i + 1])[..., None]
        corr = torch.fft.irfft2(torch.fft.rfft2(frame) * spec, s=(hh, ww)).flatten(1)
        peak = corr.argmax(1)
        dy, dx = peak // ww, peak % ww
        coarse = torch.stack([(dx + ww // 2) % ww - ww // 2, (dy + hh // 2) % hh - hh // 2], 1).float()
        centre = ((coarse - pos) / codec.step).round().clamp(-half, half)
        off = torch.arange(-2, 3, dtype=torch.float32)
        ix = (centre[:, 0:1] + off).clamp(-half, half)
        iy = (centre[:, 1:2] + off).clamp(-half, half)
        cand_i = torch.stack(torch.broadcast_tensors(ix[:, :, None], iy[:, None, :]), -1).reshape(b, -1, 2)
        k = cand_i.shape[1]
        cand = pos[:, None] + cand_i * codec.step
        moved = translate(ref[:, None].repeat_interleave(k, 0), cand.reshape(-1, 2),
                          torch.zeros(b * k, 1)).reshape(b, k, hh, ww)
        err = (moved - frame[:, None]).square().flatten(2).mean(-1)
        best = err.argmin(1)
        pick = cand_i[torch.arange(b), best]
        ids.append(((pick[:, 0] + half) * codec.levels + pick[:, 1] + half).long())
        pos = pos + pick * codec.step
    return torch.stack(ids, 1) if ids else torch.zeros(b, 0, dtype=torch.long)


def _strokes(n: int, seed: int) -> np.ndarray:
    """uint8 (n, 28, 28) white-on-black scribbles of 2-4 antialiased strokes, standing in for MNIST digits."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        im = Image.new("L", (112, 112))
        pts = [tuple(int(v) for v in rng.integers(16, 96, 2)) for _ in range(int(rng.integers(3, 6)))]
        ImageDraw.Draw(im).line(pts, fill=255, width=12, joint="curve")
        out[i] = np.asarray(im.resize((28, 28), Image.Resampling.LANCZOS))
    return out


def _digit_clips(n: int, size: int, frames: int, seed: int, lossy_first: bool) -> torch.Tensor:
    """(n, 3, frames, size, size) in [-1, 1]: clips of the video data source (one or two sprites, sub-pixel
    motion, bounces). ``lossy_first``: the first frame blurred and noised, as a lossy image codec gives it back
    (the sprite codec searches against the decoded first frame)."""
    from omnitok.data.sources import video

    rng = np.random.default_rng(seed)
    images, labels = _strokes(24, seed), np.arange(24) % 10
    clips = [torch.from_numpy(video.digit_clip(rng, images, labels, size=size, frames=frames)[0])
             for _ in range(n)]
    x = torch.stack(clips).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0  # (n, 3, T, S, S)
    if lossy_first:
        g = torch.Generator().manual_seed(seed)
        first = F.avg_pool2d(x[:, :, 0], 3, 1, 1, count_include_pad=False)
        x[:, :, 0] = (first + 0.1 * torch.randn(first.shape, generator=g)).clamp(-1, 1)
    return x


@pytest.mark.parametrize("lossy_first", [False, True])
def test_motion_search_matches_the_naive_search_on_quickstart_like_clips(lossy_first):
    # the quickstart's sprite codec: 64 px, 8 frames, 0.25 px steps up to 3 px
    codec = GlobalMotionCodec(IMAGE, step=0.25, max_step=3.0)
    x = _digit_clips(40, 64, 8, seed=3 + lossy_first, lossy_first=lossy_first)
    fast, naive = codec.estimate_motion(x), naive_estimate_motion(codec, x)
    assert fast.shape == (40, 7)
    assert (naive != naive[:, :1]).any()  # the clips move in more than one way
    assert torch.equal(fast, naive)


@pytest.mark.parametrize("step,max_step", [(0.5, 2.0), (0.3, 1.5), (1.0, 1.0), (0.125, 2.0)])
def test_motion_search_matches_the_naive_search_for_other_grids_of_steps(step, max_step):
    codec = GlobalMotionCodec(IMAGE, step=step, max_step=max_step)
    x = _digit_clips(16, 32, 9, seed=int(step * 1000), lossy_first=True)
    assert torch.equal(codec.estimate_motion(x), naive_estimate_motion(codec, x))


def test_motion_search_does_not_depend_on_the_batch():
    codec = GlobalMotionCodec(IMAGE, step=0.3, max_step=3.0)
    x = _digit_clips(6, 32, 8, seed=11, lossy_first=True)
    batched = codec.estimate_motion(x)
    assert torch.equal(torch.cat([codec.estimate_motion(x[i : i + 1]) for i in range(6)]), batched)


def test_bilinear_taps_on_whole_pixel_shifts_equal_translate():
    torch.manual_seed(0)
    img = torch.randn(3, 12, 10)
    d = torch.tensor([[0.3, -1.75], [4.5, 4.5], [-13.0, 0.0]])  # (B, 2) dx, dy; -13 px: out of the frame
    sx, wx = _bilinear_taps(d[:, 0:1], 2)  # one candidate per image, two taps
    sy, wy = _bilinear_taps(d[:, 1:2], 2)
    shifts = _shifted_windows(F.pad(img, (10, 10, 12, 12)), sy[:, None] + torch.arange(2),
                              sx[:, None] + torch.arange(2), 12, 10)  # (B, 2, 2, H, W)
    moved = torch.einsum("by,bx,byxhw->bhw", wy[:, 0], wx[:, 0], shifts)
    assert torch.allclose(moved, translate(img[:, None], d, torch.zeros(3, 1))[:, 0], atol=1e-5)
    assert moved[2].abs().max() < 1e-5 < img[2].abs().max()  # moved out: all zero fill


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
