"""Diffusion sampling with classifier-free guidance: scale 1 is the conditional branch, one batched forward."""

from __future__ import annotations

import torch

from omnitok.diffusion.model import DiffusionModel
from omnitok.diffusion.text import pad_ids
from omnitok.generation.cfg import guide
from omnitok.generation.diffusion import sample


def _model() -> DiffusionModel:
    torch.manual_seed(0)
    m = DiffusionModel({"sample": {"channels": 3, "size": 8},
                        "denoiser": {"name": "unet", "channels": 16, "channel_mult": [1, 2], "attention_levels": [1],
                                     "heads": 2},
                        "text": {"vocab_size": 64, "dim": 32, "layers": 1, "heads": 2, "max_len": 8},
                        "scheduler": {"num_train_timesteps": 50, "schedule": "cosine", "prediction_type": "v"}})
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # off the zero initialisation, as after training
        for p in m.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return m.eval()


def test_cfg_scale_one_equals_the_conditional_branch() -> None:
    model = _model()
    ids, lengths = pad_ids([[3, 4, 5], [6, 7]], 8)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([30, 30])
    with torch.no_grad():
        both = model.denoise(torch.cat([x, x]), torch.cat([t, t]),
                             *model.encode_text(torch.cat([ids, ids]), torch.cat([lengths, torch.zeros(2).long()])))
        cond_only = model(x, t, ids, lengths)
        uncond_only = model(x, t, ids, torch.zeros(2).long())
    assert torch.equal(guide(both, 1.0), both[:2])  # bit for bit at scale 1
    torch.testing.assert_close(both[:2], cond_only, rtol=1e-5, atol=1e-5)  # the batched rows are the branches
    torch.testing.assert_close(both[2:], uncond_only, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(guide(both, 3.0), uncond_only + 3.0 * (cond_only - uncond_only), rtol=1e-4, atol=1e-4)


def test_guided_sampling_uses_one_batched_forward_per_step() -> None:
    model = _model()
    ids, lengths = pad_ids([[3, 4, 5], [6, 7]], 8)
    calls: list[int] = []
    model.denoiser.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    plain = sample(model, ids, lengths, sampler="ddim", steps=5, cfg_scale=1.0, x_T=x_T)
    assert calls == [2] * 5  # scale 1: the conditional rows only
    calls.clear()
    guided = sample(model, ids, lengths, sampler="ddim", steps=5, cfg_scale=3.0, x_T=x_T)
    assert calls == [4] * 5  # [cond; uncond] in one forward per step
    assert plain.shape == guided.shape == (2, 3, 8, 8) and not torch.allclose(plain, guided)
    for sampler in ("ddpm", "euler"):
        out = sample(model, ids, lengths, sampler=sampler, steps=4, cfg_scale=2.0,
                     generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, 3, 8, 8) and torch.isfinite(out).all()
