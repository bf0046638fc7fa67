"""The shared contract, checked for every quantizer class (the VQ family included when present)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest
import torch

from omnitok.quantizers.base import Quantizer, QuantizerOutput
from omnitok.quantizers.fsq import FSQ
from omnitok.quantizers.gumbel import GumbelVQ

# (id, module, class name, factory from the class) -- small sizes so each case runs in milliseconds
CASES: list[tuple[str, str, str, Callable[[type], Quantizer]]] = [
    ("vq-ema", "vq", "VectorQuantizer", lambda c: c(8, 32, kmeans_iters=2)),
    (
        "vq-grad-cosine-rotation-proj",
        "vq",
        "VectorQuantizer",
        lambda c: c(8, 32, codebook_dim=4, distance="cosine", learning="gradient", gradient_estimator="rotation"),
    ),
    ("rvq", "rvq", "ResidualVQ", lambda c: c(8, 16, 3, kmeans_iters=2)),
    ("pq", "pq", "ProductVQ", lambda c: c(8, 16, 2, kmeans_iters=2)),
    ("aq-beam", "aq", "AdditiveVQ", lambda c: c(8, 16, 2, beam_width=2, kmeans_iters=2)),
    ("fsq", "fsq", "FSQ", lambda c: c([5, 4, 3])),
    ("fsq-proj-groups", "fsq", "FSQ", lambda c: c([4, 3, 2], dim=8, num_codebooks=2)),
    ("lfq", "lfq", "LFQ", lambda c: c(6, 6)),
    ("lfq-proj", "lfq", "LFQ", lambda c: c(8, 6)),
    ("bsq", "bsq", "BSQ", lambda c: c(8, 6)),
    ("gumbel-hard", "gumbel", "GumbelVQ", lambda c: c(8, 32)),
    ("gumbel-soft-proj", "gumbel", "GumbelVQ", lambda c: c(8, 32, codebook_dim=4, hard=False)),
]


def _param(case_id: str, module: str, cls_name: str, factory: Callable[[type], Quantizer]):  # noqa: ANN202
    try:
        cls = getattr(importlib.import_module(f"omnitok.quantizers.{module}"), cls_name)
    except (ImportError, AttributeError) as e:  # a quantizer not written yet: visible as a skip
        return pytest.param(None, id=case_id, marks=pytest.mark.skip(reason=f"{module}.{cls_name}: {e}"))
    return pytest.param(lambda: factory(cls), id=case_id)


PARAMS = [_param(*c) for c in CASES]


def _make(factory: Callable[[], Quantizer], seed: int = 0) -> Quantizer:
    torch.manual_seed(seed)
    q = factory()
    assert isinstance(q, Quantizer)
    return q


def _data(dim: int, shape: tuple[int, ...] = (2, 3, 4), seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dim, generator=g)  # (B, ..., D)


@pytest.mark.parametrize("factory", PARAMS)
def test_shapes_types_and_code_range(factory: Callable[[], Quantizer]) -> None:
    q = _make(factory).train()
    x = _data(q.dim)
    out = q(x)
    assert isinstance(out, QuantizerOutput)
    assert out.latents.shape == x.shape and out.latents.dtype == x.dtype
    assert out.codes.shape == (*x.shape[:-1], q.num_codebooks) and out.codes.dtype == torch.long
    assert out.codes.min() >= 0 and out.codes.max() < q.codebook_size
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    for key in ("usage", "perplexity", "dead_codes"):
        assert key in out.metrics, key
    for key, value in out.metrics.items():
        assert value.dim() == 0 and not value.requires_grad, key
    assert 0 < float(out.metrics["usage"]) <= 1


@pytest.mark.parametrize("factory", PARAMS)
def test_codes_to_latents_matches_latents_in_eval(factory: Callable[[], Quantizer]) -> None:
    q = _make(factory).train()
    x = _data(q.dim)
    q(x)  # one training step (k-means init and the like)
    q.eval()
    with torch.no_grad():
        out = q(x)
        torch.testing.assert_close(q.codes_to_latents(out.codes), out.latents)
        again = q(x)
    assert torch.equal(again.codes, out.codes)  # eval is deterministic


@pytest.mark.parametrize("factory", PARAMS)
def test_gradients_reach_the_input(factory: Callable[[], Quantizer]) -> None:
    q = _make(factory).train()
    x = _data(q.dim).requires_grad_()
    out = q(x)
    (out.latents.square().sum() + out.loss).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("factory", PARAMS)
def test_seeded_determinism(factory: Callable[[], Quantizer]) -> None:
    outs = []
    for _ in range(2):
        q = _make(factory, seed=3).train()
        torch.manual_seed(4)
        x = _data(q.dim)
        outs.append([q(x), q(x)])  # two steps: state updates (EMA, annealing) must replay too
    for a, b in zip(*outs):
        assert torch.equal(a.codes, b.codes)
        assert torch.equal(a.latents, b.latents)
        assert torch.equal(a.loss, b.loss)


@pytest.mark.parametrize("factory", PARAMS)
def test_channel_first_helper(factory: Callable[[], Quantizer]) -> None:
    q = _make(factory).eval()
    x = _data(q.dim, shape=(2, 5, 3))  # (B, H, W, D)
    x_cf = x.permute(0, 3, 1, 2).contiguous()  # (B, D, H, W)
    with torch.no_grad():
        ref = q(x)
        out = q.forward_channel_first(x_cf)
    assert out.latents.shape == x_cf.shape
    assert out.codes.shape == (2, 5, 3, q.num_codebooks)
    assert torch.equal(out.codes, ref.codes)
    torch.testing.assert_close(out.latents, ref.latents.permute(0, 3, 1, 2))


@pytest.mark.parametrize("factory", PARAMS)
def test_state_dict_round_trip(factory: Callable[[], Quantizer]) -> None:
    q = _make(factory).train()
    x = _data(q.dim)
    q(x)
    fresh = _make(factory, seed=123)
    fresh.load_state_dict(q.state_dict())
    q.eval()
    fresh.eval()
    with torch.no_grad():
        a, b = q(x), fresh(x)
    assert torch.equal(a.codes, b.codes)
    torch.testing.assert_close(a.latents, b.latents)


@pytest.mark.parametrize("factory", PARAMS)
def test_bad_input(factory: Callable[[], Quantizer]) -> None:
    q = _make(factory)
    x = _data(q.dim)
    for bad_value in (float("nan"), float("inf")):
        bad = x.clone()
        bad[0, 1, 2, 0] = bad_value
        with pytest.raises(ValueError, match="NaN/inf"):
            q(bad)
    with pytest.raises(ValueError, match=f"D={q.dim}"):
        q(_data(q.dim + 1))
    with pytest.raises(ValueError, match="D="):
        q(torch.randn(q.dim))  # no batch dimension
    with pytest.raises(ValueError, match="floating-point"):
        q(torch.ones(2, q.dim, dtype=torch.long))
    codes = torch.zeros(2, 3, q.num_codebooks, dtype=torch.long)
    with pytest.raises(ValueError, match=rf"\[0, {q.codebook_size}\)"):
        q.codes_to_latents(codes + q.codebook_size)
    with pytest.raises(ValueError, match=rf"\[0, {q.codebook_size}\)"):
        q.codes_to_latents(codes - 1)
    with pytest.raises(ValueError, match="codes last dimension"):
        q.codes_to_latents(torch.zeros(2, q.num_codebooks + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        q.codes_to_latents(codes.float())


@pytest.mark.parametrize("factory", PARAMS)
def test_eval_codes_equal_train_codes(factory: Callable[[], Quantizer]) -> None:
    """Skipping the metrics in eval changes no code: a training forward and an eval forward of the same state
    give the same codes (Gumbel samples in training by design, so only its eval codes are pinned: the argmax)."""
    import copy

    q = _make(factory).train()
    q(_data(q.dim, seed=3))  # one training step first: k-means init, EMA, ...
    x = _data(q.dim, shape=(4, 64), seed=4)
    frozen = copy.deepcopy(q).eval()
    with torch.no_grad():
        eval_out = frozen(x)
    assert "usage" not in eval_out.metrics  # inference computes no usage histogram
    if isinstance(q, GumbelVQ):
        logits = frozen.to_logits(x.reshape(-1, q.dim))  # (N, K)
        assert torch.equal(eval_out.codes.reshape(-1), logits.argmax(-1))
        return
    if hasattr(q, "quantizer_dropout"):
        q.quantizer_dropout = 0.0  # dropped levels are looked up like in eval, but keep the test exact
    train_out = q.train()(x)
    assert torch.equal(train_out.codes, eval_out.codes)


@pytest.mark.parametrize("factory", PARAMS)
def test_eval_metrics_on_request(factory: Callable[[], Quantizer]) -> None:
    """Usage metrics: always in training; in eval only after track_metrics(), and equal to the codes' own usage."""
    q = _make(factory).train()
    x = _data(q.dim, shape=(4, 64), seed=5)
    assert {"usage", "perplexity", "dead_codes"} <= set(q(x).metrics)
    q.eval()
    with torch.no_grad():
        assert not {"usage", "perplexity", "dead_codes"} & set(q(x).metrics)
        out = q.track_metrics()(x)
        assert {"usage", "perplexity", "dead_codes"} <= set(out.metrics)
        per_codebook = [out.codes[..., g].unique().numel() / q.codebook_size for g in range(q.num_codebooks)]
        pooled = out.codes.unique().numel() / q.codebook_size  # FSQ's groups share one implicit codebook
        expected = pooled if isinstance(q, FSQ) else sum(per_codebook) / len(per_codebook)
        assert float(out.metrics["usage"]) == pytest.approx(expected, rel=1e-5)
        assert 1.0 <= float(out.metrics["perplexity"]) <= q.codebook_size
        assert "usage" not in q.track_metrics(False)(x).metrics
    assert "usage" in q.train()(x).metrics  # training computes them whatever was asked for eval
