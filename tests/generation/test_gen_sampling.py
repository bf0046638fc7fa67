"""Temperature / top-k / top-p / multinomial against naive per-row references; seeds reproduce."""

from __future__ import annotations

import pytest
import torch

from omnitok.generation.sampling import SamplingParams, filter_logits, probabilities, sample


def naive_top_k(row: list[float], k: int) -> set[int]:
    order = sorted(range(len(row)), key=lambda i: -row[i])
    kth = row[order[k - 1]]
    return {i for i, x in enumerate(row) if x >= kth}


def naive_top_p(row: list[float], p: float) -> set[int]:
    z = torch.tensor(row).softmax(0).tolist()
    order = sorted(range(len(row)), key=lambda i: -z[i])
    keep, total = set(), 0.0
    for i in order:
        keep.add(i)
        total += z[i]
        if total >= p:
            break
    return keep


@pytest.mark.parametrize("k", [1, 3, 17])
def test_top_k_matches_naive(k):
    torch.manual_seed(0)
    logits = torch.randn(5, 40)
    out = filter_logits(logits, SamplingParams(top_k=k))
    for r in range(5):
        kept = set(torch.isfinite(out[r]).nonzero().flatten().tolist())
        assert kept == naive_top_k(logits[r].tolist(), k)
        torch.testing.assert_close(out[r][list(kept)], logits[r][list(kept)])


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.999])
def test_top_p_matches_naive(p):
    torch.manual_seed(1)
    logits = torch.randn(6, 30) * 2
    out = filter_logits(logits, SamplingParams(top_p=p))
    for r in range(6):
        kept = set(torch.isfinite(out[r]).nonzero().flatten().tolist())
        assert kept == naive_top_p(logits[r].tolist(), p)


def test_temperature_then_top_k_then_top_p():
    torch.manual_seed(2)
    logits = torch.randn(3, 50)
    params = SamplingParams(temperature=0.5, top_k=10, top_p=0.8)
    out = filter_logits(logits, params)
    for r in range(3):
        scaled = (logits[r] / 0.5).tolist()
        k = naive_top_k(scaled, 10)
        masked = [x if i in k else float("-inf") for i, x in enumerate(scaled)]
        assert set(torch.isfinite(out[r]).nonzero().flatten().tolist()) == naive_top_p(masked, 0.8) & k


def test_constraints_survive_filtering():
    logits = torch.randn(2, 20)
    logits[:, :15] = float("-inf")
    for params in (SamplingParams(top_k=10), SamplingParams(top_p=0.99), SamplingParams(temperature=0.3)):
        ids = sample(logits, params, torch.Generator().manual_seed(0))
        assert (ids >= 15).all()


def test_sample_frequencies_follow_the_distribution():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, -5.0, 0.5])
    params = SamplingParams(temperature=0.8, top_k=4)
    probs = probabilities(logits, params)
    n = 40000
    ids = sample(logits.expand(n, -1), params, torch.Generator().manual_seed(0))
    freq = torch.bincount(ids, minlength=6).float() / n
    assert freq[4] == 0 and freq[3] == 0  # outside the top 4
    torch.testing.assert_close(freq, probs, atol=0.01, rtol=0)


def test_greedy_and_seeds():
    logits = torch.randn(4, 100)
    assert torch.equal(sample(logits, SamplingParams(temperature=0)), logits.argmax(-1))
    params = SamplingParams(top_p=0.95)
    a = sample(logits, params, torch.Generator().manual_seed(7))
    b = sample(logits, params, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    draws = {tuple(sample(logits, params, torch.Generator().manual_seed(s)).tolist()) for s in range(8)}
    assert len(draws) > 1


def test_bad_params():
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
