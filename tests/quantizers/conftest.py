"""Shared fixtures for the quantizer tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


def make_mixture(
    n_clusters: int, dim: int, seed: int, offset: float = 4.0, spread: float = 0.1
) -> Callable[[int], torch.Tensor]:
    """A Gaussian mixture sampler: ``n_clusters`` tight clusters around random centres shifted by
    ``offset`` (off-centre data is what makes randomly initialised codebooks collapse)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(n_clusters, dim, generator=g) + offset  # (C, D)

    def sample(n: int) -> torch.Tensor:
        idx = torch.randint(n_clusters, (n,), generator=g)
        return centers[idx] + spread * torch.randn(n, dim, generator=g)  # (n, D)

    return sample


@pytest.fixture
def mixture() -> Callable[..., Callable[[int], torch.Tensor]]:
    return make_mixture
