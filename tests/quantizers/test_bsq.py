"""BSQ: unit-norm binary codes, index maps, the factorised entropy without (N, 2^d)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from quant_helpers import MaxNumel, index_round_trip

from omnitok.quantizers._utils import binary_entropy_from_logits
from omnitok.quantizers.bsq import BSQ


def test_codes_are_unit_sign_vectors() -> None:
    q = BSQ(dim=12, bits=12).eval()
    x = torch.randn(100, 12) * 7
    out = q(x)
    assert torch.allclose(out.latents.norm(dim=-1), torch.ones(100))
    assert torch.equal(out.latents, torch.sign(x) / math.sqrt(12))
    assert torch.equal(q.codes_to_latents(out.codes), out.latents)


@settings(max_examples=30, deadline=None)
@given(bits=st.integers(1, 62), seed=st.integers(0, 2**16))
def test_index_maps_identity(bits: int, seed: int) -> None:
    code = index_round_trip(BSQ(dim=bits, bits=bits), bits, seed)
    assert torch.allclose(code.norm(dim=-1), torch.ones(len(code)), atol=1e-5)


def test_factorised_entropy_is_per_bit() -> None:
    torch.manual_seed(0)
    q = BSQ(dim=8, bits=8, inv_temperature=2.0, commitment_weight=0.0).train()
    x = torch.randn(1000, 8) + 0.3
    out = q(x)
    u = x / x.norm(dim=-1, keepdim=True)
    logits = 2 * 2.0 * u / math.sqrt(8)
    per_sample = binary_entropy_from_logits(logits).sum(-1).mean()
    p_mean = torch.sigmoid(logits).mean(0)
    codebook = binary_entropy_from_logits(torch.logit(p_mean)).sum()
    assert torch.allclose(out.metrics["per_sample_entropy"], per_sample, rtol=1e-5)
    assert torch.allclose(out.metrics["codebook_entropy"], codebook, rtol=1e-5)
    assert torch.allclose(out.loss, 0.1 * (per_sample - codebook), rtol=1e-5)


def test_d18_bsq_train_step_is_memory_bounded() -> None:
    n, d = 65536, 18
    q = BSQ(dim=32, bits=d).train()
    x = torch.randn(n, 32, requires_grad=True)
    with MaxNumel() as watch:
        out = q(x)
        (out.latents.square().mean() + out.loss).backward()
    assert watch.max_numel <= n * 32  # nothing bigger than the input itself
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="bits"):
        BSQ(dim=4, bits=0)
    with pytest.raises(ValueError, match="entropy_group_size"):
        BSQ(dim=4, bits=4, entropy_group_size=0)
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        BSQ(dim=4, bits=4).codes_to_latents(torch.tensor([[16]]))
