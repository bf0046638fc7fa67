"""Translated image views (data/augment.py) against a naive reference, and ``omnitok tokenize --views``."""

from __future__ import annotations

import pytest
import torch

from omnitok.data.augment import image_views, shift_image, view_shift
from omnitok.vocab import Document, Image, Text


def naive_shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    _, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(h):
        for j in range(w):
            out[:, i, j] = x[:, min(max(i - dy, 0), h - 1), min(max(j - dx, 0), w - 1)]
    return out


@pytest.mark.parametrize("dy,dx", [(0, 0), (1, 0), (0, -2), (2, 3), (-3, -1), (-2, 2)])
def test_shift_equals_the_naive_reference(dy, dx) -> None:
    x = torch.randn(3, 7, 9)
    assert torch.equal(shift_image(x, dy, dx), naive_shift(x, dy, dx))


def test_shift_errors() -> None:
    with pytest.raises(ValueError, match="expected an image"):
        shift_image(torch.zeros(7, 9), 1, 1)
    with pytest.raises(ValueError, match="does not fit"):
        shift_image(torch.zeros(1, 4, 4), 4, 0)


def test_view_shifts_are_deterministic_non_zero_and_in_range() -> None:
    assert view_shift("k", 0, 2) == (0, 0)
    seen = set()
    for i in range(300):
        s = view_shift(f"mnist-{i}", 1 + i % 3, 2)
        assert s == view_shift(f"mnist-{i}", 1 + i % 3, 2) and s != (0, 0)
        assert all(-2 <= v <= 2 for v in s)
        seen.add(s)
    assert len(seen) == 24  # every non-zero shift of the 5x5 square is drawn


def test_image_views_copy_only_the_images() -> None:
    img = torch.randn(3, 8, 8)
    doc = Document([Image(img, codes=torch.zeros(2, 2, 1, dtype=torch.long)), Text("the digit 3")], task="i2t")
    views = image_views(doc, "mnist-3-0001", 3, 2)
    assert len(views) == 3 and views[0] is doc
    for v in views[1:]:
        assert v.segments[1] is doc.segments[1] and v.task == "i2t" and v.segments[0].codes is None
        assert not torch.equal(v.segments[0].data, img)
    assert len(image_views(Document([Text("no image")]), "k", 4, 2)) == 1
    with pytest.raises(ValueError, match="views must be"):
        image_views(doc, "k", 0, 2)
