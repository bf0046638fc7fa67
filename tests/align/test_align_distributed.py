"""Two gloo processes with half the batch each give the loss and the gradients of one process with the whole
batch, for the CLIP loss (diagonal, label-aware, de-duplicated targets) and the SigLIP loss."""

from __future__ import annotations

from pathlib import Path

import _align_dist_worker as worker  # tests/align is on sys.path under pytest's default import mode
import pytest
import torch
import torch.distributed as dist

from dist_helpers import run_ranks  # tests/ is on sys.path (conftest.py)

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"),
]


def test_two_ranks_equal_one_process(tmp_path: Path) -> None:
    world = 2
    ranks = run_ranks(worker.run, tmp_path, "the 2-process loss", 90.0, world=world)
    single = worker.losses_and_grads(slice(0, worker.N), 1)
    assert set(single) == set(ranks[0]) and len(single) == 5
    for case, ref in single.items():
        for key, value in ref.items():
            for r in range(world):
                torch.testing.assert_close(torch.tensor(ranks[r][case][key]), torch.tensor(value), rtol=1e-9,
                                           atol=1e-12, msg=f"{case} {key} rank {r}")
        assert any(abs(v) > 1e-6 for v in ref["a.weight"]), case  # a gradient that could have differed
