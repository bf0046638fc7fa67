"""SpriteMotionCodec: the layout of its codes, the window found around the sprite, a translating clip rebuilt
through a lossless window codec, sampler codes out of a cell's range, folders, the builder, clear errors."""

from __future__ import annotations

import pytest
import torch

from omnitok.codecs import load_codec
from omnitok.codecs.builder import build_codec, derive_codec, load_preset
from omnitok.codecs.global_motion import translate
from omnitok.codecs.image import ImageCodec
from omnitok.codecs.sprite_motion import SpriteMotionCodec

IMAGE = {"in_channels": 3, "channels": 8, "channel_mult": [1, 2, 2], "num_res_blocks": 1, "z_channels": 8,
         "quantizer": "fsq", "quantizer_kwargs": {"levels": [5, 5, 5]}}  # f4: 16 px windows -> 4 x 4 codes


def _codec(**kw) -> SpriteMotionCodec:
    args = {"window": 12, "image_size": 16, "frame_size": 32, "step": 0.25, "max_step": 2.0, **kw}
    return SpriteMotionCodec(IMAGE, **args).eval()


def _clip(corner: tuple[int, int], velocity: tuple[float, float], frames: int = 8) -> torch.Tensor:
    """(1, 3, frames, 32, 32): an L-shaped 8 px sprite (value 1 on -1) with its box corner at ``corner``, moving by
    ``velocity`` px a frame."""
    first = torch.full((1, 3, 32, 32), -1.0)
    x, y = corner
    first[..., y : y + 8, x : x + 2] = 1.0
    first[..., y + 6 : y + 8, x : x + 6] = 1.0
    bg = torch.full((1, 3), -1.0)
    out = [translate(first, torch.tensor([velocity]) * t, bg) for t in range(frames)]
    return torch.stack(out, 2)


def _lossless(codec: SpriteMotionCodec) -> None:
    """Replace the window codec by a perfect one (codes: zeros; decode gives back what was encoded), so the test
    checks the cut, the corner, the paste and the motion, not what an untrained image codec draws."""
    kept: list[torch.Tensor] = []

    def encode(x):
        kept.append(x.clone())
        return torch.zeros(x.shape[0], 4, 4, 1, dtype=torch.long)

    codec.image.encode = encode
    codec.image.decode = lambda codes: kept[-1]


def test_code_grid_layout_and_codebook():
    codec = _codec()
    assert codec.grid == (4, 4)
    assert codec.code_grid((3, 8, 32, 32)) == (1, 6, 4)  # 4 rows of window codes + corner and 7 steps
    assert codec.code_grid((12, 32, 32)) == (1, 7, 4)
    assert codec.places == 21 and codec.codebook_size == max(125, 17 * 17, 21 * 21)
    clip = _clip((5, 9), (1.0, 0.5))
    codes = codec.encode(clip)
    assert codes.shape == (1, 1, 6, 4, 1) and codes.dtype == torch.int64
    x, y = codec.corners(clip[:, :, 0])[0].tolist()
    assert int(codes[0, 0, 4, 0, 0]) == x * codec.places + y  # the first cell after the window is its corner


def test_window_centred_on_the_sprite():
    codec = _codec()
    clip = _clip((10, 14), (0.0, 0.0))
    mass = (clip[0, 0, 0] + 1).clamp_min(0)
    ys, xs = torch.meshgrid(torch.arange(32.0) + 0.5, torch.arange(32.0) + 0.5, indexing="ij")
    cx, cy = float((mass * xs).sum() / mass.sum()), float((mass * ys).sum() / mass.sum())
    corner = codec.corners(clip[:, :, 0])[0].tolist()
    assert abs(corner[0] + 6 - cx) <= 0.5 and abs(corner[1] + 6 - cy) <= 0.5
    # a sprite at the border: the window stays inside the frame
    assert codec.corners(_clip((0, 0), (0.0, 0.0))[:, :, 0])[0].tolist() == [0, 0]
    assert codec.corners(torch.full((1, 3, 32, 32), -1.0))[0].tolist() == [10, 10]  # empty: the middle


@pytest.mark.parametrize(("velocity", "window", "min_psnr"),
                         [((1.0, 0.5), 16, 40.0), ((-1.25, 0.75), 16, 40.0), ((0.0, -2.0), 16, 40.0),
                          ((1.0, 0.5), 12, 25.0)])  # 12: the window resized to 16 px and back blurs a little
def test_a_translating_clip_comes_back_through_a_lossless_window_codec(velocity, window, min_psnr):
    codec = _codec(window=window)
    _lossless(codec)
    clip = _clip((12, 14), velocity)  # the sprite stays inside the frame
    codes = codec.encode(clip)
    recon = codec.decode(codes)
    assert recon.shape == clip.shape
    mse = float((recon - clip).square().mean())
    assert mse <= 4.0 * 10 ** (-min_psnr / 10)  # PSNR >= min_psnr on the [-1, 1] range
    # the steps after the first one are the clip's velocity exactly (the first also undoes the corner's rounding)
    steps = codec.steps[codes[0, 0, 4:, :, 0].reshape(-1)[2:]]
    assert torch.allclose(steps, torch.tensor([velocity]).expand_as(steps))


def test_forward_matches_encode_decode():
    torch.manual_seed(0)
    codec = _codec()
    clip = _clip((6, 7), (1.0, -0.5))
    out = codec(clip)
    assert torch.equal(out.codes, codec.encode(clip))
    assert torch.allclose(out.recon, codec.decode(out.codes), atol=1e-5)


def test_codes_out_of_a_cells_range_still_decode():
    codec = _codec()
    codes = codec.encode(_clip((5, 5), (0.5, 0.5)))
    bad = codes.clone()
    bad[0, 0, 4, 0, 0] = codec.places**2  # out of the corners' range -> the middle of the frame
    bad[0, 0, 5, :, 0] = codec.levels**2 + 3  # steps out of range -> no motion
    bad[0, 0, 0, 0, 0] = codec.codebook_size - 1  # a window code past the image codec's 125
    video = codec.decode(bad)
    assert video.shape == (1, 3, 8, 32, 32) and torch.isfinite(video).all()
    assert torch.equal(video[:, :, 4], video[:, :, 7])  # frames 4..7 did not move


def test_bad_inputs_raise_clear_errors():
    codec = _codec()
    with pytest.raises(ValueError, match="frames of 16x16 px"):
        codec.encode(torch.zeros(1, 3, 8, 16, 16))
    with pytest.raises(ValueError, match="expected T = k \\* 4"):
        codec.encode(torch.zeros(1, 3, 9, 32, 32))
    with pytest.raises(ValueError, match="shaped"):
        codec.decode(torch.zeros(1, 1, 4, 4, 1, dtype=torch.long))  # no row for the corner
    with pytest.raises(ValueError, match=">= 0"):
        codec.decode(torch.full((1, 1, 6, 4, 1), -1))
    with pytest.raises(ValueError, match="window"):
        SpriteMotionCodec(IMAGE, window=40, image_size=16, frame_size=32)


def test_folder_round_trip(tmp_path):
    codec = _codec()
    clip = _clip((4, 11), (0.75, 0.25))
    codec.save_pretrained(tmp_path / "c")
    again = load_codec(tmp_path / "c")
    assert isinstance(again, SpriteMotionCodec) and again.config == codec.config
    assert torch.equal(again.encode(clip), codec.encode(clip))


def test_derived_from_a_trained_image_codec_by_preset():
    image = ImageCodec(**{k: v for k, v in IMAGE.items()})
    preset = load_preset("quickstart-video-sprite")
    assert preset["image_from"] == "image"
    codec = derive_codec(preset, image)
    assert isinstance(codec, SpriteMotionCodec)
    assert (codec.frame_size, codec.window, codec.image_size) == (64, 28, 32)
    assert all(torch.equal(a, b) for a, b in zip(codec.image.state_dict().values(), image.state_dict().values()))
    with pytest.raises(ValueError, match="image_from"):
        build_codec(preset)  # nothing to train: the trainer's builder says how it is built
    with pytest.raises(ValueError, match="data.size"):
        derive_codec({**preset, "data": {}}, image)
