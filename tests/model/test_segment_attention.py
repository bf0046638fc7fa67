"""Bidirectional segments inside the causal transformer equal a naive masked attention; packing and the KV
cache (prefix cached, the block recomputed in place) give the same logits as the full forward."""

from __future__ import annotations

import math

import torch

from omnitok.model.config import ModelConfig
from omnitok.model.kv_cache import StaticKVCache
from omnitok.model.transformer import Transformer
from omnitok.nn.attention import Attention, causal_document_mask
from omnitok.nn.rope import RotaryEmbedding


def naive_allowed(doc: list[int], seg: list[int]) -> torch.Tensor:
    """The rule written out position by position: same document and (k <= q or same segment >= 0)."""
    T = len(doc)
    m = torch.zeros(T, T, dtype=torch.bool)
    for q in range(T):
        for k in range(T):
            m[q, k] = doc[q] == doc[k] and (k <= q or (seg[q] >= 0 and seg[q] == seg[k]))
    return m


def naive_attention(att: Attention, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                    allowed: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v with explicit loops over heads (no SDPA)."""
    from omnitok.nn.rope import apply_rotary

    B, T, _ = x.shape
    H, Hk, D = att.n_head, att.n_kv_head, att.head_dim
    q = att.q_proj(x).view(B, T, H, D)
    k = att.k_proj(x).view(B, T, Hk, D)
    v = att.v_proj(x).view(B, T, Hk, D)
    if att.q_norm is not None:
        q, k = att.q_norm(q), att.k_norm(k)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    out = torch.zeros(B, H, T, D)
    for h in range(H):
        kh, vh = k[:, h // (H // Hk)], v[:, h // (H // Hk)]
        s = q[:, h] @ kh.transpose(-1, -2) / math.sqrt(D)  # (B, T, T)
        s = s.masked_fill(~allowed, float("-inf"))
        out[:, h] = s.softmax(-1) @ vh
    return att.o_proj(out.transpose(1, 2).reshape(B, T, H * D))


def test_segment_mask_equals_naive_rule_and_naive_attention():
    doc = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, -1]
    seg = [-1, -1, 0, 0, 0, -1, -1, 1, 1, 1, -1, -1]
    mask = causal_document_mask(torch.tensor([doc]), torch.tensor([seg]))[0, 0]
    assert torch.equal(mask, naive_allowed(doc, seg))
    assert mask[2, 4] and mask[7, 9] and not mask[1, 2] and not mask[7, 2]  # both ways inside, causal outside
    torch.manual_seed(0)
    att = Attention(32, n_head=4, n_kv_head=2, head_dim=8, qk_norm=True)
    x = torch.randn(1, len(doc), 32)
    cos, sin = RotaryEmbedding(8)(torch.arange(len(doc))[None])
    with torch.no_grad():
        fast = att(x, cos, sin, causal_document_mask(torch.tensor([doc]), torch.tensor([seg])))
        slow = naive_attention(att, x, cos, sin, naive_allowed(doc, seg))
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def model() -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=41, n_layer=2, dim=32, n_head=4, n_kv_head=2, ffn_multiple_of=16, qk_norm=True)
    return Transformer(cfg).eval()


def test_packed_documents_with_a_segment_equal_separate_runs():
    m = model()
    a, b = torch.randint(0, 41, (1, 7)), torch.randint(0, 41, (1, 9))
    seg_b = torch.tensor([[-1, -1, -1, 0, 0, 0, 0, 0, -1]])
    packed = torch.cat([a, b], 1)
    doc = torch.tensor([[0] * 7 + [1] * 9])
    pos = torch.cat([torch.arange(7), torch.arange(9)])[None]
    seg = torch.cat([torch.full((1, 7), -1), seg_b], 1)
    with torch.no_grad():
        lp, _ = m(packed, position_ids=pos, document_ids=doc, segment_ids=seg)
        la, _ = m(a)
        lb, _ = m(b, segment_ids=seg_b)
        causal_b, _ = m(b)
    torch.testing.assert_close(lp[:, :7], la, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lp[:, 7:], lb, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(lb[:, 3:8], causal_b[:, 3:8])  # the block does see ahead
    torch.testing.assert_close(lb[:, :3], causal_b[:, :3], rtol=1e-5, atol=1e-5)  # the prefix does not


def test_cached_prefix_and_recomputed_block_equal_full_forward():
    """Left-padded prefixes in the cache, then the same block slots rewritten twice with new ids (as masked
    decoding does): each pass equals the uncached forward of prefix + block."""
    m = model()
    prefixes = [torch.randint(0, 41, (n,)) for n in (6, 3)]
    P, S = 6, 5
    ids = torch.zeros(2, P, dtype=torch.long)
    mask = torch.zeros(2, P, dtype=torch.bool)
    for r, p in enumerate(prefixes):
        ids[r, P - len(p):], mask[r, P - len(p):] = p, True
    cache = StaticKVCache(m, batch_size=2, max_len=P + S)
    cache.prefill(ids, attention_mask=mask)
    seg = torch.zeros(2, S, dtype=torch.long)
    for _ in range(2):
        block = torch.randint(0, 41, (2, S))
        got = cache.extend(block, segment_ids=seg)  # (2, S, V)
        cache.rewind(S)
        for r, p in enumerate(prefixes):
            full = torch.cat([p, block[r]])[None]
            s_full = torch.tensor([[-1] * len(p) + [0] * S])
            want, _ = m(full, segment_ids=s_full)
            torch.testing.assert_close(got[r], want[0, len(p):], rtol=1e-5, atol=1e-5)
    assert torch.equal(cache.index, torch.full((2,), P))
