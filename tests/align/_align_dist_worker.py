"""Worker of test_distributed.py: one rank of a 2-process gloo group computes its share of each contrastive loss
and the gradients (summed over ranks, as the trainer does) and writes them to ``rank<r>.json``."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist

from dist_helpers import join_group  # tests/ is on sys.path (conftest.py)
from omnitok.align.clip_loss import TARGETS

N, D_IN, D = 8, 6, 5


def problem(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor,
                                     torch.Tensor, torch.Tensor]:
    """Two linear towers, a global batch of N pairs with repeated labels, a scale and a bias."""
    torch.manual_seed(seed)
    fa, fb = torch.nn.Linear(D_IN, D).double(), torch.nn.Linear(D_IN, D).double()
    xa, xb = torch.randn(N, D_IN, dtype=torch.float64), torch.randn(N, D_IN, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 3, 3, 0])
    scale = torch.tensor(12.0, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
    return fa, fb, xa, xb, labels, scale, bias


def losses_and_grads(rows: slice, world: int) -> dict[str, dict[str, list]]:
    """Each loss on rows ``rows`` of the global batch: its value summed over ranks and every gradient."""
    from omnitok.align import clip_loss, siglip_loss

    out = {}
    cases = [(f"clip-{t}", t) for t in TARGETS] + [("siglip", None), ("siglip-label", "label")]
    for name, targets in cases:
        fa, fb, xa, xb, labels, scale, bias = problem()
        a = torch.nn.functional.normalize(fa(xa[rows]), dim=-1)
        b = torch.nn.functional.normalize(fb(xb[rows]), dim=-1)
        if name.startswith("clip"):
            loss = clip_loss(a, b, scale, labels[rows], targets)
        else:
            loss = siglip_loss(a, b, scale, bias, labels[rows] if targets else None)
        loss.backward()
        params = {"loss": loss.detach(), **{f"a.{k}": p.grad for k, p in fa.named_parameters()},
                  **{f"b.{k}": p.grad for k, p in fb.named_parameters()}, "scale": scale.grad,
                  "bias": bias.grad if bias.grad is not None else torch.zeros((), dtype=torch.float64)}
        if world > 1:
            for t in params.values():
                dist.all_reduce(t)
        out[name] = {k: v.flatten().tolist() for k, v in params.items()}
    return out


def run(rank: int, world: int, port: int, out_dir: str) -> None:
    join_group(rank, world, port)
    try:
        b = N // world
        result = losses_and_grads(slice(rank * b, (rank + 1) * b), world)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()
