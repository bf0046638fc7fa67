"""Codebook patterns: how a (T, n_q) grid of multi-codebook codes becomes one token stream and back.

* ``flatten``: time-major, every step emits all its levels: ``c[0,0] c[0,1] .. c[0,q-1] c[1,0] ..``
  (length ``T * n_q``; the "flattening" pattern of MusicGen, https://arxiv.org/abs/2306.05284 sec. 2.2).
* ``delay``: level k is shifted right by k steps, so at step s level k carries time ``s - k``; the
  ``T + n_q - 1`` steps are filled with a pad where ``s - k`` is outside ``[0, T)`` (MusicGen's delay pattern).
  A model that emits one step at a time then predicts level k of time t after level 0 of time t + k.
* ``parallel``: the (T, n_q) grid itself, one step per time with all levels at once (for models with n_q
  output heads). As a single stream it is identical to ``flatten``.

Every layout is written as a grid of steps (S, n_q) which a single-stream model reads row-major; the
stream helpers ``to_stream`` / ``from_stream`` do that. Inputs may carry leading batch dimensions
(``(..., T, n_q)``); numpy arrays and torch tensors are both accepted and the same type is returned.
The tests check every function against a naive per-element loop (as audiocraft tests its patterns).
"""

from __future__ import annotations

from typing import Literal, TypeVar

import numpy as np
import torch

__all__ = [
    "PATTERNS",
    "delay_codes",
    "flatten_codes",
    "from_stream",
    "level_of_step_position",
    "num_steps",
    "parallel_codes",
    "to_stream",
    "undelay_codes",
    "unflatten_codes",
    "unparallel_codes",
]

PatternName = Literal["flatten", "delay", "parallel"]
PATTERNS: tuple[str, ...] = ("flatten", "delay", "parallel")

A = TypeVar("A", np.ndarray, torch.Tensor)


def _check_grid(codes: A, name: str = "codes") -> None:
    if codes.ndim < 2:
        raise ValueError(f"{name}: expected (..., T, n_q), got shape {tuple(codes.shape)}")


def _check_pattern(pattern: str) -> None:
    if pattern not in PATTERNS:
        raise ValueError(f"pattern: expected one of {PATTERNS}, got {pattern!r}")


def num_steps(pattern: str, T: int, n_q: int) -> int:
    """Number of steps (rows of the (S, n_q) layout) for T time steps."""
    _check_pattern(pattern)
    if pattern == "delay":
        return T + n_q - 1 if T > 0 else 0
    return T


def flatten_codes(codes: A) -> A:
    """(..., T, n_q) -> (..., T * n_q), time-major."""
    _check_grid(codes)
    return codes.reshape(*codes.shape[:-2], codes.shape[-2] * codes.shape[-1])


def unflatten_codes(seq: A, n_q: int) -> A:
    """(..., T * n_q) -> (..., T, n_q); ValueError when the length is not a multiple of n_q."""
    if n_q < 1:
        raise ValueError(f"n_q must be >= 1, got {n_q}")
    L = seq.shape[-1]
    if L % n_q:
        raise ValueError(f"stream length {L} is not a multiple of n_q={n_q}")
    return seq.reshape(*seq.shape[:-1], L // n_q, n_q)


def parallel_codes(codes: A) -> A:
    """(..., T, n_q) -> (..., T, n_q): one step per time step (a copy)."""
    _check_grid(codes)
    return codes.copy() if isinstance(codes, np.ndarray) else codes.clone()


def unparallel_codes(grid: A) -> A:
    """Inverse of :func:`parallel_codes`."""
    return parallel_codes(grid)


def _delay_index(T: int, n_q: int) -> tuple[np.ndarray, np.ndarray]:
    """time index (S, n_q) of each slot of the delay layout (-1 = pad), and the valid mask."""
    S = T + n_q - 1
    t = np.arange(S)[:, None] - np.arange(n_q)[None, :]  # (S, n_q): time carried by level k at step s
    valid = (t >= 0) & (t < T)
    return np.where(valid, t, -1), valid


def delay_codes(codes: A, pad: int) -> A:
    """(..., T, n_q) -> (..., T + n_q - 1, n_q) with level k shifted by k steps, ``pad`` elsewhere."""
    _check_grid(codes)
    T, n_q = codes.shape[-2], codes.shape[-1]
    if T == 0:
        return codes[..., :0, :]
    tidx, valid = _delay_index(T, n_q)
    level = np.tile(np.arange(n_q), (tidx.shape[0], 1))
    safe_t = np.where(valid, tidx, 0)
    if isinstance(codes, np.ndarray):
        out = codes[..., safe_t, level]  # (..., S, n_q)
        return np.where(valid, out, np.asarray(pad, dtype=codes.dtype))
    st = torch.as_tensor(safe_t, device=codes.device)
    lv = torch.as_tensor(level, device=codes.device)
    out = codes[..., st, lv]
    return torch.where(torch.as_tensor(valid, device=codes.device), out, torch.full_like(out, pad))


def undelay_codes(grid: A, pad: int | None = None) -> A:
    """(..., S, n_q) delay layout -> (..., S - n_q + 1, n_q). With ``pad`` given, checks that every slot
    outside the valid diagonal band holds ``pad`` and none inside does (ValueError naming the step)."""
    _check_grid(grid, "grid")
    S, n_q = grid.shape[-2], grid.shape[-1]
    if S == 0:
        return grid[..., :0, :]
    T = S - n_q + 1
    if T < 1:
        raise ValueError(f"delay layout with {S} steps cannot hold n_q={n_q} levels (needs >= {n_q} steps)")
    # time t, level k sits at step t + k
    steps = np.arange(T)[:, None] + np.arange(n_q)[None, :]  # (T, n_q)
    level = np.tile(np.arange(n_q), (steps.shape[0], 1))
    if pad is not None:
        _, valid = _delay_index(T, n_q)
        g = grid if isinstance(grid, np.ndarray) else grid.detach().cpu().numpy()
        is_pad = g == pad
        bad = (is_pad & valid) | (~is_pad & ~valid)
        if bad.any():
            step = int(np.argwhere(bad.reshape(-1, S, n_q).any(0))[0][0])
            raise ValueError(f"delay layout: pads out of place at step {step}")
    if isinstance(grid, np.ndarray):
        return grid[..., steps, level]
    return grid[..., torch.as_tensor(steps, device=grid.device), torch.as_tensor(level, device=grid.device)]


def to_stream(codes: A, pattern: str, pad: int) -> A:
    """(..., T, n_q) -> (..., L) single stream for ``pattern`` (flatten/parallel: T*n_q; delay: (T+n_q-1)*n_q)."""
    _check_pattern(pattern)
    if pattern == "delay":
        return flatten_codes(delay_codes(codes, pad))
    return flatten_codes(codes)


def from_stream(seq: A, pattern: str, n_q: int, pad: int | None = None) -> A:
    """Inverse of :func:`to_stream`: (..., L) -> (..., T, n_q) (checks pads when ``pad`` is given)."""
    _check_pattern(pattern)
    grid = unflatten_codes(seq, n_q)
    if pattern == "delay":
        return undelay_codes(grid, pad)
    return grid


def level_of_step_position(i: int, n_q: int) -> int:
    """Codebook level of stream position i (all patterns are read row-major, so it is ``i % n_q``)."""
    return i % n_q
