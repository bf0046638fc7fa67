"""Damaged training checkpoints are refused with the file named; a torn metrics line does not stop a resume."""

from __future__ import annotations

import json

import pytest
import torch

from omnitok._io import CheckpointError
from omnitok.train.checkpoint import CHECKPOINT_FILES, latest_checkpoint, load_checkpoint
from omnitok.train.lm import TrainConfig, expand_data, train

MODEL = dict(n_layer=1, dim=16, n_head=2, ffn_multiple_of=16, max_seq_len=32)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ck") / "run"
    tc = TrainConfig(seq_len=16, batch_size=2, max_steps=4, lr=1e-3, warmup_steps=1, log_every=1, eval_every=0,
                     save_every=2)
    train(MODEL, tc, "synthetic:vocab=32", out, progress=False)
    return out, tc


def _copy(run, tmp_path):
    import shutil

    out, _ = run
    dst = tmp_path / "run"
    shutil.copytree(out, dst)
    return dst, latest_checkpoint(dst)


def test_checkpoint_records_every_files_checksum(run):
    ck = latest_checkpoint(run[0])
    cfg = json.loads((ck / "config.json").read_text())
    assert set(cfg["files_sha256"]) == set(CHECKPOINT_FILES) - {"config.json"}
    assert load_checkpoint(ck)["step"] == 4


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors", "rng.json", "loader.json"])
def test_flipped_byte_names_the_file(run, tmp_path, name):
    _, ck = _copy(run, tmp_path)
    data = bytearray((ck / name).read_bytes())
    data[-2] ^= 0x01
    (ck / name).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{name}: sha256 differs"):
        load_checkpoint(ck)


def test_malformed_json_and_missing_step_name_the_file(run, tmp_path):
    _, ck = _copy(run, tmp_path)
    cfg = json.loads((ck / "config.json").read_text())
    del cfg["step"]
    (ck / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"config.json: not a training checkpoint's config"):
        load_checkpoint(ck)
    (ck / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"config.json: not valid JSON"):
        load_checkpoint(ck)


def test_truncated_weights_name_the_file(run, tmp_path):
    _, ck = _copy(run, tmp_path)
    (ck / "model.safetensors").write_bytes((ck / "model.safetensors").read_bytes()[:50])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(ck, verify=False)


def test_torn_metrics_line_does_not_stop_a_resume(run, tmp_path):
    out, tc = run
    dst, _ = _copy(run, tmp_path)
    with open(dst / "metrics.jsonl", "a") as f:
        f.write('{"split": "train", "step": 5, "lo')  # a write cut by a kill
    (dst / "final").rename(dst / "final-old")
    tc6 = TrainConfig(**{**tc.__dict__, "max_steps": 6})
    with pytest.warns(UserWarning, match="metrics.jsonl:.*torn write"):
        train(MODEL, tc6, "synthetic:vocab=32", dst, resume=True, progress=False)
    rows = [json.loads(ln) for ln in (dst / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"][-1] == 6


def test_data_accepts_split_task_and_tokens_root(tmp_path):
    for task in ("digits-caption2image", "speech-speech2transcript"):
        for split in ("train", "val"):
            d = tmp_path / "tokens" / task / split
            d.mkdir(parents=True)
            (d / "part-r00000.json").write_text("{}")
    root = tmp_path / "tokens"
    split = root / "digits-caption2image" / "train"
    speech = root / "speech-speech2transcript" / "train"
    assert expand_data(str(root)) == f"{split}@1,{speech}@1"  # no record: sorted, ratio 1
    # the quickstart's record: its order (a resume needs the sources in the order it trained with) and ratios
    (tmp_path / "tokens" / "DONE").write_text(json.dumps([{"data": "speech:speech2transcript", "ratio": 0.5},
                                                          {"data": "digits:caption2image", "ratio": 3.0}]))
    assert expand_data(str(split)) == str(split)
    assert expand_data(f"{root / 'digits-caption2image'}@2") == f"{split}@2"
    assert expand_data(str(root)) == f"{speech}@0.5,{split}@3"
    assert expand_data(f"{root}@2") == f"{speech}@1,{split}@6"
    with pytest.raises(ValueError, match="is not a token-shard folder .* or a tokens root"):
        expand_data(str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        expand_data(str(tmp_path / "nope"))
