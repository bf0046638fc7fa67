"""The Transfusion model: the loss is the next-token term plus lambda times the diffusion term, each equal to a plain
computation; the image block attends both ways while text stays causal (the dependency pattern of a one-layer model
against a naive mask built with loops); patches round trip; folders round trip and refuse damaged weights."""

from __future__ import annotations

import math

import pytest
import torch

from omnitok._io import CheckpointError
from omnitok.model.config import ModelConfig
from omnitok.model.transfusion import TransfusionConfig, TransfusionModel, transfusion_loss

V, PATCH_ID = 40, 3


def _model(n_layer: int = 2, tie: bool = False, seed: int = 0) -> TransfusionModel:
    torch.manual_seed(seed)
    mcfg = ModelConfig(vocab_size=V, n_layer=n_layer, dim=32, n_head=2, ffn_multiple_of=16, max_seq_len=64,
                       qk_norm=True, tie_embeddings=tie)
    hcfg = TransfusionConfig(latent_channels=2, latent_size=4, patch_size=2, patch_id=PATCH_ID, time_freq_dim=16,
                             scheduler={"num_train_timesteps": 100, "schedule": "cosine", "prediction_type": "v"})
    m = TransfusionModel(mcfg, hcfg)
    torch.nn.init.normal_(m.patch_out.weight, std=0.1)  # zero at init; a live head for the tests
    return m


def _batch(B: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of 11 ids: 2 text, 4 patches (positions 3..6), 4 text; -> ids, image_mask, targets."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(10, V, (B, 11), generator=g)
    image_mask = torch.zeros(B, 11, dtype=torch.bool)
    image_mask[:, 3:7] = True
    ids[image_mask] = PATCH_ID
    targets = torch.full((B, 11), -100)
    targets[:, :-1] = ids[:, 1:]
    targets[:, 2:7] = -100  # the position before the image and the patches predict no id
    return ids, image_mask, targets


def test_loss_is_lm_plus_lambda_times_diffusion() -> None:
    m = _model()
    ids, image_mask, targets = _batch()
    B = ids.shape[0]
    x = torch.randn(B, 4, 8)
    t = torch.tensor([5, 50, 99])
    target = torch.randn(B, 4, 8)
    text_mask = targets != -100
    out = m(ids, image_mask, x, t, text_mask=text_mask)
    loss = transfusion_loss(out.logits, targets[text_mask], out.image, target, lambda_diffusion=2.5)
    # the two terms, computed one position / number at a time
    logits_all = m.transformer.lm_head(out.hidden)  # (B, T, V)
    ce = [-torch.log_softmax(logits_all[b, i].double(), -1)[targets[b, i]] for b in range(B) for i in range(11)
          if targets[b, i] != -100]
    lm_naive = sum(ce) / len(ce)
    img = out.image.detach()
    sq = [(float(img[b, n, d]) - float(target[b, n, d])) ** 2 for b in range(B) for n in range(4) for d in range(8)]
    diff_naive = sum(sq) / len(sq)
    assert len(ce) == int(text_mask.sum()) == B * 5
    assert math.isclose(float(loss.lm), float(lm_naive), rel_tol=1e-5)
    assert math.isclose(float(loss.diffusion), diff_naive, rel_tol=1e-5)
    assert math.isclose(float(loss.total), float(lm_naive) + 2.5 * diff_naive, rel_tol=1e-5)
    # lambda = 0: the diffusion head gets no gradient; the text head still does
    m.zero_grad()
    transfusion_loss(out.logits, targets[text_mask], out.image, target, 0.0).total.backward(retain_graph=True)
    assert float(m.patch_out.weight.grad.abs().max()) == 0.0
    assert float(m.transformer.lm_head.weight.grad.abs().max()) > 0
    # the diffusion term alone trains the patch head and leaves the text head untouched
    m.zero_grad()
    (loss.total - loss.lm).backward()
    assert float(m.patch_out.weight.grad.abs().max()) > 0
    assert m.transformer.lm_head.weight.grad is None or float(m.transformer.lm_head.weight.grad.abs().max()) == 0.0


def _naive_mask(image_mask: torch.Tensor) -> torch.Tensor:
    """(T,) bool image positions -> (T, T) bool: q sees k iff k <= q, or both are image positions."""
    T = image_mask.shape[0]
    out = torch.zeros(T, T, dtype=torch.bool)
    for q in range(T):
        for k in range(T):
            out[q, k] = k <= q or bool(image_mask[q] and image_mask[k])
    return out


def test_image_block_is_bidirectional_and_text_causal() -> None:
    """With one layer, the hidden state at q changes when the input at k changes iff attention lets q see k."""
    m = _model(n_layer=1).eval()
    ids, image_mask, _ = _batch(B=1)
    x = torch.randn(1, 4, 8)
    t = torch.tensor([30])
    T = ids.shape[1]
    with torch.no_grad():
        base = m(ids, image_mask, x, t).hidden[0]  # (T, C)
        seen = torch.zeros(T, T, dtype=torch.bool)
        for k in range(T):
            ids2, x2 = ids.clone(), x.clone()
            if image_mask[0, k]:
                x2[0, int(image_mask[0, :k].sum())] += 1.0  # this position's patch
            else:
                ids2[0, k] = (ids2[0, k] + 7) % V  # this position's id
            h = m(ids2, image_mask, x2, t).hidden[0]
            seen[:, k] = (h - base).abs().amax(-1) > 1e-6
    expected = _naive_mask(image_mask[0])
    assert torch.equal(seen, expected)
    assert seen[3, 6] and not seen[2, 3]  # the first patch sees the last; text before the image sees no patch


def test_patchify_round_trip_and_order() -> None:
    m = _model()
    z = torch.randn(2, 2, 4, 4)
    p = m.patchify(z)
    assert p.shape == (2, 4, 8)
    assert torch.equal(m.unpatchify(p), z)
    # patch 1 is the top-right 2 x 2 square, channel-major inside
    assert torch.equal(p[0, 1], z[0, :, 0:2, 2:4].reshape(-1))
    with pytest.raises(ValueError, match="latents must be"):
        m.patchify(torch.randn(2, 3, 4, 4))


def test_image_mask_must_mark_every_patch() -> None:
    m = _model()
    ids, image_mask, _ = _batch()
    image_mask[0, 6] = False
    with pytest.raises(ValueError, match="exactly 4 positions per row"):
        m(ids, image_mask, torch.randn(3, 4, 8), torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("tie", [False, True])
def test_folder_round_trip(tmp_path, tie: bool) -> None:
    m = _model(tie=tie).eval()
    ids, image_mask, targets = _batch()
    x, t = torch.randn(3, 4, 8), torch.tensor([1, 2, 3])
    m.save_pretrained(tmp_path / "m", extra={"train": {"steps": 7}})
    back = TransfusionModel.from_pretrained(tmp_path / "m")
    assert back.config == m.config and back.model_config.to_dict() == m.model_config.to_dict()
    assert back.record["train"] == {"steps": 7}
    with torch.no_grad():
        a, b = m(ids, image_mask, x, t, text_mask=targets != -100), back(ids, image_mask, x, t, text_mask=targets != -100)
    assert torch.equal(a.image, b.image) and torch.equal(a.logits, b.logits)
    if tie:
        assert back.transformer.lm_head.weight is back.transformer.embed_tokens.weight
    w = tmp_path / "m" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        TransfusionModel.from_pretrained(tmp_path / "m")
