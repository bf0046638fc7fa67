"""Speculative Jacobi Decoding (SJD; Teng et al., arXiv 2410.01699): several image codes per forward, no retraining.

Each iteration feeds the last sampled token and a window of ``L`` draft tokens through the cached model in one
``extend`` call, which gives the model's distribution ``p_j`` at every draft position. Draft ``d_j`` was drawn
from a known ``q_j``; it is accepted with probability ``min(1, p_j(d_j) / q_j(d_j))``, left to right, stopping at
the first rejection, where a replacement is drawn from ``norm(max(0, p_j - q_j))`` (after ``L`` acceptances a
bonus token is drawn from ``p_{L+1}``). This is the acceptance rule of speculative sampling (Leviathan et al.,
arXiv 2211.17192; Chen et al., arXiv 2302.01318), so every emitted token has exactly the model's sampling
distribution (temperature / top-k / top-p / CFG / constraints included). The drafts after the rejection point
are not thrown away: they are re-drawn from this iteration's ``p`` (the Jacobi fixed-point iteration) and
become the next window, topped up with tokens drawn uniformly from each position's allowed set.

With greedy sampling, ``p`` is one-hot: a draft is accepted iff it is the argmax, and the output is exactly
plain greedy decoding (a test checks this). Rows of a batch accept different counts; the cache rolls each row
back on its own (``StaticKVCache.rewind`` with a (B,) tensor). The loop reads one flag back to the host per
iteration (whether every row is finished).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from omnitok.generation.cfg import batch_rows, guide
from omnitok.generation.constraints import StepTable
from omnitok.generation.sampling import SamplingParams, filter_logits, sample_from_probs
from omnitok.model.kv_cache import StaticKVCache
from omnitok.model.transformer import Transformer

__all__ = ["decode_jacobi"]


def _init_drafts(table: StepTable, steps: Tensor, greedy: bool,
                 generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Fresh drafts for steps (B, L): uniform over each position's allowed ids -> (drafts (B, L), q (B, L, V))."""
    bias = table.step_bias(steps)  # (B, L, V)
    q = bias.softmax(-1)
    if greedy:
        return q.argmax(-1), q
    return sample_from_probs(q, generator), q


@torch.no_grad()
def decode_jacobi(model: Transformer, ids: Tensor, mask: Tensor, table: StepTable, params: SamplingParams,
                  scales: Tensor | None = None, generator: torch.Generator | None = None,
                  window: int = 16) -> tuple[Tensor, dict[str, Any]]:
    """Generate ``table.num_steps`` tokens per row with SJD.

    ids, mask: (N, P) left-padded prompts (N = 2B with CFG: conditional rows, then unconditional rows).
    scales: (S,) guidance scale per step, or None without CFG. Returns (tokens (B, S), stats) where stats
    holds ``forwards`` (model calls, prefill included) and ``accepted_per_step`` (tokens per row per forward).
    """
    if table.stop_id is not None:
        raise ValueError("speculative Jacobi decoding needs a fixed layout (image / video / fixed-length audio), "
                         "not text or until_end audio")
    if window < 1:
        raise ValueError(f"jacobi window must be >= 1, got {window}")
    t0 = time.perf_counter()
    device = ids.device
    N, P, B, cfg = batch_rows(ids, scales)
    S = table.num_steps
    L = min(int(window), max(S - 1, 1))
    table = table.to(device)
    cache = StaticKVCache(model, N, max_len=P + S + L + 2)
    logits = cache.prefill(ids, attention_mask=mask)[:, -1:]  # (N, 1, V)

    def dist(logits: Tensor, steps: Tensor) -> Tensor:
        """(N, T, V) raw logits, (B, T) steps -> guided, constrained, filtered logits (B, T, V)."""
        if cfg:
            logits = guide(logits, scales[steps.clamp(max=S - 1)][..., None])
        return filter_logits(logits.float() + table.step_bias(steps), params)

    arange = torch.arange(L + 1, device=device)
    out = torch.zeros(B, S + L + 2, dtype=torch.long, device=device)
    count = torch.zeros(B, dtype=torch.long, device=device)
    l0 = dist(logits, count[:, None])[:, 0]  # (B, V)
    last = l0.argmax(-1) if params.greedy else sample_from_probs(l0.softmax(-1), generator)
    out[:, 0] = last
    count += 1
    drafts, q = _init_drafts(table, count[:, None] + arange[:L], params.greedy, generator)
    forwards, accepted, active_rows = 1, 0, 0
    while bool((count < S).any()):
        active = count < S  # (B,)
        feed = torch.cat([last[:, None], drafts], 1)  # (B, L+1)
        logits = cache.extend(feed.repeat(2, 1) if cfg else feed)  # (N, L+1, V)
        forwards += 1
        steps = count[:, None] + arange  # (B, L+1): the step each output position predicts
        lg = dist(logits, steps)
        if params.greedy:
            best = lg.argmax(-1)  # (B, L+1)
            ok = drafts == best[:, :L]
        else:
            p = lg.softmax(-1)  # (B, L+1, V)
            pd = p[:, :L].gather(-1, drafts[..., None])[..., 0]
            qd = q.gather(-1, drafts[..., None])[..., 0]
            u = torch.rand(pd.shape, device=device, generator=generator)
            ok = u * qd < pd  # accept with probability min(1, pd / qd)
        n_acc = ok.long().cumprod(1).sum(1)  # (B,) leading accepted drafts
        raw = n_acc
        n_acc = torch.minimum(n_acc, (S - 1 - count).clamp(min=0))  # never past the last step
        cut = raw > n_acc  # the draft at n_acc was accepted: it is the last token, no resampling
        if params.greedy:
            new = best.gather(1, n_acc[:, None])[:, 0]
        else:
            V = p.shape[-1]
            p_at = p.gather(1, n_acc[:, None, None].expand(B, 1, V))[:, 0]  # (B, V)
            q_at = q.gather(1, n_acc.clamp(max=L - 1)[:, None, None].expand(B, 1, V))[:, 0]
            q_at = torch.where((n_acc < L)[:, None], q_at, torch.zeros_like(q_at))
            resid = (p_at - q_at).clamp(min=0)
            total = resid.sum(-1, keepdim=True)
            resid = torch.where(total > 0, resid / total.clamp(min=1e-30), p_at)
            new = sample_from_probs(resid, generator)
        new = torch.where(cut, drafts.gather(1, n_acc.clamp(max=L - 1)[:, None])[:, 0], new)
        n_new = torch.where(active, n_acc + 1, torch.zeros_like(n_acc))  # tokens emitted per row
        vals = torch.cat([drafts, drafts[:, :1]], 1).scatter(1, n_acc[:, None], new[:, None])  # (B, L+1)
        pos = (count[:, None] + arange).clamp(max=out.shape[1] - 1)
        keep = arange[None] < n_new[:, None]
        out.scatter_(1, pos, torch.where(keep, vals, out.gather(1, pos)))
        # the cache keeps `last` and the accepted drafts; the new token is fed next iteration
        rewind = torch.where(active, L - n_acc, torch.full_like(n_acc, L + 1))
        cache.rewind(rewind.repeat(2) if cfg else rewind)
        accepted += int(n_new.sum())
        active_rows += int(active.sum())
        count = count + n_new
        last = torch.where(active, new, last)
        # next window: this iteration's distributions after the new token (Jacobi), then fresh uniform drafts
        g = n_acc[:, None] + 1 + arange[:L]  # (B, L) output positions that predict the next window
        from_p = g <= L
        fresh, q_fresh = _init_drafts(table, count[:, None] + arange[:L], params.greedy, generator)
        if params.greedy:
            drafts = torch.where(from_p, best.gather(1, g.clamp(max=L)), fresh)
            q = q_fresh
        else:
            V = p.shape[-1]
            p_next = p.gather(1, g.clamp(max=L)[..., None].expand(B, L, V))
            q = torch.where(from_p[..., None], p_next, q_fresh)
            drafts = sample_from_probs(q, generator)
    stats = {"forwards": forwards, "tokens": B * S, "seconds": time.perf_counter() - t0,
             "accepted_per_step": accepted / max(active_rows, 1), "window": L}
    return out[:, :S], stats
