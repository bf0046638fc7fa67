"""Denoisers (U-Net, DiT) and the DiffusionModel folder: shapes, zero-initialised outputs, text conditioning, masks."""

from __future__ import annotations

import json

import pytest
import torch

from omnitok.diffusion.model import DiffusionModel
from omnitok.diffusion.text import pad_ids

TEXT = {"vocab_size": 64, "dim": 32, "layers": 1, "heads": 2, "max_len": 8}
UNET = {"name": "unet", "channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_levels": [1],
        "heads": 2}
DIT = {"name": "dit", "patch_size": 4, "dim": 32, "depth": 2, "heads": 2}


def make(denoiser: dict, channels: int = 3, size: int = 16, **sched) -> DiffusionModel:
    torch.manual_seed(0)
    return DiffusionModel({"sample": {"channels": channels, "size": size}, "denoiser": dict(denoiser),
                           "text": TEXT, "scheduler": {"num_train_timesteps": 100, **sched}})


def randomise(model: torch.nn.Module) -> None:
    """Move every zero-initialised output layer off zero, as training would."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.mark.parametrize("denoiser", [UNET, DIT], ids=["unet", "dit"])
def test_denoiser_shapes_zero_start_and_text_conditioning(denoiser: dict) -> None:
    model = make(denoiser).eval()
    x = torch.randn(3, 3, 16, 16)
    t = torch.tensor([0, 50, 99])
    ids, lengths = pad_ids([[5, 6, 7], [8], []], 8)
    with torch.no_grad():
        out = model(x, t, ids, lengths)
        assert out.shape == x.shape
        assert out.abs().max().item() == 0.0  # zero-initialised output layer (DiT: adaLN-zero head)
        randomise(model)
        out = model(x, t, ids, lengths)
        other = model(x, t, *pad_ids([[9, 10, 11], [12], []], 8))
        padded = model(x, t, torch.cat([ids, torch.full((3, 4), 33)], 1), lengths)  # junk after each caption
    assert out.abs().max().item() > 0
    assert not torch.allclose(out[:2], other[:2])  # the caption changes the output
    torch.testing.assert_close(out[2], other[2])  # the empty caption is the same whatever the padding ids
    torch.testing.assert_close(out, padded, rtol=1e-5, atol=1e-6)  # tokens past the length are masked out


def test_fractional_timesteps_and_sizes() -> None:
    model = make(UNET, channels=1, size=8).eval()
    randomise(model)
    ids, lengths = pad_ids([[1, 2]], 8)
    with torch.no_grad():
        a = model(torch.zeros(1, 1, 8, 8), torch.tensor([10.0]), ids, lengths)
        b = model(torch.zeros(1, 1, 8, 8), torch.tensor([10.5]), ids, lengths)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="not divisible"):
        model(torch.zeros(1, 1, 7, 7), torch.tensor([1]), ids, lengths)
    with pytest.raises(ValueError, match="divisible by patch_size"):
        make({**DIT, "patch_size": 3})


def test_folder_round_trip_and_checkpoint_ema(tmp_path) -> None:
    model = make(DIT, prediction_type="v", schedule="cosine")
    randomise(model)
    model.save_pretrained(tmp_path / "m")
    back = DiffusionModel.from_pretrained(tmp_path / "m")
    x, t, (ids, lengths) = torch.randn(2, 3, 16, 16), torch.tensor([3, 70]), pad_ids([[1], [2, 3]], 8)
    with torch.no_grad():
        torch.testing.assert_close(back(x, t, ids, lengths), model.eval()(x, t, ids, lengths), rtol=0, atol=0)
    assert back.scheduler_config.prediction_type == "v"
    # a training checkpoint holds model.* and ema.* weights: the EMA is what loads
    from safetensors.torch import save_file

    from omnitok._io import sha256_file

    ema = {f"ema.{k}": v.clone() for k, v in model.state_dict().items()}
    raw = {f"model.{k}": torch.zeros_like(v) for k, v in model.state_dict().items()}
    (tmp_path / "c").mkdir()
    save_file({**raw, **ema}, str(tmp_path / "c" / "model.safetensors"))
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["weights_sha256"] = sha256_file(tmp_path / "c" / "model.safetensors")
    (tmp_path / "c" / "config.json").write_text(json.dumps(cfg))
    from_ckpt = DiffusionModel.from_pretrained(tmp_path / "c")
    with torch.no_grad():
        torch.testing.assert_close(from_ckpt(x, t, ids, lengths), model(x, t, ids, lengths), rtol=0, atol=0)
    (tmp_path / "c" / "model.safetensors").write_bytes(b"damaged")
    with pytest.raises(ValueError, match="sha256"):
        DiffusionModel.from_pretrained(tmp_path / "c")


def test_invalid_model_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="zero terminal SNR"):
        make(UNET, schedule="flow", prediction_type="epsilon")
    with pytest.raises(ValueError, match="denoiser name"):
        make({"name": "transformer"})
    with pytest.raises(ValueError, match="attention_levels"):
        make({**UNET, "attention_levels": [3]})
