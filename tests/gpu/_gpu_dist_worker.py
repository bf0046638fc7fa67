"""Worker for test_gpu.py's DDP test: one spawned rank per GPU (NCCL), the quantizers of
tests/quantizers/_vq_dist_worker.py trained on different data per rank, a digest of every buffer per step."""

from __future__ import annotations

import hashlib
import json
import os

import torch
import torch.distributed as dist

from omnitok.quantizers.aq import AdditiveVQ
from omnitok.quantizers.rvq import ResidualVQ
from omnitok.quantizers.vq import VectorQuantizer

# Per-step batch sizes of each rank: different sizes, and an empty batch on rank 1 at step 2.
BATCH_SIZES = {0: [300, 250, 64, 300, 128, 200], 1: [170, 40, 0, 512, 33, 90]}


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def run(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", rank=rank, world_size=world, device_id=device)
    try:
        torch.manual_seed(0)  # same initial modules on every rank
        models = {
            "vq": VectorQuantizer(8, 32, restart_threshold=0.5),
            "vq_cosine_lowdim": VectorQuantizer(8, 32, codebook_dim=4, distance="cosine", restart_threshold=0.5),
            "rvq": ResidualVQ(8, 16, 3, quantizer_dropout=0.5, restart_threshold=0.5),
            "aq": AdditiveVQ(8, 16, 2, beam_width=2),
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
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(log, f)
    finally:
        dist.destroy_process_group()
