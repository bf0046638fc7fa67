"""Static KV cache: prefill + decode_step equals the full forward, left padding, rewind, multi-axis positions."""

from __future__ import annotations

import pytest
import torch

from omnitok.model.config import ModelConfig
from omnitok.model.kv_cache import StaticKVCache
from omnitok.model.transformer import Transformer


def model(**kw) -> Transformer:
    torch.manual_seed(0)
    base = dict(vocab_size=53, n_layer=2, dim=32, n_head=4, n_kv_head=2, ffn_multiple_of=16, qk_norm=True)
    return Transformer(ModelConfig(**{**base, **kw})).eval()


def test_prefill_then_decode_equals_full_forward():
    m = model()
    idx = torch.randint(0, 53, (3, 20))
    full, _ = m(idx)
    cache = StaticKVCache(m, batch_size=3, max_len=24)
    torch.testing.assert_close(cache.prefill(idx[:, :6]), full[:, :6], rtol=1e-5, atol=1e-5)
    for t in range(6, 20):
        step = cache.decode_step(idx[:, t:t + 1])
        assert step.shape == (3, 1, 53)
        torch.testing.assert_close(step[:, 0], full[:, t], rtol=1e-5, atol=1e-5)
    # greedy tokens agree token for token
    assert torch.equal(cache.index, torch.full((3,), 20))


def test_left_padded_rows_equal_unpadded_runs():
    m = model()
    seqs = [torch.randint(0, 53, (n,)) for n in (9, 4, 7)]
    P = 9
    idx = torch.zeros(3, P, dtype=torch.long)
    mask = torch.zeros(3, P, dtype=torch.bool)
    for b, s in enumerate(seqs):
        idx[b, P - len(s):] = s
        mask[b, P - len(s):] = True
    cache = StaticKVCache(m, 3, 16)
    logits = cache.prefill(idx, attention_mask=mask)
    cont = torch.randint(0, 53, (3, 5))
    steps = [cache.decode_step(cont[:, i:i + 1]) for i in range(5)]
    for b, s in enumerate(seqs):
        ref, _ = m(torch.cat([s, cont[b]])[None])
        torch.testing.assert_close(logits[b, P - len(s):], ref[0, :len(s)], rtol=1e-5, atol=1e-5)
        for i in range(5):
            torch.testing.assert_close(steps[i][b, 0], ref[0, len(s) + i], rtol=1e-5, atol=1e-5)
    assert not torch.isnan(logits).any()


def test_extend_and_rewind_per_row():
    m = model()
    idx = torch.randint(0, 53, (2, 12))
    full, _ = m(idx)
    cache = StaticKVCache(m, 2, 16)
    cache.prefill(idx[:, :5])
    draft = torch.randint(0, 53, (2, 4))  # wrong guesses, then roll back and feed the truth
    cache.extend(draft)
    cache.rewind(torch.tensor([4, 4]))
    out = cache.extend(idx[:, 5:9])
    torch.testing.assert_close(out, full[:, 5:9], rtol=1e-5, atol=1e-5)
    cache.rewind(torch.tensor([0, 2]))  # row 1 keeps only 7 tokens
    step = cache.decode_step(torch.stack([idx[0, 9], idx[1, 7]])[:, None])
    torch.testing.assert_close(step[0, 0], full[0, 9], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(step[1, 0], full[1, 7], rtol=1e-5, atol=1e-5)


def test_multi_axis_positions_cached():
    m = model(rope_axes=2)
    pos = torch.stack([torch.arange(10) // 3, torch.arange(10) % 3])[:, None, :].expand(2, 2, 10)  # (A, B, T)
    idx = torch.randint(0, 53, (2, 10))
    full, _ = m(idx, position_ids=pos)
    cache = StaticKVCache(m, 2, 12)
    cache.prefill(idx[:, :4], positions=pos[:, :, :4])
    for t in range(4, 10):
        step = cache.decode_step(idx[:, t:t + 1], positions=pos[:, :, t:t + 1])
        torch.testing.assert_close(step[:, 0], full[:, t], rtol=1e-5, atol=1e-5)


def test_errors():
    m = model()
    cache = StaticKVCache(m, 2, 8)
    with pytest.raises(ValueError, match="max_len"):
        cache.prefill(torch.zeros(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="batch"):
        cache.prefill(torch.zeros(3, 4, dtype=torch.long))
