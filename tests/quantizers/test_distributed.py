"""Codebooks (VQ, low-dim cosine VQ, RVQ with dropout, AQ) stay bitwise identical across ranks
(2 CPU processes, gloo) after every step, with different batch sizes per rank (one rank even gets
an empty batch), and nothing hangs."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import _vq_dist_worker as _dist_worker  # tests/quantizers is on sys.path under pytest's default import mode
import pytest
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


def test_codebooks_identical_across_ranks(tmp_path: Path) -> None:
    world = 2
    ctx = mp.start_processes(
        _dist_worker.run,
        args=(world, _free_port(), str(tmp_path)),
        nprocs=world,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"distributed quantizer training did not finish within {TIMEOUT_S} s (hang?)")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    logs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    steps = len(_dist_worker.BATCH_SIZES[0])
    for name in logs[0]:
        assert len(logs[0][name]) == len(logs[1][name]) == steps
        for step, (a, b) in enumerate(zip(logs[0][name], logs[1][name])):
            assert a == b, f"{name}: buffers differ across ranks after step {step}"
        assert logs[0][name][0] != logs[0][name][-1], f"{name}: codebook never changed"
