"""Two CPU processes (gloo, torchrun; DDP and FSDP2) with batch b each equal one process with batch 2b."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from omnitok.train.lm import TrainConfig, train

MODEL = dict(n_layer=2, dim=32, n_head=4, n_kv_head=2, ffn_multiple_of=16, max_seq_len=64, tie_embeddings=True)
STEPS = ["max_steps=3", "warmup_steps=1", "lr=3e-3", "seq_len=32", "eval_every=0", "save_every=3",
         "log_every=1", "grad_accum=2",
         "precision=fp32"]  # bf16 autocast rounds differently when the batch is split


@pytest.mark.distributed
@pytest.mark.parametrize(("strategy", "optimizer"), [("ddp", "adamw"), ("fsdp", "adamw"), ("ddp", "muon")])
def test_two_processes_equal_single_process(tmp_path, strategy, optimizer):
    steps = [*STEPS, f"optimizer={optimizer}"]  # Muon: each rank orthogonalises the same averaged gradient
    over = [f"model.{k}={v}" for k, v in MODEL.items()] + [f"train.distributed={strategy}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "-m", "omnitok.cli", "train", "lm", "--preset", "debug", "--data", "synthetic:vocab=64",
           "--out", str(tmp_path / "ddp"), "--no-progress", "--device", "cpu", "batch_size=2", *steps, *over]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    tc = TrainConfig(**{k: (v if not v[0].isdigit() else float(v) if "." in v or "e-" in v else int(v))
                        for k, v in (s.split("=") for s in steps)}, batch_size=4)
    train({**MODEL}, tc, "synthetic:vocab=64", tmp_path / "single", progress=False, device="cpu")
    a = load_file(str(tmp_path / "ddp" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    moved = load_file(str(tmp_path / "ddp" / "checkpoints" / "step_00000003" / "model.safetensors"))
    assert not torch.equal(moved["norm.weight"], torch.ones_like(moved["norm.weight"]))  # it did train
