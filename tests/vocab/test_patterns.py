"""Codebook patterns against a naive per-element reference (as audiocraft tests its patterns)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from omnitok.vocab import patterns

PAD = -7


def naive_stream(codes: np.ndarray, pattern: str, pad: int) -> list[int]:
    T, n_q = codes.shape
    out: list[int] = []
    if pattern in ("flatten", "parallel"):
        for t in range(T):
            for k in range(n_q):
                out.append(int(codes[t, k]))
        return out
    for s in range(T + n_q - 1 if T else 0):
        for k in range(n_q):
            t = s - k
            out.append(int(codes[t, k]) if 0 <= t < T else pad)
    return out


def naive_delay_grid(codes: np.ndarray, pad: int) -> np.ndarray:
    T, n_q = codes.shape
    grid = np.full((T + n_q - 1, n_q), pad, dtype=codes.dtype)
    for t in range(T):
        for k in range(n_q):
            grid[t + k, k] = codes[t, k]
    return grid


@settings(max_examples=60, deadline=None)
@given(T=st.integers(0, 12), n_q=st.integers(1, 5), pattern=st.sampled_from(patterns.PATTERNS), seed=st.integers(0, 999))
def test_stream_matches_reference_and_inverts(T: int, n_q: int, pattern: str, seed: int) -> None:
    codes = np.random.default_rng(seed).integers(0, 50, size=(T, n_q))
    stream = patterns.to_stream(codes, pattern, pad=PAD)
    assert stream.tolist() == naive_stream(codes, pattern, PAD)
    assert len(stream) == patterns.num_steps(pattern, T, n_q) * n_q
    if T:
        back = patterns.from_stream(stream, pattern, n_q, pad=PAD)
        np.testing.assert_array_equal(back, codes)
        # torch gives the same as numpy
        ts = patterns.to_stream(torch.from_numpy(codes), pattern, pad=PAD)
        assert ts.tolist() == stream.tolist()
        np.testing.assert_array_equal(patterns.from_stream(ts, pattern, n_q, pad=PAD).numpy(), codes)


def test_delay_grid_reference_batched() -> None:
    codes = np.random.default_rng(0).integers(0, 9, size=(3, 7, 4))  # (B, T, n_q)
    grid = patterns.delay_codes(codes, PAD)
    for b in range(3):
        np.testing.assert_array_equal(grid[b], naive_delay_grid(codes[b], PAD))
    np.testing.assert_array_equal(patterns.undelay_codes(grid, pad=PAD), codes)
    np.testing.assert_array_equal(patterns.unparallel_codes(patterns.parallel_codes(codes)), codes)
    np.testing.assert_array_equal(patterns.unflatten_codes(patterns.flatten_codes(codes), 4), codes)
    assert all(patterns.level_of_step_position(i, 4) == i % 4 for i in range(20))


def test_bad_layouts_raise() -> None:
    grid = patterns.delay_codes(np.arange(12).reshape(4, 3), PAD)
    grid[0, 2] = 5  # a code where the delay pattern has a pad
    with pytest.raises(ValueError, match="step 0"):
        patterns.undelay_codes(grid, pad=PAD)
    with pytest.raises(ValueError, match="multiple of n_q"):
        patterns.unflatten_codes(np.arange(7), 3)
    with pytest.raises(ValueError, match="pattern"):
        patterns.to_stream(np.zeros((2, 2), dtype=np.int64), "zigzag", pad=0)
