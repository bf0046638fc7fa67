"""Codec folders: weights are checked against the sha256 recorded at save; a poisoned codec training state is
refused with its path."""

from __future__ import annotations

import pytest
import torch

from omnitok._io import CheckpointError
from omnitok.codecs.base import load_codec
from omnitok.codecs.debug import DebugImageCodec


def test_damaged_codec_weights_are_refused(tmp_path):
    torch.manual_seed(0)
    DebugImageCodec().save_pretrained(tmp_path / "c")
    assert isinstance(load_codec(tmp_path / "c"), DebugImageCodec)
    w = tmp_path / "c" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0x10
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model.safetensors: sha256 differs .* damaged or was replaced"):
        load_codec(tmp_path / "c")
    load_codec(tmp_path / "c", verify=False)  # only when asked


def test_poisoned_train_state_is_refused(tmp_path, cli_error):
    """A train_state.pt that would run code when unpickled (torch.load weights_only refuses it) -> one line."""
    import pickle

    from omnitok.cli import main

    out = tmp_path / "run"
    assert main(["train", "codec", "--preset", "debug", "--out", str(out), "train.progress=false",
                 "train.steps=2", "train.sample_every=0"]) == 0
    states = sorted(out.rglob("train_state.pt"))
    assert states

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    states[-1].write_bytes(pickle.dumps({"model": Evil()}))
    cli_error(["train", "codec", "--preset", "debug", "--out", str(out), "train.progress=false", "train.steps=3",
               "train.sample_every=0", "--resume"], r"train_state.pt: refused")
