"""The transformer: shapes, causality, document masking, z-loss, presets, save / load."""

from __future__ import annotations

import json

import pytest
import torch

from omnitok.codecs.base import CheckpointError
from omnitok.model.config import PRESETS, ModelConfig, apply_overrides, load_preset
from omnitok.model.transformer import Transformer, lm_loss


def small_model(**kw) -> Transformer:
    torch.manual_seed(0)
    base = dict(vocab_size=61, n_layer=2, dim=32, n_head=4, n_kv_head=2, ffn_multiple_of=16)
    return Transformer(ModelConfig(**{**base, **kw})).eval()


def test_shapes_and_loss():
    m = small_model()
    idx = torch.randint(0, 61, (3, 12))
    logits, loss = m(idx)
    assert logits.shape == (3, 12, 61) and loss is None
    targets = torch.randint(0, 61, (3, 12))
    targets[0, :5] = -100
    logits, loss = m(idx, targets)
    assert loss.ndim == 0 and 3.0 < loss.item() < 5.0  # ~log(61) at init
    assert m.num_params() == m.config.num_params()


def test_logits_mask_selects_positions_and_keeps_the_loss():
    m = small_model()
    idx = torch.randint(0, 61, (3, 12))
    targets = torch.randint(0, 61, (3, 12))
    targets[0, :5] = -100
    targets[2, 7:] = -100
    keep = targets != -100
    full, full_loss = m(idx, targets)
    sel, sel_loss = m(idx, targets, logits_mask=keep)
    assert sel.shape == (int(keep.sum()), 61)
    torch.testing.assert_close(sel, full[keep])
    torch.testing.assert_close(sel_loss, full_loss)
    # gradients too: the masked forward trains the same model
    m.train()
    m.zero_grad()
    m(idx, targets)[1].backward()
    g_full = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m(idx, targets, logits_mask=keep)[1].backward()
    for a, b in zip(g_full, [p.grad for p in m.parameters()]):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="logits_mask"):
        m(idx, logits_mask=keep[:, :4])


def test_causality():
    m = small_model()
    idx = torch.randint(0, 61, (1, 16))
    a, _ = m(idx)
    idx2 = idx.clone()
    idx2[0, 10:] = (idx2[0, 10:] + 1) % 61
    b, _ = m(idx2)
    torch.testing.assert_close(a[:, :10], b[:, :10], rtol=0, atol=0)
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_document_masking_isolates_documents():
    m = small_model(qk_norm=True)
    idx = torch.randint(0, 61, (1, 16))
    docs = torch.tensor([[0] * 7 + [1] * 9])
    pos = torch.cat([torch.arange(7), torch.arange(9)])[None]
    a, _ = m(idx, position_ids=pos, document_ids=docs)
    idx2 = idx.clone()
    idx2[0, :7] = torch.randint(0, 61, (7,))  # perturb document A
    b, _ = m(idx2, position_ids=pos, document_ids=docs)
    torch.testing.assert_close(a[:, 7:], b[:, 7:], rtol=0, atol=1e-6)  # document B unchanged
    alone, _ = m(idx[:, 7:])  # and equal to running document B on its own
    torch.testing.assert_close(a[:, 7:], alone, rtol=1e-5, atol=1e-5)
    c, _ = m(idx2)  # without document_ids, B does see A
    assert not torch.allclose(a[:, 7:], c[:, 7:], atol=1e-4)


def test_z_loss_adds_logsumexp_penalty():
    idx = torch.randint(0, 61, (2, 8))
    targets = torch.randint(0, 61, (2, 8))
    m0, m1 = small_model(), small_model(z_loss=1e-2)
    _, l0 = m0(idx, targets)
    logits, l1 = m1(idx, targets)
    z = torch.logsumexp(logits.float(), -1).pow(2).mean()
    torch.testing.assert_close(l1, l0 + 1e-2 * z)
    loss, ce = lm_loss(logits, targets)
    assert ce.shape == (2, 8)


def test_gradient_checkpointing_same_gradients():
    idx = torch.randint(0, 61, (2, 8))
    grads = []
    for ckpt in (False, True):
        m = small_model().train()
        m.gradient_checkpointing = ckpt
        _, loss = m(idx, idx)
        loss.backward()
        grads.append(m.layers[0].mlp.up_proj.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("tie", [False, True])
def test_save_load_roundtrip(tmp_path, tie):
    m = small_model(tie_embeddings=tie, qk_norm=True)
    m.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_class"] == "Transformer"
    m2 = Transformer.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, 61, (2, 9))
    torch.testing.assert_close(m(idx)[0], m2(idx)[0], rtol=0, atol=0)
    if tie:
        assert m2.lm_head.weight.data_ptr() == m2.embed_tokens.weight.data_ptr()
    (tmp_path / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(CheckpointError):
        Transformer.from_pretrained(tmp_path)


def test_presets_and_overrides():
    for name in PRESETS:
        p = load_preset(name)
        ModelConfig(**p["model"])
    cfg = apply_overrides(load_preset("debug"), ["n_layer=3", "train.lr=1e-4", "qk_norm=true"])
    assert cfg["model"]["n_layer"] == 3 and cfg["train"]["lr"] == 1e-4 and cfg["model"]["qk_norm"] is True
    with pytest.raises(ValueError, match="unknown"):
        apply_overrides(load_preset("debug"), ["nope=1"])
    with pytest.raises(ValueError, match="unknown LM preset"):
        load_preset("huge")
    assert 20e6 < ModelConfig(**load_preset("small")["model"]).num_params(False) < 30e6
    assert 100e6 < ModelConfig(vocab_size=16384, **load_preset("B")["model"]).num_params() < 120e6


def test_bad_input():
    m = small_model()
    with pytest.raises(ValueError, match="idx"):
        m(torch.zeros(4))
    with pytest.raises(ValueError, match="max_seq_len"):
        small_model(max_seq_len=8)(torch.zeros(1, 9, dtype=torch.long))
