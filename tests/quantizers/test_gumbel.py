"""GumbelVQ: temperature schedule, hard/soft modes, KL-to-uniform prior, argmax codes in eval."""

from __future__ import annotations

import math

import pytest
import torch

from omnitok.quantizers.gumbel import GumbelVQ


def test_temperature_annealing_and_override() -> None:
    q = GumbelVQ(dim=8, codebook_size=16, temperature=1.0, min_temperature=0.5, anneal_rate=0.1).train()
    x = torch.randn(4, 8)
    temps = [float(q(x).metrics["temperature"]) for _ in range(6)]
    assert temps[0] == 1.0
    assert all(a > b for a, b in zip(temps, temps[1:]))
    assert math.isclose(temps[3], math.exp(-0.3), rel_tol=1e-6)
    for _ in range(50):
        q(x)
    assert q.temperature == 0.5  # floor
    q.set_temperature(2.0)
    assert float(q(x).metrics["temperature"]) == 2.0
    q.set_temperature(None)
    assert q.temperature == 0.5
    with pytest.raises(ValueError, match="temperature"):
        q.set_temperature(0.0)


def test_hard_latents_are_codewords_soft_are_mixtures() -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 8)
    hard = GumbelVQ(dim=8, codebook_size=16, hard=True).train()
    out = hard(x)
    assert torch.allclose(out.latents, hard.codebook.weight[out.codes[:, 0]], atol=1e-6)
    soft = GumbelVQ(dim=8, codebook_size=16, hard=False, temperature=5.0).train()
    out = soft(x)
    dist = torch.cdist(out.latents, soft.codebook.weight).min(-1).values
    assert (dist > 1e-3).all()  # a mixture, not a codeword
    x = x.requires_grad_()
    soft(x).latents.sum().backward()
    assert x.grad.abs().sum() > 0


def test_kl_to_uniform_is_zero_for_uniform_logits() -> None:
    q = GumbelVQ(dim=4, codebook_size=8, kl_weight=1.0)
    torch.nn.init.zeros_(q.to_logits.weight)
    torch.nn.init.zeros_(q.to_logits.bias)
    out = q(torch.randn(10, 4))
    assert abs(float(out.loss.detach())) < 1e-6
    torch.nn.init.normal_(q.to_logits.weight, std=3.0)
    assert float(q(torch.randn(10, 4)).loss.detach()) > 0.01


def test_eval_codes_are_argmax() -> None:
    q = GumbelVQ(dim=4, codebook_size=8, codebook_dim=3).eval()
    x = torch.randn(20, 4)
    out = q(x)
    assert torch.equal(out.codes[:, 0], q.to_logits(x).argmax(-1))
    assert out.latents.shape == (20, 4)
    assert torch.equal(q.codes_to_latents(out.codes), out.latents)
    assert int(q.step) == 0  # eval does not advance the schedule


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"codebook_size": 1}, "codebook_size"),
        ({"temperature": 0.0}, "temperature"),
        ({"min_temperature": 2.0}, "min_temperature"),
        ({"anneal_rate": -1.0}, "anneal_rate"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"dim": 4, "codebook_size": 8} | kwargs
    with pytest.raises(ValueError, match=match):
        GumbelVQ(**args)
