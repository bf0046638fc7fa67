"""ResidualVQ: levels, bitrates via n_q, quantizer dropout."""

from __future__ import annotations

import pytest
import torch

from omnitok.quantizers.rvq import ResidualVQ


def _trained(seed: int = 0, **kwargs) -> tuple[ResidualVQ, torch.Tensor]:  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    rvq = ResidualVQ(8, 16, 4, **kwargs)
    x = torch.randn(512, 8)
    for _ in range(3):
        rvq(x)
    return rvq, x


def test_shapes_codes_and_eval_roundtrip() -> None:
    rvq, _ = _trained()
    x = torch.randn(3, 6, 8)
    out = rvq(x)
    assert out.latents.shape == x.shape and out.codes.shape == (3, 6, 4)
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < 16
    assert rvq.num_codebooks == 4 and rvq.codebook_size == 16
    rvq.eval()
    with torch.no_grad():
        ev = rvq(x)
        assert torch.equal(rvq.codes_to_latents(ev.codes), ev.latents)
        for k in (1, 2, 3):  # lower bitrates: the first k levels
            evk = rvq(x, n_q=k)
            assert evk.codes.shape == (3, 6, k)
            assert torch.equal(evk.codes, ev.codes[..., :k])
            assert torch.equal(rvq.codes_to_latents(evk.codes), evk.latents)


def test_more_levels_reconstruct_better() -> None:
    rvq, x = _trained()
    rvq.eval()
    with torch.no_grad():
        errs = [float((rvq(x, n_q=k).latents - x).square().mean()) for k in range(1, 5)]
    assert all(b < a for a, b in zip(errs, errs[1:]))


def test_gradients_reach_input() -> None:
    rvq, _ = _trained(gradient_estimator="rotation")
    x = torch.randn(64, 8, requires_grad=True)
    out = rvq(x)
    (out.latents.square().sum() + out.loss).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_quantizer_dropout_uses_fewer_levels_but_keeps_all_codes() -> None:
    torch.manual_seed(0)
    rvq = ResidualVQ(8, 16, 4, quantizer_dropout=1.0)
    x = torch.randn(256, 8)
    active = set()
    for _ in range(12):
        out = rvq(x)
        active.add(int(out.metrics["active_quantizers"]))
        assert out.codes.shape == (256, 4)
        assert int(out.codes.min()) >= 0 and int(out.codes.max()) < 16
    assert len(active) > 1 and active <= {1, 2, 3, 4}
    rvq.eval()
    assert int(rvq(x).metrics["active_quantizers"]) == 4  # no dropout at inference


def test_seeded_determinism() -> None:
    a, x = _trained(seed=3, quantizer_dropout=0.5)
    b, _ = _trained(seed=3, quantizer_dropout=0.5)
    for la, lb in zip(a.levels, b.levels):
        assert torch.equal(la.codebook, lb.codebook)
    assert torch.equal(a(x).codes, b(x).codes)


def test_bad_arguments_and_codes() -> None:
    with pytest.raises(ValueError, match="num_quantizers"):
        ResidualVQ(8, 16, 0)
    with pytest.raises(ValueError, match="codebook_size"):
        ResidualVQ(8, 1, 2)
    with pytest.raises(ValueError, match="quantizer_dropout"):
        ResidualVQ(8, 16, 2, quantizer_dropout=1.5)
    rvq = ResidualVQ(8, 16, 2)
    with pytest.raises(ValueError, match="n_q"):
        rvq(torch.randn(4, 8), n_q=3)
    with pytest.raises(ValueError, match="num_quantizers"):
        rvq.codes_to_latents(torch.zeros(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        rvq.codes_to_latents(torch.full((4, 2), -1))
