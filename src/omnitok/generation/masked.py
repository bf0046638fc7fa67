"""Masked parallel decoding (MaskGIT, Chang et al., arXiv 2202.04200) inside the one causal transformer.

The whole target block (an image's codes and the EOR after each row) starts as ``<|mask|>`` where a code goes
and as its forced id where the layout fixes one (EOR); the block is one bidirectional segment
(``segment_ids``), so every position sees the whole block and predicts its own code. Then, for K steps:

1. one forward over the block (the first also runs the prompt, which stays in the KV cache; later steps
   rewrite the block's slots in place: ``extend`` then ``rewind``);
2. guidance (:func:`omnitok.generation.cfg.guide`, the unconditional rows in the same batch), the constraint
   table (:mod:`omnitok.generation.constraints`: each position keeps its own codebook level, so the image is
   always exactly H x W codes), temperature / top-k / top-p, and a draw at every position;
3. confidence = log-probability of the drawn code + Gumbel noise scaled by ``choice_temperature * (1 - k/K)``
   (annealed to 0 at the last step; none when greedy); among the codes still masked the most confident are
   fixed, so that ``floor(N cos(pi/2 (k+1)/K))`` stay masked (at least one fewer each step, none after the
   last), and a fixed code is never masked again.

What a step computes (the cached path; ``use_cache=False`` is the plain reference it is tested against): the
prompt's keys / values once; the whole block through every layer (its codes see each other, so no block state
survives a step); the final hidden states only at the codes still masked (``logits_mask``), projected onto the
image codes' rows of the output embedding only (``return_hidden``: (n, C) x (C, hi - lo) instead of the whole
vocabulary); with top-k, the softmax, the draw and the confidence over the k candidates of each position only;
the conditional and unconditional rows in one forward.

A model learns this from the masked-image documents of the mixture loader (``omnitok.data.mixture``,
``masked=``): the same ids, the same bidirectional block, labels on the masked codes. Show-o (arXiv
2408.12528) does the same next to next-token text in one transformer.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from omnitok.generation.cfg import batch_rows, guide
from omnitok.generation.constraints import StepTable
from omnitok.generation.sampling import SamplingParams, filter_logits, sample_from_probs
from omnitok.model.kv_cache import StaticKVCache
from omnitok.model.transformer import Transformer

__all__ = ["decode_masked", "masked_counts"]


def masked_counts(num_codes: int, steps: int) -> list[int]:
    """How many codes are still masked after each step: ``floor(N cos(pi/2 (k+1)/K))``, at least one fewer than
    the step before, 0 at the end; shorter than ``steps`` when there are fewer codes than steps."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    out, prev = [], num_codes
    for k in range(steps):
        left = math.floor(num_codes * math.cos(math.pi / 2 * (k + 1) / steps) + 1e-9)
        left = max(min(left, prev - 1), 0) if k < steps - 1 else 0
        out.append(left)
        prev = left
        if left == 0:
            break
    return out


def _block_layout(table: StepTable) -> tuple[Tensor, Tensor, int]:
    """-> forced id per block position (-1 where a code goes) (S - 1,), the block's bias (S - 1, V), END id.

    The table covers the target up to its END; the block is everything before END."""
    forced = table.forced()  # (S,) bool
    if not forced[-1]:
        raise ValueError("masked decoding needs a fixed-length target whose last id is forced (its END)")
    ids = []
    for s in range(table.num_steps):
        lo, hi = table.ranges[int(table.index[s])][0]
        ids.append(lo if forced[s] else -1)
    block_ids = torch.tensor(ids[:-1], dtype=torch.long)
    return block_ids, table.bias[table.index[:-1]], ids[-1]


@torch.no_grad()
def decode_masked(model: Transformer, ids: Tensor, mask: Tensor, table: StepTable, params: SamplingParams,
                  mask_id: int, steps: int = 12, scales: Tensor | None = None,
                  generator: torch.Generator | None = None, choice_temperature: float = 4.5,
                  use_cache: bool = True) -> tuple[Tensor, dict[str, Any]]:
    """ids, mask (N, P) left-padded prompts (N = 2B with CFG: cond rows, then uncond rows); table: the target's
    step table (an image: h rows of w codes + EOR, then END_IMAGE); scales (S,) or None.
    Returns (tokens (B, S), stats) like the other decoders. ``use_cache=False`` runs prompt + block through the
    model at every step (the reference the tests compare against)."""
    t0 = time.perf_counter()
    device = ids.device
    N, P, B, cfg = batch_rows(ids, scales)
    block_ids, bias, end_id = _block_layout(table)
    block_ids, bias = block_ids.to(device), bias.to(device)  # (Sb,), (Sb, V)
    Sb = block_ids.shape[0]
    is_code = block_ids < 0  # (Sb,)
    n_codes = int(is_code.sum())
    cols = torch.isfinite(bias[is_code]).any(0).nonzero()[:, 0]  # ids any code position may take
    lo, hi = int(cols[0]), int(cols[-1]) + 1  # guidance and sampling only over [lo, hi) (the image's codes)
    bias = bias[:, lo:hi]  # (Sb, hi - lo)
    head = model.lm_head.weight[lo:hi]  # (hi - lo, C): the output embedding's rows of the image codes
    no_bias = bool((bias[is_code] == 0).all())  # one codebook level: every code position allows all of [lo, hi)
    top_k = params.top_k if 0 < params.top_k < hi - lo else 0
    rest = dataclasses.replace(params, top_k=0)  # what filter_logits still does over the k candidates
    counts = masked_counts(n_codes, steps)
    block = torch.where(is_code, torch.full_like(block_ids, mask_id), block_ids).expand(B, Sb).clone()  # (B, Sb)
    masked = is_code.expand(B, Sb).clone()  # (B, Sb) still masked
    scale = scales[:Sb].to(device)[None, :, None] if cfg else None  # (1, Sb, 1) per block position

    mask = mask.to(device=device, dtype=torch.bool)
    real = mask.long().sum(1)  # (N,) prompt lengths
    pos_prompt = (mask.long().cumsum(1) - 1).clamp(min=0)  # (N, P)
    pos_block = real[:, None] + torch.arange(Sb, device=device)  # (N, Sb): the block continues each prompt
    seg_full = torch.cat([torch.full((N, P), -1, device=device, dtype=torch.long),
                          torch.zeros(N, Sb, device=device, dtype=torch.long)], 1)  # (N, P + Sb)
    ones = torch.ones(N, Sb, dtype=torch.bool, device=device)
    cache = StaticKVCache(model, N, max_len=P + Sb) if use_cache else None
    forwards = 0
    for k, left in enumerate(counts):
        n = counts[k - 1] if k else n_codes  # codes still masked (the same in every row)
        rows = torch.cat([block, block]) if cfg else block  # (N, Sb)
        want = torch.cat([masked, masked]) if cfg else masked  # (N, Sb): the head runs only where a code is drawn
        if cache is not None and k > 0:  # the prompt is cached: only the block, in the same slots
            hidden, _ = model(rows, position_ids=pos_block, kv_cache=cache, segment_ids=seg_full[:, P:],
                              logits_mask=want, return_hidden=True)  # (N * n, C)
            cache.rewind(Sb)
        else:
            seq = torch.cat([ids, rows], 1)  # (N, P + Sb)
            pos = torch.cat([pos_prompt, pos_block], 1)
            want = torch.cat([torch.zeros(N, P, dtype=torch.bool, device=device), want], 1)  # (N, P + Sb)
            if cache is not None:
                cache.reset()
                hidden, _ = model(seq, position_ids=pos, attention_mask=torch.cat([mask, ones], 1), kv_cache=cache,
                                  segment_ids=seg_full, logits_mask=want, return_hidden=True)  # (N * n, C)
                cache.rewind(Sb)
            else:
                docs = torch.where(torch.cat([mask, ones], 1), 0, -1)  # left padding is its own document
                logits, _ = model(seq, position_ids=pos, document_ids=docs, segment_ids=seg_full, logits_mask=want)
        forwards += 1
        if cache is not None:
            logits = F.linear(hidden, head)  # (N * n, hi - lo): the image codes' logits only
        else:
            logits = logits[:, lo:hi]  # the reference: the whole vocabulary, then the image codes
        where = masked.nonzero()[:, 1].view(B, n)  # (B, n) block positions of the masked codes, row-major
        logits = logits.reshape(N, n, hi - lo)  # (N, n, hi - lo)
        lg = guide(logits, scale[0, where]) if cfg else logits.float()  # (B, n, hi - lo)
        if not no_bias:
            lg = lg + bias[where]  # each position keeps its codebook level
        if params.greedy:
            drawn = lg.argmax(-1)  # (B, n)
            conf = lg.gather(-1, drawn[..., None])[..., 0] - lg.logsumexp(-1)  # (B, n) log p of the drawn code
        else:
            cand = None
            if top_k:  # only the k candidates of each position are sampled from (the others are -inf anyway)
                lg, cand = lg.topk(top_k, dim=-1)  # (B, n, k) each
            filtered = filter_logits(lg, rest if top_k else params)
            drawn = sample_from_probs(filtered.softmax(-1), generator)  # (B, n)
            conf = filtered.log_softmax(-1).gather(-1, drawn[..., None])[..., 0]  # (B, n) log p of the drawn code
            if cand is not None:
                drawn = cand.gather(-1, drawn[..., None])[..., 0]  # candidate index -> code index
        anneal = choice_temperature * (1.0 - (k + 1) / len(counts))
        if not params.greedy and anneal > 0:
            u = torch.rand(conf.shape, device=device, generator=generator).clamp_(1e-20, 1.0)
            conf = conf + anneal * -torch.log(-torch.log(u))  # Gumbel(0, 1)
        pick = conf.topk(n - left, dim=-1).indices  # (B, n - left): the most confident, >= 1 per step
        at = where.gather(1, pick)  # (B, n - left) block positions fixed now; fixed codes never move again
        block.scatter_(1, at, drawn.gather(1, pick) + lo)
        masked.scatter_(1, at, False)
    tokens = torch.cat([block, torch.full((B, 1), end_id, dtype=torch.long, device=device)], 1)  # (B, S)
    return tokens, {"forwards": forwards, "tokens": B * n_codes, "seconds": time.perf_counter() - t0,
                    "steps": len(counts)}
