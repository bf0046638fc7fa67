"""AdditiveVQ: greedy and beam encoding, joint gradient training."""

from __future__ import annotations

import itertools

import pytest
import torch
from quant_helpers import check_forward_contract

from omnitok.quantizers.aq import AdditiveVQ


@pytest.mark.parametrize("beam", [1, 4])
def test_shapes_codes_roundtrip_and_grads(beam: int) -> None:
    torch.manual_seed(0)
    aq = AdditiveVQ(8, 16, 3, beam_width=beam)
    x = torch.randn(2, 10, 8, requires_grad=True)
    check_forward_contract(aq, x, num_codebooks=3, codebook_size=16)
    assert aq.codebooks.grad is not None and aq.codebooks.grad.abs().sum() > 0


def test_wide_beam_is_exhaustive_and_beats_greedy() -> None:
    torch.manual_seed(0)
    k, m = 4, 3
    aq = AdditiveVQ(6, k, m, beam_width=k ** (m - 1), kmeans_init=False).eval()
    x = torch.randn(200, 6) * 0.5
    with torch.no_grad():
        beam_err = (aq(x).latents - x).square().sum(-1)
        aq.beam_width = 1
        greedy_err = (aq(x).latents - x).square().sum(-1)
        combos = torch.tensor(list(itertools.product(range(k), repeat=m)))  # (k^m, m)
        sums = sum(aq.codebooks[j][combos[:, j]] for j in range(m))  # (k^m, D)
        best_err = torch.cdist(x, sums).square().min(dim=1).values
    assert torch.allclose(beam_err, best_err, atol=1e-4)  # beam k^(m-1) keeps every prefix
    assert float(beam_err.mean()) < float(greedy_err.mean())


def test_training_lowers_error() -> None:
    torch.manual_seed(0)
    aq = AdditiveVQ(8, 32, 2, beam_width=2)
    opt = torch.optim.Adam(aq.parameters(), lr=1e-2)
    x = torch.randn(512, 8)
    errs = []
    for _ in range(12):
        out = aq(x)
        errs.append(float((out.latents.detach() - x).square().mean()))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert errs[-1] < errs[0]


def test_seeded_determinism() -> None:
    x = torch.randn(128, 8)
    outs = []
    for _ in range(2):
        torch.manual_seed(9)
        aq = AdditiveVQ(8, 16, 2, beam_width=3)
        outs.append(aq(x).codes)
    assert torch.equal(*outs)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_codebooks"):
        AdditiveVQ(8, 16, 0)
    with pytest.raises(ValueError, match="beam_width"):
        AdditiveVQ(8, 16, 2, beam_width=0)
    with pytest.raises(ValueError, match="codebook_size"):
        AdditiveVQ(8, 1, 2)
