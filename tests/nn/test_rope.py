"""Rotary embeddings: the split-halves convention, relative positions, multi-axis (M-RoPE) reduction."""

from __future__ import annotations

import pytest
import torch

from omnitok.nn.rope import RotaryEmbedding, apply_rotary, default_sections


def test_rotate_half_convention_pairs_i_with_i_plus_half():
    rope = RotaryEmbedding(8, theta=100.0)
    x = torch.zeros(1, 1, 1, 8)
    x[..., 1] = 1.0  # pair (1, 5) at frequency 1
    cos, sin = rope(torch.tensor([[3]]))
    y = apply_rotary(x, cos, sin)[0, 0, 0]
    angle = 3 * 100.0 ** (-2 / 8)
    expected = torch.zeros(8)
    expected[1], expected[5] = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
    torch.testing.assert_close(y, expected)


def test_scores_depend_only_on_relative_position():
    rope = RotaryEmbedding(16)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(pq: int, pk: int) -> torch.Tensor:
        cq, sq = rope(torch.tensor([[pq]]))
        ck, sk = rope(torch.tensor([[pk]]))
        return (apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum()

    torch.testing.assert_close(score(7, 3), score(104, 100), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(score(7, 3), score(7, 5))


def test_multi_axis_with_equal_positions_is_1d():
    pos = torch.randint(0, 50, (2, 9))
    c1, s1 = RotaryEmbedding(12, axes=1)(pos)
    c3, s3 = RotaryEmbedding(12, axes=3)(pos.expand(3, 2, 9))
    torch.testing.assert_close(c1, c3, rtol=0, atol=0)
    torch.testing.assert_close(s1, s3, rtol=0, atol=0)
    c3b, _ = RotaryEmbedding(12, axes=3)(pos)  # (B, T) on a 3-axis embedding = every axis the same
    torch.testing.assert_close(c1, c3b, rtol=0, atol=0)


def test_multi_axis_sections_select_axis():
    rope = RotaryEmbedding(8, axes=2, sections=(1, 3))
    pos = torch.stack([torch.tensor([[5]]), torch.tensor([[0]])])  # axis 0 = 5, axis 1 = 0
    cos, _ = rope(pos)
    assert cos[0, 0, 0] != 1.0 and torch.all(cos[0, 0, 1:4] == 1.0)  # only frequency 0 belongs to axis 0


def test_bad_arguments():
    assert default_sections(16, 3) == (2, 3, 3)
    with pytest.raises(ValueError, match="sections"):
        RotaryEmbedding(8, axes=2, sections=(1, 1))
    with pytest.raises(ValueError, match="positions"):
        RotaryEmbedding(8, axes=2)(torch.zeros(3, 1, 4, dtype=torch.long))
