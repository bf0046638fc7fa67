"""Debug training of the audio codec (AdamW and Muon): the loss falls, the codec folder loads, resume gives the same weights."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from omnitok.codecs.audio import AudioCodec
from omnitok.codecs.base import load_codec
from omnitok.codecs.builder import load_preset
from omnitok.train.audio_codec import train


def _losses(out) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_debug_training_loss_falls_and_resumes(tmp_path, optimizer) -> None:
    cfg = load_preset("audio-debug", ["quantizer.quantizer_dropout=0.0", f"train.optimizer={optimizer}"])
    assert cfg["type"] == "audio"
    final = train(cfg, tmp_path / "a", resume=False)
    losses = _losses(tmp_path / "a")
    assert len(losses) == cfg["train"]["steps"]
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3, losses
    codec = load_codec(final)
    assert isinstance(codec, AudioCodec)
    codes = codec.encode(torch.zeros(1, 1, 3200).uniform_(-0.5, 0.5))
    assert codes.shape == (1, 10, 4)
    cfg_json = json.loads((final / "config.json").read_text())
    assert cfg_json["train"]["steps"] == cfg["train"]["steps"] and cfg_json["preset"]["type"] == "audio"

    # resume from the mid-run checkpoint (step 6) and reach the same weights as the straight run
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    ckpts = tmp_path / "b" / "checkpoints"
    mid = sorted(p.name for p in ckpts.glob("step_*"))[0]
    (ckpts / "latest.json").write_text(json.dumps({"step": 6, "path": mid}))
    shutil.rmtree(tmp_path / "b" / "codec")
    resumed = train(cfg, tmp_path / "b", resume=True)
    a, b = load_file(str(final / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_optimizer_is_refused(tmp_path) -> None:
    cfg = load_preset("audio-debug", ["train.optimizer=sgd"])
    with pytest.raises(ValueError, match="adamw or muon"):
        train(cfg, tmp_path, resume=False)


def test_debug_training_with_stft_discriminator(tmp_path) -> None:
    cfg = load_preset("audio-debug", ["train.steps=4", "train.save_every=0", "loss.adversarial=1.0",
                                      "loss.feature=2.0", "loss.adversarial_start=2", "loss.disc_fft_sizes=[256,128]",
                                      "loss.disc_channels=4"])
    train(cfg, tmp_path, resume=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "adv_g" not in rows[1] and "adv_g" in rows[2] and "adv_d" in rows[3]  # the discriminator starts at step 2
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    ckpt = load_file(str(tmp_path / "checkpoints" / "step_00000004" / "model.safetensors"))
    assert any(k.startswith("disc.") for k in ckpt)
