"""VectorQuantizer and the blocked nearest-code search it runs on."""

from __future__ import annotations

import pytest
import torch

from omnitok.quantizers._search import _block_sizes, naive_nearest_code, nearest_code, topk_codes
from omnitok.quantizers.vq import VectorQuantizer, kmeans

CONFIGS = {
    "ema": {},
    "cosine": {"distance": "cosine"},
    "gradient": {"learning": "gradient"},
    "lowdim": {"codebook_dim": 4, "distance": "cosine"},
    "rotation": {"gradient_estimator": "rotation"},
    "no_init": {"kmeans_init": False, "restart_threshold": 0.0},
}


# ----- blocked search -------------------------------------------------------------------------
def _sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x.double(), c.double()).square()  # (N, K)


@pytest.mark.parametrize("block_bytes", [1 << 16, 1 << 18, 256 << 20])  # K-chunked, N-chunked, one block
@pytest.mark.parametrize("distance", ["euclidean", "cosine", "dot"])
def test_nearest_code_matches_naive(block_bytes: int, distance: str) -> None:
    g = torch.Generator().manual_seed(0)
    x, c = torch.randn(300, 16, generator=g), torch.randn(1000, 16, generator=g)
    idx = nearest_code(x, c, distance, block_bytes=block_bytes)
    ref = naive_nearest_code(x, c, distance)
    assert idx.shape == (300,) and idx.dtype == torch.long
    # compare the distances reached, so float near-ties cannot make the test flaky
    if distance == "euclidean":
        d = _sq_dist(x, c)
        assert torch.allclose(d.gather(1, idx[:, None]), d.gather(1, ref[:, None]), atol=1e-4)
    else:
        xx, cc = (
            (x, c)
            if distance == "dot"
            else (torch.nn.functional.normalize(x, dim=-1), torch.nn.functional.normalize(c, dim=-1))
        )
        s = xx.double() @ cc.double().t()
        assert torch.allclose(s.gather(1, idx[:, None]), s.gather(1, ref[:, None]), atol=1e-4)
    assert (idx == ref).float().mean() > 0.99


def test_nearest_code_scores_and_empty() -> None:
    g = torch.Generator().manual_seed(1)
    x, c = torch.randn(50, 8, generator=g), torch.randn(70, 8, generator=g)
    idx, score = nearest_code(x, c, return_scores=True, block_bytes=1 << 10)  # 18 K-chunks
    full = _sq_dist(x, c).min(dim=1).values
    assert torch.allclose(score.double() + x.double().square().sum(-1), full, atol=1e-4)
    assert nearest_code(x[:0], c).shape == (0,)


@pytest.mark.parametrize("block_bytes", [1 << 14, 256 << 20])
def test_topk_codes_matches_naive(block_bytes: int) -> None:
    g = torch.Generator().manual_seed(2)
    x, c = torch.randn(40, 8, generator=g), torch.randn(500, 8, generator=g)
    s, i = topk_codes(x, c, 5, block_bytes=block_bytes)
    d = _sq_dist(x, c)
    ref = d.topk(5, dim=1, largest=False).values
    got = d.gather(1, i)
    assert torch.allclose(got, ref, atol=1e-4)
    assert torch.all(s[:, 1:] >= s[:, :-1])  # best first
    with pytest.raises(ValueError, match="k must be"):
        topk_codes(x, c, 501)


def test_block_sizes_respect_budget() -> None:
    for n, k in [(65536, 2**18), (65536, 16384), (10, 7), (1, 2**20)]:
        for budget in [1 << 10, 1 << 20, 256 << 20]:
            rows, cols = _block_sizes(n, k, 4, budget)
            assert 1 <= rows <= n and 1 <= cols <= k
            assert rows * cols * 4 <= max(budget, 4 * 64)


def test_search_at_2_pow_18_codes() -> None:
    g = torch.Generator().manual_seed(3)
    k = 2**18
    c = torch.randn(k, 8, generator=g)
    x = torch.cat([c[:32] + 1e-3 * torch.randn(32, 8, generator=g), torch.randn(224, 8, generator=g)])
    idx = nearest_code(x, c, block_bytes=32 << 20)  # 32 MiB of scores instead of the full 256 MiB
    assert idx.shape == (256,) and int(idx.max()) < k
    assert torch.equal(idx[:32], torch.arange(32))
    ref = naive_nearest_code(x[32:96], c)
    d = ((x[32:96, None] - c[torch.stack([idx[32:96], ref], 1)]) ** 2).sum(-1)  # (64, 2)
    assert torch.allclose(d[:, 0], d[:, 1], atol=1e-4)


# ----- the quantizer --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CONFIGS))
def test_shapes_codes_and_eval_roundtrip(name: str) -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 32, **CONFIGS[name])
    x = torch.randn(2, 5, 7, 16)
    out = vq(x)
    assert out.latents.shape == x.shape and out.codes.shape == (2, 5, 7, 1)
    assert out.codes.dtype == torch.long and out.loss.dim() == 0
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < 32
    assert {"usage", "perplexity", "dead_codes", "window_usage"} <= set(out.metrics)
    vq.eval()
    with torch.no_grad():
        ev = vq(x)
        assert torch.equal(vq.codes_to_latents(ev.codes), ev.latents)
    ev = vq(x)  # with autograd on, the estimator is applied: equal up to rounding
    assert torch.allclose(vq.codes_to_latents(ev.codes), ev.latents, atol=1e-5)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_gradients_reach_input_and_codebook(name: str) -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 32, **CONFIGS[name])
    x = torch.randn(64, 16, requires_grad=True)
    vq(x)  # k-means init on the first batch
    out = vq(x * 1.5)
    (out.latents.square().sum() + out.loss).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    if vq.learning == "gradient":
        assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0


def test_rotation_trick_gradient_differs_from_ste() -> None:
    x = torch.randn(64, 16)
    grads = []
    for est in ("ste", "rotation"):
        torch.manual_seed(0)
        vq = VectorQuantizer(16, 8, gradient_estimator=est)
        xx = x.clone().requires_grad_()
        out = vq(xx)
        (out.latents * torch.linspace(-1, 1, 16)).sum().backward()
        grads.append(xx.grad)
    assert not torch.allclose(grads[0], grads[1])


def test_seeded_determinism() -> None:
    x = torch.randn(256, 16)
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        vq = VectorQuantizer(16, 32, restart_threshold=0.5)
        for step in range(3):
            out = vq(x + step)
        runs.append((out.codes, out.latents, vq.codebook.clone()))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_kmeans_lowers_inertia_and_ema_tracks_data() -> None:
    torch.manual_seed(0)
    centers = torch.randn(8, 4) * 5
    x = centers.repeat(32, 1) + 0.01 * torch.randn(256, 4)  # (256, 4)
    inertia = []
    for iters in (0, 10):
        torch.manual_seed(1)
        res = kmeans(x, 8, iters=iters)
        assert res is not None
        cents, counts = res
        assert counts.sum() == 256
        inertia.append(float(torch.cdist(x, cents).min(dim=1).values.square().sum()))
    assert inertia[1] < inertia[0]
    vq = VectorQuantizer(4, 8, kmeans_init=False, restart_threshold=0.0, decay=0.5)
    for _ in range(30):
        vq(x)
    # EMA fixed point: every used code is the mean of the vectors assigned to it
    idx = vq(x).codes[:, 0]
    used = idx.unique()
    means = torch.stack([x[idx == k].mean(0) for k in used])
    assert torch.allclose(vq.codebook[used], means, atol=1e-3)


@pytest.mark.parametrize("seed", [0, 1])
def test_kmeans_and_restart_prevent_collapse(seed: int, mixture) -> None:  # type: ignore[no-untyped-def]
    """More clusters (128) than codes (64) on off-centre data: k-means + restarts use > 90% of the
    codes, the same VQ from a random init without restarts collapses to a few codes."""
    sample = mixture(128, 8, seed)
    usage = {}
    for good in (True, False):
        torch.manual_seed(seed)
        vq = VectorQuantizer(8, 64, kmeans_init=good, restart_threshold=0.1 if good else 0.0)
        for _ in range(20):
            vq(sample(1024))
        vq.eval().track_metrics()  # usage in eval: on request
        with torch.no_grad():
            usage[good] = float(vq(sample(4096)).metrics["usage"])
    assert usage[True] > 0.9
    assert usage[False] < 0.25


def test_restart_revives_dead_codes() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 16, kmeans_init=False, restart_threshold=0.5)
    x = torch.randn(512, 4) + 10.0  # far from every random initial code
    for _ in range(10):
        out = vq(x)
    assert float(out.metrics["usage"]) > 0.9
    assert float(vq.cluster_size.min()) > 0


def test_empty_batch() -> None:
    vq = VectorQuantizer(8, 16)
    out = vq(torch.zeros(0, 8))
    assert out.codes.shape == (0, 1) and torch.isfinite(out.loss)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"codebook_size": 1}, "codebook_size"),
        ({"dim": 0}, "dim"),
        ({"codebook_dim": 0}, "codebook_dim"),
        ({"distance": "l1"}, "distance"),
        ({"learning": "adam"}, "learning"),
        ({"decay": 1.0}, "decay"),
        ({"gradient_estimator": "x"}, "gradient_estimator"),
        ({"restart_threshold": -1}, "restart_threshold"),
    ],
)
def test_bad_arguments(kwargs: dict, name: str) -> None:
    args = {"dim": 8, "codebook_size": 16} | kwargs
    with pytest.raises(ValueError, match=name):
        VectorQuantizer(**args)


def test_bad_input() -> None:
    vq = VectorQuantizer(8, 16)
    with pytest.raises(ValueError, match="D=8"):
        vq(torch.randn(4, 7))
    with pytest.raises(ValueError, match="NaN"):
        vq(torch.full((4, 8), float("nan")))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        vq.codes_to_latents(torch.full((4, 1), 16))
