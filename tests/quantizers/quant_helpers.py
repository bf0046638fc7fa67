"""Helpers of the quantizer tests (tests/quantizers is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class MaxNumel(TorchDispatchMode):
    """Records the largest tensor any op produced (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


def index_round_trip(q, bits: int, seed: int) -> torch.Tensor:  # noqa: ANN001
    """A binary quantizer's (LFQ, BSQ) index -> code -> index is the identity on every index of up to 10 bits, or
    on 512 random ones; -> the codes (N, bits) for the caller's own checks."""
    if bits <= 10:
        index = torch.arange(2**bits)
    else:
        index = torch.randint(0, 2**62, (512,), generator=torch.Generator().manual_seed(seed)) % (2**bits)
    code = q.index_to_code(index)
    back = q.code_to_index(code)
    assert torch.equal(back, index)
    assert q.codebook_size == 2**bits  # every index of the bits is a code of the quantizer, no more
    return code


def check_forward_contract(q, x: torch.Tensor, num_codebooks: int, codebook_size: int):  # noqa: ANN001, ANN201
    """A multi-codebook quantizer on x (B, T, D) with grad: latents of x's shape, codes (B, T, num_codebooks) in
    range, gradients reaching x; in eval mode its codes decode to its latents exactly. -> the training output."""
    out = q(x)
    assert out.latents.shape == x.shape and out.codes.shape == (*x.shape[:-1], num_codebooks)
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < codebook_size
    (out.latents.square().sum() + out.loss).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    q.eval()
    with torch.no_grad():
        ev = q(x)
        assert torch.equal(q.codes_to_latents(ev.codes), ev.latents)
    return out
