"""Best-of-N by the reverse task: the same any-to-any model judges its own candidates.

A model that learns both directions of a pair (text -> speech and speech -> text, image -> caption and
caption -> image) can score a generated output ``y`` for a prompt ``x`` by how well ``y`` explains ``x``:
``log p(x | y)``, the prompt's ids read after the candidate (a document ``BOS <y> <x>``). ``generate(...,
best_of=N)`` draws N candidates per prompt, scores each and keeps the best: the noisy-channel reranking of
Yee et al. (https://arxiv.org/abs/1908.05731) with the model as its own channel model, as DALL-E reranks its
samples with CLIP (https://arxiv.org/abs/2102.12092), but without a second model.

Scores:

* ``"reverse"``: ``log p(x | y)`` (the default);
* ``"joint"``: ``log p(x | y) + log p(y | x)``, both unguided (the forward term adds the model's own
  preference among the candidates, e.g. between captions of different lengths).

Scoring is one batched forward of the reversed (and, for ``joint``, forward) documents per chunk of
candidates; :func:`span_logprob` is checked against a per-row loop in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from omnitok.model.transformer import Transformer
from omnitok.vocab.document import Document, Segment, Uncond
from omnitok.vocab.vocabulary import Vocabulary

__all__ = ["SCORES", "candidate_scores", "condition_segments", "span_logprob"]

SCORES = ("reverse", "joint")


@torch.no_grad()
def span_logprob(model: Transformer, ids: Sequence[Tensor], spans: Sequence[tuple[int, int]],
                 batch_size: int = 32) -> Tensor:
    """Sum of ``log p(ids[t] | ids[:t])`` over ``t`` in ``[start, stop)`` of each row -> (N,) float32.

    ids: 1-D int64 documents (any lengths; batched with right padding, which a causal model never reads
    before the span ends). start >= 1 (the first id has no context).
    """
    if len(ids) != len(spans):
        raise ValueError(f"span_logprob: {len(ids)} documents but {len(spans)} spans")
    device = next(model.parameters()).device
    out = torch.zeros(len(ids), dtype=torch.float32)
    max_len = int(model.config.max_seq_len)
    for r, ((a, b), row) in enumerate(zip(spans, ids)):
        if not 1 <= a <= b <= len(row):
            raise ValueError(f"span_logprob: row {r}: span ({a}, {b}) outside 1..{len(row)}")
        if len(row) > max_len:
            raise ValueError(f"span_logprob: row {r} holds {len(row)} ids, the model reads at most {max_len}")
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(ids), batch_size):
            chunk = list(range(i, min(i + batch_size, len(ids))))
            L = max(int(spans[r][1]) for r in chunk)  # nothing after the last scored id is needed
            x = torch.zeros(len(chunk), L, dtype=torch.long)
            for j, r in enumerate(chunk):
                n = min(L, len(ids[r]))
                x[j, :n] = ids[r][:n]
            logits, _ = model(x.to(device))
            lp = torch.log_softmax(logits.float(), -1)  # (n, L, V)
            tgt = x[:, 1:].to(device)
            tok = lp[:, :-1].gather(-1, tgt[..., None])[..., 0].cpu()  # (n, L-1): log p(x[t+1] | x[:t+1])
            for j, r in enumerate(chunk):
                a, b = spans[r]
                out[r] = tok[j, a - 1 : b - 1].sum()
    finally:
        model.train(was_training)
    return out


def condition_segments(prompt: Document | Sequence[Segment]) -> list[Segment]:
    """The prompt's segments; ValueError when it has no condition to score candidates against."""
    segs = list(prompt.segments if isinstance(prompt, Document) else prompt)
    if not segs or any(isinstance(s, Uncond) for s in segs):
        raise ValueError("best_of reranking scores a candidate by how well it explains its prompt: every prompt "
                         "needs a condition (got an empty or unconditional prompt)")
    return segs


def candidate_scores(model: Transformer, vocab: Vocabulary, prompts: Sequence[Document | Sequence[Segment]],
                     candidates: Sequence[Segment], score: str = "reverse", batch_size: int = 32) -> Tensor:
    """Score each candidate against its prompt (one prompt per candidate) -> (N,) float32, higher is better.

    ``reverse``: log p(prompt segments | candidate) from ``BOS <candidate> <prompt segments> EOS``;
    ``joint``: that plus log p(candidate | prompt) from ``BOS <prompt segments> <candidate> EOS``.
    """
    if score not in SCORES:
        raise ValueError(f"rerank score: expected one of {SCORES}, got {score!r}")
    if len(prompts) != len(candidates):
        raise ValueError(f"candidate_scores: {len(prompts)} prompts but {len(candidates)} candidates")
    ids, spans = [], []
    fwd_ids, fwd_spans = [], []
    for p, c in zip(prompts, candidates):
        segs = condition_segments(p)
        row, sp = vocab.encode_with_spans(Document([c, *segs], bos=True, eos=True))
        ids.append(torch.from_numpy(row))
        spans.append((sp[1][0], sp[-1][1]))
        if score == "joint":
            row, sp = vocab.encode_with_spans(Document([*segs, c], bos=True, eos=True))
            fwd_ids.append(torch.from_numpy(row))
            fwd_spans.append(sp[-1])
    out = span_logprob(model, ids, spans, batch_size)
    if score == "joint":
        out = out + span_logprob(model, fwd_ids, fwd_spans, batch_size)
    return out
