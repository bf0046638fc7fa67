"""text: per-token NLL / perplexity of held-out text, and continuations of held-out text judged by MiniLM
similarity to the true continuation."""

from __future__ import annotations

import math

import torch

from omnitok.data.dataset import ShardDataset
from omnitok.data.tokenize import continuation_split
from omnitok.eval.tasks.base import EvalContext, EvalTask, Headline, TaskResult
from omnitok.generation.rerank import span_logprob
from omnitok.vocab.document import Document, Text

__all__ = ["TASK", "run"]


@torch.no_grad()
def run(ctx: EvalContext) -> TaskResult:
    gen, s = ctx.gen, ctx.settings
    texts: list[tuple[str, str]] = []  # (key, text)
    for it in ShardDataset("text", s.split, root=s.data_root, rank=0, world_size=1):
        t = (it.get("text") or it["caption"] or "").strip()
        if t:
            texts.append((it["key"], t[:400]))
        if len(texts) >= s.limit:
            break
    if not texts:
        raise ValueError("text/test is empty (run `omnitok data build text`)")
    model, vocab = gen.model, gen.vocab
    max_len = int(model.config.max_seq_len)
    rows = [vocab.encode(Document([Text(t)]))[:max_len] for _, t in texts]
    nll = -float(span_logprob(model, rows, [(1, len(r)) for r in rows]).sum())  # every id after BOS
    count = float(sum(len(r) - 1 for r in rows))
    heads = [continuation_split(t, k) for k, t in texts[: min(len(texts), 8)]]
    outs = gen([[Text(a)] for a, _ in heads], "text", temperature=0.7, top_p=0.9, max_new_tokens=32)
    sim = (ctx.judges.minilm.similarity([seg.text or "" for seg in outs], [b for _, b in heads])
           if heads and s.similarity else torch.zeros(0))
    return TaskResult({"nll_per_token": nll / count, "perplexity": math.exp(nll / count), "tokens": int(count),
                       "n": len(texts), "continuation_minilm_similarity": float(sim.mean()) if len(sim) else None},
                      [{"prompt": a, "truth": b, "continuation": seg.text} for (a, b), seg in zip(heads, outs)])


TASK = EvalTask("text", run, (Headline("perplexity of held-out text", "perplexity", "{:.1f}"),),
                summary="held-out text -> per-token NLL / perplexity; continuations judged by MiniLM")
