"""Muon: Newton-Schulz against the SVD, its AdamW rule against torch's AdamW, its Muon rule against a naive
step (on a matrix and on a filter bank), the parameter split of a transformer and of a codec, and a training run
that learns and resumes bit for bit."""

from __future__ import annotations

import json
import math

import pytest
import torch

from omnitok.model import ModelConfig, Transformer
from omnitok.train.lm import TrainConfig, build_optimizer, train
from omnitok.train.muon import Muon, conv_param_groups, orthogonalize, orthogonalize_svd, param_groups

MODEL = dict(n_layer=2, dim=32, n_head=4, n_kv_head=2, ffn_multiple_of=16, max_seq_len=64, qk_norm=True)


def resume_config(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(seq_len=32, batch_size=2, grad_accum=2, max_steps=8, lr=3e-3, warmup_steps=2,
                                 log_every=1, eval_every=4, eval_batches=1, save_every=4), **kw})


def losses(run) -> dict[int, float]:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: (r["loss"] if r["split"] == "train" else r["val_loss"]) for r in rows}


@pytest.mark.parametrize("shape", [(48, 48), (96, 32), (32, 96)])
def test_newton_schulz_is_close_to_the_polar_factor(shape):
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(shape[0], min(shape)))
    v, _ = torch.linalg.qr(torch.randn(shape[1], min(shape)))
    s = torch.linspace(0.05, 3.0, min(shape))  # a spread of singular values, none near 0
    g = u @ torch.diag(s) @ v.T
    o = orthogonalize(g)
    assert o.shape == g.shape and o.dtype == g.dtype
    sv = torch.linalg.svdvals(o)
    assert sv.min() > 0.6 and sv.max() < 1.25  # every direction moves by about the same amount
    ref = orthogonalize_svd(g)  # exact U V^T: same singular vectors
    cos = (o * ref).sum() / (o.norm() * ref.norm())
    assert cos > 0.97
    assert torch.allclose(ref.T @ ref if shape[0] >= shape[1] else ref @ ref.T, torch.eye(min(shape)), atol=1e-5)


def test_orthogonalize_rejects_non_matrices():
    with pytest.raises(ValueError, match="expected a matrix"):
        orthogonalize(torch.randn(3, 4, 5))


def _model(tie: bool = True) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=40, **{**MODEL, "tie_embeddings": tie}))


def test_param_groups_split_blocks_from_embeddings_head_and_norms():
    model = _model(tie=False)
    groups = param_groups(model, weight_decay=0.1)
    name = {id(p): n for n, p in model.named_parameters()}
    muon = {name[id(p)] for g in groups if g["muon"] for p in g["params"]}
    adam = {name[id(p)]: g["weight_decay"] for g in groups if not g["muon"] for p in g["params"]}
    assert muon == {n for n, p in model.named_parameters() if n.startswith("layers.") and p.dim() == 2}
    assert adam["lm_head.weight"] == 0.1 and adam["embed_tokens.weight"] == 0.0 and adam["norm.weight"] == 0.0
    tied = param_groups(_model(tie=True), 0.1)
    n_params = sum(len(g["params"]) for g in tied)
    assert n_params == len(list(_model(tie=True).parameters()))  # the tied head is the embedding, listed once


def test_adamw_rule_equals_torch_adamw():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 3))
    b = torch.nn.Parameter(a.detach().clone())
    ours = Muon([{"params": [a], "muon": False}], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    ref = torch.optim.AdamW([b], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    for step in range(5):
        g = torch.randn(5, 3)
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
        assert torch.allclose(a, b, atol=1e-6), step


def test_muon_rule_equals_a_naive_step():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(8, 12))
    w0 = w.detach().clone()
    opt = Muon([{"params": [w], "muon": True}], lr=0.01, momentum=0.9, weight_decay=0.5)
    g1, g2 = torch.randn(8, 12), torch.randn(8, 12)
    buf = torch.zeros(8, 12)
    expect = w0.clone()
    for g in (g1, g2):
        w.grad = g.clone()
        opt.step()
        buf = 0.9 * buf + g
        expect = expect * (1 - 0.01 * 0.5) - 0.01 * 0.2 * math.sqrt(12) * orthogonalize(g + 0.9 * buf)
    assert torch.allclose(w, expect, atol=1e-6)


def test_muon_rule_on_a_filter_bank_is_the_step_of_its_matrix():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(6, 4, 3))  # Conv1d (out, in, k)
    w0 = w.detach().clone()
    opt = Muon([{"params": [w], "muon": True}], lr=0.01, momentum=0.9)
    g = torch.randn(6, 4, 3)
    w.grad = g.clone()
    opt.step()
    expect = w0 - 0.01 * 0.2 * math.sqrt(12) * orthogonalize((1.9 * g).reshape(6, 12)).view(6, 4, 3)
    assert torch.allclose(w, expect, atol=1e-6)
    # the update is (close to) semi-orthogonal as a matrix: singular values of the step near one
    sv = torch.linalg.svdvals(((w0 - w.detach()) / (0.01 * 0.2 * math.sqrt(12))).reshape(6, 12))
    assert sv.min() > 0.5 and sv.max() < 1.3


def test_conv_param_groups_send_filters_to_muon_and_vectors_codebooks_to_adamw():
    net = torch.nn.Sequential(torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv1d(2, 4, 3)),
                              torch.nn.GroupNorm(1, 4), torch.nn.Linear(4, 4))
    net.register_parameter("codebook", torch.nn.Parameter(torch.randn(16, 4)))
    groups = conv_param_groups(net, weight_decay=0.1)
    name = {id(p): n for n, p in net.named_parameters()}
    muon = sorted(name[id(p)] for g in groups if g["muon"] for p in g["params"])
    adam = sorted(name[id(p)] for g in groups if not g["muon"] for p in g["params"])
    assert muon == ["0.parametrizations.weight.original1", "2.weight"]  # the weight-norm direction v (4, 2, 3)
    assert adam == ["0.bias", "0.parametrizations.weight.original0", "1.bias", "1.weight", "2.bias", "codebook"]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_muon_group_rejects_vectors():
    with pytest.raises(ValueError, match="vectors"):
        Muon([{"params": [torch.nn.Parameter(torch.ones(4))], "muon": True}])


def test_build_optimizer_names_its_choices():
    model = _model()
    assert isinstance(build_optimizer(model, TrainConfig(optimizer="muon")), Muon)
    assert isinstance(build_optimizer(model, TrainConfig()), torch.optim.AdamW)
    with pytest.raises(ValueError, match="adamw or muon"):
        build_optimizer(model, TrainConfig(optimizer="sgd"))


def test_training_with_muon_learns_and_resumes_bit_identical(tmp_path):
    torch.set_num_threads(1)
    full, part = tmp_path / "full", tmp_path / "part"
    train(MODEL, resume_config(optimizer="muon"), "synthetic:vocab=64", full, progress=False)
    train(MODEL, resume_config(optimizer="muon", halt_after=5), "synthetic:vocab=64", part, progress=False)
    train(MODEL, resume_config(optimizer="muon"), "synthetic:vocab=64", part, resume=True, progress=False)
    a, b = losses(full), losses(part)
    assert a == b  # the momentum buffers and the AdamW moments come back from the checkpoint exactly
    assert a[8] < a[1] - 0.2  # it learns (AdamW at this lr: 4.16 -> 3.81 in these 8 steps, Muon 3.87)
