"""A codec trained a few steps with each of pq, aq and gumbel, by preset name (debug size), encodes and decodes."""

from __future__ import annotations

import json
import math

import pytest
import torch

from omnitok.cli import main
from omnitok.codecs.base import load_codec
from omnitok.codecs.builder import load_preset
from omnitok.quantizers.registry import QUANTIZERS


@pytest.mark.parametrize(("preset", "family", "num_codebooks"),
                         [("debug-pq", "pq", 2), ("debug-aq", "aq", 2), ("debug-gumbel", "gumbel", 1)])
def test_debug_preset_trains_encodes_and_decodes(tmp_path, preset, family, num_codebooks):
    assert load_preset(preset)["quantizer"]["name"] == family
    out = tmp_path / preset
    assert main(["train", "codec", "--preset", preset, "--out", str(out), "train.steps=4", "train.log_every=1",
                 "train.sample_every=0", "train.save_every=4", "train.progress=false"]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and all(math.isfinite(r["loss"]) for r in log)

    codec = load_codec(out / "codec").eval()
    assert isinstance(codec.quantizer, QUANTIZERS[family])
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16) * 2 - 1  # (B, C, H, W) in [-1, 1]
    with torch.no_grad():
        codes = codec.encode(x)  # (2, 4, 4, num_codebooks)
        again = codec.encode(x)
        y = codec.decode(codes)  # (2, 3, 16, 16)
    assert codes.shape == (2, 4, 4, num_codebooks) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < codec.codebook_size
    assert torch.equal(codes, again)  # eval encoding is deterministic (gumbel samples only in training)
    assert y.shape == x.shape and torch.isfinite(y).all()
