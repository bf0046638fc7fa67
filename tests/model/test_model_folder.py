"""A model folder is refused, with the file named, when its config or weights are wrong or damaged."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from omnitok._io import CheckpointError
from omnitok.model.config import ModelConfig
from omnitok.model.transformer import Transformer

CFG = dict(vocab_size=50, n_layer=1, dim=16, n_head=2, ffn_multiple_of=16, max_seq_len=32)


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    m = Transformer(ModelConfig(**CFG))
    m.generation_config = {"grids": {"image": [4, 4]}, "sampling": {"image": {"cfg_scale": 5.0}}}
    m.save_pretrained(tmp_path / "m")
    return tmp_path / "m"


def test_round_trip_records_checksum_and_generation_config(folder):
    cfg = json.loads((folder / "config.json").read_text())
    assert len(cfg["weights_sha256"]) == 64
    m = Transformer.from_pretrained(folder)
    assert m.generation_config["grids"]["image"] == [4, 4]
    assert not list(folder.glob("*.tmp"))


def _edit_config(folder, **kw):
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(kw)
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("edit, match", [
    ({"dim": 32}, r"embed_tokens.weight has shape \(50, 16\) but .*config.json implies \(50, 32\)"),
    ({"dim": "16"}, r"config.json: dim = '16' \(str\) is not a valid int"),
    ({"n_layer": 1.5}, r"config.json: n_layer = 1.5 \(float\) is not a valid int"),
    ({"qk_norm": "yes"}, r"qk_norm = 'yes' \(str\) is not a valid bool"),
    ({"n_head": 0}, r"config.json: ModelConfig.n_head must be >= 1"),
    ({"rope_theta": -1.0}, r"rope_theta must be > 0"),
    ({"bogus": 1}, r"unknown key\(s\) \['bogus'\]"),
])
def test_config_errors_name_the_file_and_key(folder, edit, match):
    _edit_config(folder, **edit)
    with pytest.raises(CheckpointError, match=match):
        Transformer.from_pretrained(folder)


def test_config_that_is_a_list_or_not_json(folder):
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="config.json: expected a JSON object, got a list"):
        Transformer.from_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        Transformer.from_pretrained(folder)


def test_flipped_bytes_fail_the_checksum(folder):
    w = folder / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-5] ^= 0xFF  # a byte inside the last tensor's data: the file still parses
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors: sha256 differs"):
        Transformer.from_pretrained(folder)
    Transformer.from_pretrained(folder, verify=False)  # the explicit fast path loads it


def test_dtype_changed_in_header_is_refused(folder):
    """F32 -> I32 in the safetensors header (same byte size) loads as integers: refused by dtype, even unverified."""
    w = folder / "model.safetensors"
    raw = w.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = raw[8:8 + n].replace(b'"F32"', b'"I32"', 1)
    w.write_bytes(raw[:8] + header + raw[8 + n:])
    with pytest.raises(CheckpointError, match="sha256 differs"):
        Transformer.from_pretrained(folder)
    with pytest.raises(CheckpointError, match=r"dtype torch.int32, expected a floating-point tensor"):
        Transformer.from_pretrained(folder, verify=False)


def test_truncated_weights(folder):
    w = folder / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        Transformer.from_pretrained(folder, verify=False)


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such model folder"):
        Transformer.from_pretrained(tmp_path / "nowhere")
