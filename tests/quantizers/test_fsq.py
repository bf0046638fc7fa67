"""FSQ: index <-> code maps for any levels, bounds, projections, bad input."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from omnitok.quantizers.fsq import FSQ

levels_st = st.lists(st.integers(min_value=2, max_value=9), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(levels=levels_st, seed=st.integers(0, 2**16))
def test_index_code_index_identity(levels: list[int], seed: int) -> None:
    q = FSQ(levels)
    size = math.prod(levels)
    if size <= 4096:
        index = torch.arange(size)
    else:
        index = torch.randint(0, size, (2048,), generator=torch.Generator().manual_seed(seed))
    code = q.index_to_code(index)  # (n, d)
    assert code.shape == (index.numel(), len(levels))
    assert code.min() >= -1 and code.max() <= 1
    assert torch.equal(q.code_to_index(code), index)
    if size <= 4096:  # the map is a bijection onto the grid
        assert torch.unique(code, dim=0).shape[0] == size


@settings(max_examples=40, deadline=None)
@given(levels=levels_st, scale=st.floats(0.1, 1e4), seed=st.integers(0, 2**16))
def test_codes_always_in_range(levels: list[int], scale: float, seed: int) -> None:
    q = FSQ(levels).eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, len(levels), generator=g) * scale
    out = q(x)
    assert out.codes.min() >= 0 and out.codes.max() < q.codebook_size
    # arbitrary (off-grid, out-of-range) code values still map into range
    idx = q.code_to_index(torch.randn(512, len(levels), generator=g) * 3)
    assert idx.min() >= 0 and idx.max() < q.codebook_size
    assert torch.equal(q.codes_to_latents(out.codes), out.latents)


def test_mixed_radix_order_matches_enumeration() -> None:
    levels = [3, 2, 4]
    q = FSQ(levels)
    # digit 0 is least significant: itertools.product over reversed levels, reversed back
    expected = [tuple(reversed(t)) for t in itertools.product(*[range(v) for v in reversed(levels)])]
    digits = q.index_to_digits(torch.arange(q.codebook_size))
    assert [tuple(r) for r in digits.tolist()] == expected


@pytest.mark.parametrize("level", [2, 3, 4, 5, 8])
def test_every_level_count_is_reachable_and_symmetric(level: int) -> None:
    q = FSQ([level]).eval()
    x = torch.linspace(-6, 6, 4001).unsqueeze(-1)
    out = q(x)
    assert torch.unique(out.codes).numel() == level  # every level is used
    values = torch.unique(out.latents)
    assert torch.allclose(values, -values.flip(0))  # grid symmetric around 0
    assert torch.allclose(values, torch.linspace(-1, 1, level))
    # z = 0 is the centre of the range: the middle level (odd) or the boundary (even)
    mid = q(torch.tensor([[1e-4], [-1e-4]])).latents
    if level % 2:
        assert torch.all(mid == 0)
    else:
        assert mid[0] > 0 > mid[1]


def test_projection_and_groups() -> None:
    q = FSQ([8, 5, 5], dim=32, num_codebooks=2)
    assert q.codebook_size == 200 and q.num_codebooks == 2
    x = torch.randn(2, 3, 32, requires_grad=True)
    out = q(x)
    assert out.latents.shape == (2, 3, 32) and out.codes.shape == (2, 3, 2)
    out.latents.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    q.eval()
    out = q(x)
    assert torch.equal(q.codes_to_latents(out.codes), out.latents)


def test_straight_through_gradient_is_bound_derivative() -> None:
    q = FSQ([5])
    z = torch.tensor([[0.3]], requires_grad=True)
    q(z).latents.sum().backward()
    # d/dz of tanh(z) * 2 * (1 + eps) / 2 = (1 - tanh^2) * (1 + eps)
    expected = (1 - torch.tanh(torch.tensor(0.3)) ** 2) * (1 + q.eps)
    assert torch.allclose(z.grad, expected.reshape(1, 1))


@pytest.mark.parametrize("levels", [[1, 4], [8, 0], [], [2.5, 3], [True, 3]])
def test_bad_levels(levels: list) -> None:
    with pytest.raises(ValueError, match="levels"):
        FSQ(levels)


def test_bad_dim_and_codes() -> None:
    q = FSQ([4, 4])
    with pytest.raises(ValueError, match="D=2"):
        q(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        q.codes_to_latents(torch.tensor([[16]]))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        q.codes_to_latents(torch.tensor([[-1]]))
