"""Codebooks (VQ, low-dim cosine VQ, RVQ with dropout, AQ) stay bitwise identical across ranks
(2 CPU processes, gloo) after every step, with different batch sizes per rank (one rank even gets
an empty batch), and nothing hangs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch.distributed as dist

import dist_helpers as dh  # tests/ is on sys.path (its conftest.py)

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"),
]


def test_codebooks_identical_across_ranks(tmp_path: Path) -> None:
    dh.check_codebooks_equal(dh.run_ranks(dh.codebook_worker, tmp_path, "distributed quantizer training", 90.0, "gloo"))
