"""Two gloo processes with half the batch each give the loss and the gradients of one process with the whole
batch, for the CLIP loss (diagonal, label-aware, de-duplicated targets) and the SigLIP loss."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import _align_dist_worker as worker  # tests/align is on sys.path under pytest's default import mode
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"),
]

TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_ranks_equal_one_process(tmp_path: Path) -> None:
    world = 2
    ctx = mp.start_processes(worker.run, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"the 2-process loss did not finish within {TIMEOUT_S} s (hang?)")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    single = worker.losses_and_grads(slice(0, worker.N), 1)
    assert set(single) == set(ranks[0]) and len(single) == 5
    for case, ref in single.items():
        for key, value in ref.items():
            for r in range(world):
                torch.testing.assert_close(torch.tensor(ranks[r][case][key]), torch.tensor(value), rtol=1e-9,
                                           atol=1e-12, msg=f"{case} {key} rank {r}")
        assert any(abs(v) > 1e-6 for v in ref["a.weight"]), case  # a gradient that could have differed
