"""Hybrid (Transfusion) generation: the cached denoising loop equals recomputing prompt + patches at every step
(with guidance and left-padded prompts of different lengths); cached greedy captioning equals a loop that reruns
the whole sequence per token; the document layout both ways."""

from __future__ import annotations

import torch

from omnitok.data.debug import debug_vocabulary
from omnitok.generation.hybrid import _left_pad, caption_ids, hybrid_document, sample_patches
from omnitok.model.config import ModelConfig
from omnitok.model.transfusion import TransfusionConfig, TransfusionModel


def _setup(seed: int = 0):
    vocab = debug_vocabulary()
    torch.manual_seed(seed)
    mcfg = ModelConfig(vocab_size=len(vocab), n_layer=2, dim=32, n_head=2, ffn_multiple_of=16, max_seq_len=64,
                       qk_norm=True, init_std=0.2)
    hcfg = TransfusionConfig(latent_channels=2, latent_size=4, patch_size=2, patch_id=vocab.pad_id, time_freq_dim=16,
                             scheduler={"num_train_timesteps": 100, "schedule": "cosine", "prediction_type": "v"})
    model = TransfusionModel(mcfg, hcfg).eval()
    torch.nn.init.normal_(model.patch_out.weight, std=0.3)
    return vocab, model


def test_layout_both_ways() -> None:
    vocab, _ = _setup()
    text = [vocab.begin_id("text"), 300, 301, vocab.end_id("text")]
    ids, s = hybrid_document(vocab, text, 4, vocab.pad_id, image_first=False)
    assert ids[:s] == [vocab.bos_id, *text, vocab.begin_id("image")]
    assert ids[s : s + 4] == [vocab.pad_id] * 4 and ids[s + 4 :] == [vocab.end_id("image"), vocab.eos_id]
    ids, s = hybrid_document(vocab, text, 4, vocab.pad_id, image_first=True)
    assert s == 2 and ids[:2] == [vocab.bos_id, vocab.begin_id("image")]
    assert ids[6:] == [vocab.end_id("image"), *text, vocab.eos_id]


def test_cached_denoising_equals_recomputing_everything() -> None:
    vocab, model = _setup()
    b, e, bi = vocab.bos_id, vocab.end_id("text"), vocab.begin_id("image")
    bt = vocab.begin_id("text")
    cond = [[b, bt, 300, 301, 302, e, bi], [b, bt, 305, e, bi]]  # two lengths: left padding
    rows = cond + [[b, bi]] * 2  # [cond; uncond]
    ids, mask = _left_pad(rows, vocab.pad_id)
    x_T = torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(3))
    for sampler in ("ddim", "ddpm", "euler"):
        kw = dict(steps=5, sampler=sampler, cfg_scale=3.0, x_T=x_T)
        a, st = sample_patches(model, ids, mask, use_cache=True, generator=torch.Generator().manual_seed(0), **kw)
        ref, _ = sample_patches(model, ids, mask, use_cache=False, generator=torch.Generator().manual_seed(0), **kw)
        assert st["forwards"] == 5
        torch.testing.assert_close(a, ref, atol=1e-4, rtol=1e-4)
    # the two prompts lead to different images from the same noise (the condition reaches the patches)
    assert (a[0] - a[1]).abs().max() > 1e-3


def test_cfg_scale_one_is_the_conditional_rows_alone() -> None:
    vocab, model = _setup()
    b, bi, bt, e = vocab.bos_id, vocab.begin_id("image"), vocab.begin_id("text"), vocab.end_id("text")
    x_T = torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(5))
    ids, mask = _left_pad([[b, bt, 300, e, bi]], vocab.pad_id)
    one, _ = sample_patches(model, ids, mask, steps=4, cfg_scale=1.0, x_T=x_T)
    ids2, mask2 = _left_pad([[b, bt, 300, e, bi], [b, bi]], vocab.pad_id)
    guided, _ = sample_patches(model, ids2, mask2, steps=4, cfg_scale=1.0 + 1e-9, x_T=x_T)
    torch.testing.assert_close(one, guided, atol=1e-4, rtol=1e-4)


def test_cached_captioning_equals_rerunning_the_sequence() -> None:
    vocab, model = _setup(seed=1)
    hc = model.config
    doc, start = hybrid_document(vocab, None, hc.num_patches, hc.patch_id, image_first=True)
    layout = torch.tensor(doc[:-1] + [vocab.begin_id("text")])
    img = torch.zeros(len(layout), dtype=torch.bool)
    img[start : start + hc.num_patches] = True
    B = 3
    patches = torch.randn(B, hc.num_patches, hc.patch_dim, generator=torch.Generator().manual_seed(2))
    lo, hi = vocab.id_range("text")
    allowed = torch.zeros(len(vocab), dtype=torch.bool)
    allowed[lo:hi] = True
    end = vocab.end_id("text")
    allowed[end] = True
    rows, st = caption_ids(model, layout.expand(B, -1), img.expand(B, -1), patches, allowed, end, max_new_tokens=6)
    # reference: the whole sequence through the model for every new token, no cache
    ref: list[list[int]] = []
    for i in range(B):
        seq, out = layout.tolist(), []
        for _ in range(6):
            ids = torch.tensor([seq])
            mask = torch.zeros(1, len(seq), dtype=torch.bool)
            mask[0, -1] = True
            with torch.no_grad():
                lg = model(ids, img[None, : len(seq)].clone() if len(seq) == len(img) else
                           torch.cat([img, torch.zeros(len(seq) - len(img), dtype=torch.bool)])[None],
                           patches[i : i + 1], torch.zeros(1, dtype=torch.long), text_mask=mask).logits[0]
            nxt = int((lg + torch.where(allowed, 0.0, float("-inf"))).argmax())
            if nxt == end:
                break
            out.append(nxt)
            seq.append(nxt)
        ref.append(out)
    assert rows == ref
    assert all(lo <= i < hi for r in rows for i in r)
    assert st["forwards"] >= 1
