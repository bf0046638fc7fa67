"""Speculative Jacobi decoding: greedy acceptance == plain greedy; sampled output decodes; several per forward."""

from __future__ import annotations

import pytest
import torch
from gen_helpers import make_model, make_vocab

from omnitok.generation import generate


@pytest.mark.parametrize("window", [1, 4, 16])
def test_greedy_jacobi_equals_greedy(window):
    vocab = make_vocab()
    model = make_model(vocab, seed=7)
    kw = dict(grid=(4, 5), temperature=0, cfg_scale=2.0)
    prompts = ["a red apple", "zero one two three"]
    plain = generate(model, vocab, prompts, "image", **kw)
    jac = generate(model, vocab, prompts, "image", method="jacobi", jacobi_window=window, **kw)
    for x, y in zip(plain.ids, jac.ids):
        assert torch.equal(x, y)
    assert jac.stats["forwards"] <= plain.stats["forwards"]
    assert jac.stats["accepted_per_step"] >= 1.0


def test_greedy_jacobi_accepts_several_tokens_per_forward():
    """A model that repeats itself (tiny weights, peaked by the tied embeddings) lets Jacobi iterations converge."""
    vocab = make_vocab()
    model = make_model(vocab, seed=8, init_std=0.02)
    jac = generate(model, vocab, "x", "image", grid=(6, 6), temperature=0, cfg_scale=1.0, method="jacobi")
    plain = generate(model, vocab, "x", "image", grid=(6, 6), temperature=0, cfg_scale=1.0)
    assert torch.equal(jac.ids[0], plain.ids[0])
    assert jac.stats["accepted_per_step"] > 1.5


@pytest.mark.parametrize("produce,grid", [("image", (3, 4)), ("video", (2, 2, 2)), ("audio", (4,))])
def test_sampled_jacobi_decodes_and_reproduces(produce, grid):
    vocab = make_vocab()
    model = make_model(vocab, seed=9)
    kw = dict(grid=grid, cfg_scale=2.0, top_k=8, seed=3, num_samples=2, method="jacobi", jacobi_window=5)
    a = generate(model, vocab, "zero", produce, **kw)
    b = generate(model, vocab, "zero", produce, **kw)
    for x, y, doc in zip(a.ids, b.ids, a.documents):
        assert torch.equal(x, y)
        assert doc.segments[-1].modality == produce


def test_sampled_jacobi_keeps_the_distribution():
    """First-code frequencies from Jacobi and from plain sampling agree (the acceptance rule is exact)."""
    vocab = make_vocab()
    model = make_model(vocab, seed=10, init_std=0.3)
    kw = dict(grid=(1, 3), cfg_scale=1.0, top_k=4, num_samples=300)
    counts = []
    for method in ("cached", "jacobi"):
        out = generate(model, vocab, "zero", "image", seed=1 if method == "cached" else 2, method=method,
                       decode_data=False, **kw)
        second = torch.stack([ids[1] for ids in out.ids])  # the second code: drawn by speculative acceptance
        counts.append(torch.bincount(second, minlength=vocab.size).float() / len(second))
    assert (counts[0] - counts[1]).abs().max() < 0.12
