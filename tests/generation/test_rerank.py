"""best_of reranking: span_logprob equals a per-token loop; generate keeps the candidates the score ranks first."""

from __future__ import annotations

import pytest
import torch
from gen_helpers import GRIDS, make_model, make_vocab

from omnitok.generation import generate
from omnitok.generation.rerank import candidate_scores, span_logprob
from omnitok.vocab import Document, Text


@torch.no_grad()
def _naive_logprob(model, ids: torch.Tensor, a: int, b: int) -> float:
    """One document at a time, the whole prefix through the model for every scored id."""
    total = 0.0
    for t in range(a, b):
        logits, _ = model(ids[None, :t])
        total += float(torch.log_softmax(logits[0, -1].float(), -1)[ids[t]])
    return total


def test_span_logprob_equals_per_token_loop():
    vocab = make_vocab()
    model = make_model(vocab, seed=1)
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(0, vocab.size, (n,), generator=g) for n in (7, 12, 3, 9)]
    spans = [(1, 7), (4, 10), (2, 3), (5, 9)]  # the last row is scored short of its end
    got = span_logprob(model, rows, spans, batch_size=3)  # batches of unequal lengths, right-padded
    want = torch.tensor([_naive_logprob(model, r, a, b) for r, (a, b) in zip(rows, spans)])
    assert torch.allclose(got, want, atol=1e-4)


def test_span_logprob_rejects_bad_spans():
    vocab = make_vocab()
    model = make_model(vocab)
    with pytest.raises(ValueError, match="row 0: span"):
        span_logprob(model, [torch.arange(5)], [(0, 3)])
    with pytest.raises(ValueError, match="2 spans"):
        span_logprob(model, [torch.arange(5)], [(1, 3), (1, 2)])


@pytest.mark.parametrize("produce", ["image", "audio", "text"])
def test_best_of_keeps_the_highest_scored_candidates(produce):
    vocab = make_vocab()
    model = make_model(vocab, seed=2, init_std=0.5)
    prompts = ["a red apple", "handwritten digit seven seven"]
    kw = dict(grid=GRIDS[produce], seed=5, temperature=1.0, max_new_tokens=8 if produce == "text" else None)
    out = generate(model, vocab, prompts, produce, num_samples=2, best_of=3, **kw)
    assert len(out) == 4 and out.stats["candidates"] == 12
    # the same seed without reranking draws the same 6 candidates per prompt, in the same order
    every = generate(model, vocab, prompts, produce, num_samples=6, **kw)
    scores = torch.tensor(out.stats["candidate_scores"])  # (2, 6)
    for i in range(2):
        best = torch.argsort(scores[i], descending=True, stable=True)[:2]
        assert out.stats["chosen"][i] == best.tolist()
        for k, j in enumerate(best.tolist()):
            assert torch.equal(out.ids[2 * i + k], every.ids[6 * i + j])
            assert not out.documents[2 * i + k].problems
    # the stored scores are the reverse-task log-probabilities of those candidates
    again = candidate_scores(model, vocab, [[Text(p)] for p in prompts for _ in range(6)], every.outputs)
    assert torch.allclose(again.view(2, 6), scores, atol=1e-4)
    if produce != "text":
        assert all(seg.data is not None for seg in out.outputs)  # the kept candidates are decoded


def test_reverse_score_reads_the_prompt_after_the_candidate():
    vocab = make_vocab()
    model = make_model(vocab, seed=3)
    cand = generate(model, vocab, "a red apple", "image", grid=GRIDS["image"], seed=0).outputs[0]
    prompt = [Text("a red apple")]
    ids, spans = vocab.encode_with_spans(Document([cand, *prompt], bos=True, eos=True))
    want = _naive_logprob(model, torch.from_numpy(ids), *spans[1])
    assert float(candidate_scores(model, vocab, [prompt], [cand])[0]) == pytest.approx(want, abs=1e-4)
    fwd_ids, fwd_spans = vocab.encode_with_spans(Document([*prompt, cand], bos=True, eos=True))
    joint = want + _naive_logprob(model, torch.from_numpy(fwd_ids), *fwd_spans[1])
    got = float(candidate_scores(model, vocab, [prompt], [cand], score="joint")[0])
    assert got == pytest.approx(joint, abs=1e-4)


def test_best_of_one_is_plain_generation_and_bad_settings_are_refused():
    vocab = make_vocab()
    model = make_model(vocab, seed=4)
    a = generate(model, vocab, "a red apple", "image", grid=GRIDS["image"], seed=1, best_of=1)
    b = generate(model, vocab, "a red apple", "image", grid=GRIDS["image"], seed=1)
    assert torch.equal(a.ids[0], b.ids[0]) and "best_of" not in a.stats
    with pytest.raises(ValueError, match="best_of must be >= 1"):
        generate(model, vocab, "a red apple", "image", grid=GRIDS["image"], best_of=0)
    with pytest.raises(ValueError, match="needs a condition"):
        generate(model, vocab, None, "image", grid=GRIDS["image"], best_of=2)
    with pytest.raises(ValueError, match="rerank: expected one of"):
        generate(model, vocab, "a red apple", "image", grid=GRIDS["image"], best_of=2, rerank="clip")
