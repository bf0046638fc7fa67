"""Attention: GQA equals multi-head attention with repeated K/V heads; document masks; RMSNorm."""

from __future__ import annotations

import torch

from omnitok.nn.attention import Attention, causal_document_mask
from omnitok.nn.rmsnorm import RMSNorm
from omnitok.nn.rope import RotaryEmbedding


def test_gqa_equals_mha_with_repeated_heads():
    torch.manual_seed(0)
    gqa = Attention(32, n_head=4, n_kv_head=2, head_dim=8, qk_norm=True)
    mha = Attention(32, n_head=4, n_kv_head=4, head_dim=8, qk_norm=True)
    with torch.no_grad():
        mha.q_proj.weight.copy_(gqa.q_proj.weight)
        mha.o_proj.weight.copy_(gqa.o_proj.weight)
        for name in ("k_proj", "v_proj"):  # kv head j serves query heads 2j, 2j+1
            w = getattr(gqa, name).weight.view(2, 8, 32)
            getattr(mha, name).weight.copy_(w.repeat_interleave(2, 0).reshape(32, 32))
    x = torch.randn(2, 10, 32)
    cos, sin = RotaryEmbedding(8)(torch.arange(10).expand(2, 10))
    torch.testing.assert_close(gqa(x, cos, sin), mha(x, cos, sin), rtol=1e-5, atol=1e-5)
    mask = causal_document_mask(torch.tensor([[0] * 4 + [1] * 6] * 2))
    torch.testing.assert_close(gqa(x, cos, sin, mask), mha(x, cos, sin, mask), rtol=1e-5, atol=1e-5)


def test_document_mask_block_diagonal_and_padding():
    m = causal_document_mask(torch.tensor([[0, 0, 1, 1, -1]]))[0, 0]
    expected = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 1, 0],
                             [0, 0, 0, 0, 1]], dtype=torch.bool)
    assert torch.equal(m, expected)


def test_rmsnorm_unit_rms():
    x = torch.randn(3, 16) * 7
    y = RMSNorm(16)(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(3), rtol=1e-4, atol=1e-4)
