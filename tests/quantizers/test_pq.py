"""ProductVQ: one codebook per channel group."""

from __future__ import annotations

import pytest
import torch
from quant_helpers import check_forward_contract

from omnitok.quantizers.pq import ProductVQ


def test_shapes_codes_roundtrip_and_grads() -> None:
    torch.manual_seed(0)
    pq = ProductVQ(12, 16, 3, distance="cosine")
    x = torch.randn(2, 5, 12, requires_grad=True)
    check_forward_contract(pq, x, num_codebooks=3, codebook_size=16)


def test_groups_are_independent() -> None:
    torch.manual_seed(0)
    pq = ProductVQ(8, 16, 2).eval()
    x = torch.randn(32, 8)
    with torch.no_grad():
        a = pq(x).codes
        y = x.clone()
        y[:, 4:] += 100.0  # moving group 1 leaves group 0's codes alone
        b = pq(y).codes
    assert torch.equal(a[:, 0], b[:, 0])


def test_seeded_determinism() -> None:
    x = torch.randn(128, 8)
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        pq = ProductVQ(8, 16, 4)
        pq(x)
        outs.append(pq(x).codes)
    assert torch.equal(*outs)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="groups"):
        ProductVQ(10, 16, 3)
    with pytest.raises(ValueError, match="groups"):
        ProductVQ(10, 16, 0)
    with pytest.raises(ValueError, match="codebook_size"):
        ProductVQ(8, 1, 2)
    with pytest.raises(ValueError, match="D=8"):
        ProductVQ(8, 16, 2)(torch.randn(3, 6))
