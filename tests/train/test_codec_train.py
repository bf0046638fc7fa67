"""`omnitok train codec`: the debug presets train in seconds, the loss falls, resume gives the same weights
(AdamW and Muon)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from omnitok.cli import main
from omnitok.codecs.base import load_codec


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_debug_preset_trains_and_loss_falls(tmp_path):
    out = tmp_path / "run"
    args = ["train", "codec", "--preset", "debug", "--out", str(out), "train.steps=40", "train.log_every=1",
            "train.sample_every=40", "train.save_every=40", "train.progress=false"]
    assert main(args) == 0
    log = _log(out)
    assert len(log) == 40
    first = sum(r["rec"] for r in log[:5]) / 5
    last = sum(r["rec"] for r in log[-5:]) / 5
    assert last < 0.85 * first, (first, last)
    assert (out / "samples" / "step-0000040.png").is_file()
    codec = load_codec(out / "codec")
    cfg = json.loads((out / "codec" / "config.json").read_text())
    assert cfg["preset"]["name"] == "debug" and cfg["train"]["steps"] == 40
    assert codec.encode(torch.zeros(1, 3, 16, 16)).shape == (1, 4, 4, 1)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_matches_uninterrupted_run(tmp_path, optimizer):
    common = ["train.sample_every=0", "train.save_every=3", "train.progress=false", "train.log_every=1",
              f"train.optimizer={optimizer}"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "codec", "--preset", "debug", "--out", str(a), "train.steps=6", *common]) == 0
    assert main(["train", "codec", "--preset", "debug", "--out", str(b), "train.steps=3", *common]) == 0
    assert main(["train", "codec", "--preset", "debug", "--out", str(b), "--resume", "train.steps=6", *common]) == 0
    wa, wb = load_file(str(a / "codec" / "model.safetensors")), load_file(str(b / "codec" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], msg=k)
    assert [r["step"] for r in _log(b)] == [1, 2, 3, 4, 5, 6]
    torch.testing.assert_close(_log(a)[-1]["loss"], _log(b)[-1]["loss"])


def test_video_debug_preset_trains(tmp_path):
    out = tmp_path / "v"
    assert main(["train", "codec", "--preset", "video-debug", "--out", str(out), "train.progress=false",
                 "train.steps=4", "train.sample_every=4"]) == 0
    codec = load_codec(out / "codec")
    assert codec.modality == "video"
    assert codec.encode(torch.zeros(1, 3, 5, 16, 16)).shape == (1, 3, 4, 4, 1)
    assert (out / "samples" / "step-0000004.png").is_file()


def test_gan_and_bad_resume(tmp_path, cli_error):
    out = tmp_path / "g"
    assert main(["train", "codec", "--preset", "debug", "--out", str(out), "train.progress=false",
                 "train.steps=3", "loss.gan=0.1", "loss.gan_start=1", "loss.disc_layers=1", "train.sample_every=0"]) == 0
    assert "d_loss" in _log(out)[-1] and "gan_weight" in _log(out)[-1]
    cli_error(["train", "codec", "--preset", "debug", "--out", str(tmp_path / "none"), "--resume"], "no checkpoint")
    cli_error(["train", "codec", "--preset", "no-such-preset"], "unknown codec preset")
