"""What the tests that spawn a torch.distributed group share (tests/ is on sys.path: its conftest.py sits there).

* :func:`run_ranks`: spawn ``world`` ranks of a worker ``fn(rank, world, port, out_dir, *args)`` on a free local
  port, fail the test past a deadline (a hang) and kill what is left, then read each rank's ``rank<r>.json``;
* :func:`join_group`: the worker's side, joining the group (gloo on the CPU, NCCL with one GPU a rank);
* :func:`codebook_worker`: the codebook experiment of the CPU (tests/quantizers) and GPU (tests/gpu) tests: VQ,
  low-dim cosine VQ, RVQ with dropout and AQ trained on different data and batch sizes per rank (one rank gets an
  empty batch), a digest of every floating state tensor after each step; :func:`check_codebooks_equal` checks the
  ranks' digests.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

# Per-step batch sizes of each rank: different sizes, and an empty batch on rank 1 at step 2.
BATCH_SIZES = {0: [300, 250, 64, 300, 128, 200], 1: [170, 40, 0, 512, 33, 90]}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_ranks(fn: Callable[..., None], out_dir: Path, what: str, timeout_s: float, *args: Any,
              world: int = 2) -> list[Any]:
    """Run ``fn(rank, world, port, str(out_dir), *args)`` in ``world`` spawned processes; -> each rank's JSON."""
    ctx = mp.start_processes(fn, args=(world, free_port(), str(out_dir), *args), nprocs=world, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + timeout_s
    try:
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"{what} did not finish within {timeout_s} s (hang?)")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(world)]


def join_group(rank: int, world: int, port: int, backend: str = "gloo") -> torch.device:
    """Join the group on the local ``port`` -> this rank's device (the CPU with one thread under gloo, GPU
    ``rank`` under NCCL)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if backend == "nccl":
        device = torch.device("cuda", rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", rank=rank, world_size=world, device_id=device)
        return device
    torch.set_num_threads(1)
    dist.init_process_group(backend, rank=rank, world_size=world)
    return torch.device("cpu")


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def codebook_worker(rank: int, world: int, port: int, out_dir: str, backend: str) -> None:
    """One rank of the codebook experiment: writes ``{quantizer: [[digest per state tensor] per step]}``."""
    from omnitok.quantizers.aq import AdditiveVQ
    from omnitok.quantizers.rvq import ResidualVQ
    from omnitok.quantizers.vq import VectorQuantizer

    device = join_group(rank, world, port, backend)
    try:
        torch.manual_seed(0)  # same initial modules on every rank
        models = {
            "vq": VectorQuantizer(8, 32, restart_threshold=0.5),
            "vq_cosine_lowdim": VectorQuantizer(8, 32, codebook_dim=4, distance="cosine", restart_threshold=0.5),
            "rvq": ResidualVQ(8, 16, 3, quantizer_dropout=0.5, restart_threshold=0.5),
            "aq": AdditiveVQ(8, 16, 2, beam_width=2),  # k-means init of both codebooks is all-reduced
        }
        models = {k: m.to(device) for k, m in models.items()}
        torch.manual_seed(100 + rank)  # different data and sampling on each rank
        centers = torch.randn(64, 8) * 3 + 2
        log: dict[str, list[list[str]]] = {name: [] for name in models}
        for n in BATCH_SIZES[rank]:
            x = (centers[torch.randint(64, (n,))] + 0.1 * torch.randn(n, 8)).to(device)  # (n, 8)
            for name, model in models.items():
                model(x)
                state = [*model.parameters(), *model.buffers()]
                log[name].append([_digest(t) for t in state if t.is_floating_point()])
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(log))
    finally:
        dist.destroy_process_group()


def check_codebooks_equal(logs: list[dict[str, list[list[str]]]]) -> None:
    """Every quantizer's state is bitwise the same on both ranks after every step, and it changed."""
    for name in logs[0]:
        assert len(logs[0][name]) == len(logs[1][name]) == len(BATCH_SIZES[0])
        for step, (a, b) in enumerate(zip(logs[0][name], logs[1][name])):
            assert a == b, f"{name}: codebooks differ across ranks after step {step}"
        assert logs[0][name][0] != logs[0][name][-1], f"{name}: codebook never changed"
