"""``omnitok train clip`` on the debug preset over small real slices: the loss falls, the temperature stays
clamped, the final folder loads back to the same embeddings, a resumed run ends where an uninterrupted one does,
and ``omnitok eval clip`` runs on the held-out slices."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from omnitok import AlignModel, encode_audio, encode_image, encode_text, similarity
from omnitok._io import CheckpointError
from omnitok.align import text_features
from omnitok.cli import main
from omnitok.eval.clip import evaluate, recall_at
from omnitok.train.align import apply_overrides, batch_indices, load_preset, train

pytestmark = pytest.mark.slow


def _debug(*overrides: str) -> dict:
    return apply_overrides(load_preset("debug"), list(overrides))


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory: pytest.TempPathFactory, align_root: Path) -> Path:
    out = tmp_path_factory.mktemp("clip") / "run"
    train(_debug(), out, progress=False, root=str(align_root))
    return out


def _records(out: Path, split: str) -> list[dict]:
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["split"] == split]


def test_loss_falls_and_temperature_stays_clamped(debug_run: Path) -> None:
    val = _records(debug_run, "val")
    first, last = val[0], val[-1]
    assert first["step"] == 0 and last["step"] == 30
    # held-out digits and digit strings share their words with training; a slice's held-out emoji names do not
    for task in ("digits", "speech"):
        assert last[f"val_loss_{task}"] < first[f"val_loss_{task}"] - 0.05, (task, first, last)
    train_recs = _records(debug_run, "train")
    for task in ("digits", "emoji", "speech"):
        assert train_recs[-1][f"loss_{task}"] < train_recs[0][f"loss_{task}"] - 0.05, (task, train_recs)
    assert all(0 < r[f"scale_{p}"] <= 100.0 for r in train_recs for p in ("image", "audio"))


def test_checkpoint_round_trip(debug_run: Path, tmp_path: Path) -> None:
    model = AlignModel.from_pretrained(debug_run / "final")
    last = sorted((debug_run / "checkpoints").glob("step_*"))[-1]
    ck = load_file(str(last / "model.safetensors"))
    for k, v in model.state_dict().items():  # the final folder holds the last step's weights
        assert torch.equal(v, ck[k]), k
    model.save_pretrained(tmp_path / "again")
    again = AlignModel.from_pretrained(tmp_path / "again")
    texts = ["the digit seven", "three one four", "grinning face"]
    assert torch.equal(encode_text(model, texts), encode_text(again, texts))
    images = torch.rand(4, 3, 28, 28) * 2 - 1
    assert torch.equal(encode_image(model, images), encode_image(again, images))
    weights = tmp_path / "again" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(CheckpointError, match="sha256"):
        AlignModel.from_pretrained(tmp_path / "again")


def test_resume_ends_where_an_uninterrupted_run_does(debug_run: Path, tmp_path: Path, align_root: Path) -> None:
    out = tmp_path / "halted"
    train(_debug("train.halt_after=15"), out, progress=False, root=str(align_root))
    assert not (out / "final").exists()
    train(_debug(), out, resume=True, progress=False, root=str(align_root))
    a = load_file(str(debug_run / "final" / "model.safetensors"))
    b = load_file(str(out / "final" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_api_embeddings(debug_run: Path) -> None:
    model = AlignModel.from_pretrained(debug_run / "final")
    t = encode_text(model, ["one two", "the digit nine", "red apple"])
    assert t.shape == (3, model.config.embed_dim)
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(encode_text(model, "the digit nine")[0], t[1], rtol=1e-5, atol=1e-6)  # batching
    clips = [torch.randn(16000) * 0.1, torch.randn(8000) * 0.1]
    a = encode_audio(model, clips, 16000)
    torch.testing.assert_close(encode_audio(model, clips[1:], 16000)[0], a[1], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="Hz"):
        encode_audio(model, clips, 22050)
    s = similarity(a, t)
    assert s.shape == (2, 3) and float(s.abs().max()) <= 1.0 + 1e-5
    # per-token states for conditioning: their masked mean, projected and normalised, is the text embedding
    feats, valid = text_features(model, ["one two", "the digit nine", "red apple"])
    assert feats.shape[:2] == valid.shape and feats.shape[2] == model.config.text.dim
    pooled = (feats * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)
    torch.testing.assert_close(torch.nn.functional.normalize(model.text.proj(pooled), dim=-1), t, rtol=1e-4,
                               atol=1e-5)


def test_recall_at() -> None:
    sim = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.1, 0.9, 0.0]])
    r = recall_at(sim, torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]), ks=(1, 2))
    assert r == {"R@1": pytest.approx(2 / 3), "R@2": pytest.approx(1.0)}  # query 1 hits at rank 2


def test_batches_split_over_ranks() -> None:
    whole = batch_indices(10, 8, 3, seed=1)  # crosses an epoch boundary: positions 24..31 of 10 pairs
    assert whole.tolist() == [*batch_indices(10, 8, 3, seed=1)[:4].tolist(), *whole[4:].tolist()]
    seen = torch.cat([batch_indices(10, 5, s, seed=1) for s in range(2)])  # one epoch: each pair once
    assert sorted(seen.tolist()) == list(range(10))


def _whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-3


def test_eval_clip_on_held_out_slices(debug_run: Path, align_root: Path, tmp_path: Path) -> None:
    result = evaluate(AlignModel.from_pretrained(debug_run / "final"), "test", root=str(align_root),
                      progress=False)
    assert "skipped" not in result, result.get("skipped")
    z = result["zero_shot_digits"]
    assert z["images"] > 0 and len(z["per_template"]) == len(z["templates"])
    assert _whole(z["accuracy"] * z["images"])  # a share of the held-out images
    for key in ("emoji_retrieval", "speech_retrieval"):
        r = result[key]
        assert r["pairs"] > 0 and r["distinct_texts"] > 0
        for direction in ("media_to_text", "text_to_media"):
            assert r[direction]["R@1"] <= r[direction]["R@5"]  # a hit in the top 1 is a hit in the top 5
            # each recall is a share of the queries (one per pair, or one per distinct text)
            assert any(_whole(r[direction]["R@1"] * q) for q in (r["pairs"], r["distinct_texts"]))
    c = result["emoji_clipscore"]
    n = c["pairs"]
    assert c["wrong_names"] == n and _whole(c["true_above_shuffled"] * n)
    assert _whole(c["auc"] * 2 * n * n)  # Mann-Whitney over n x n pairs, ties counted a half
    assert math.isfinite(c["true_mean"]) and math.isfinite(c["shuffled_mean"])
    # the command line writes the same figures to metrics.json
    code = main(["eval", "clip", str(debug_run / "final"), "--root", str(align_root), "--out", str(tmp_path),
                 "--no-progress"])
    assert code == 0
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["zero_shot_digits"]["accuracy"] == z["accuracy"]


def test_siglip_option_trains(align_root: Path, tmp_path: Path) -> None:
    train(_debug("model.loss=siglip", "train.max_steps=15", "train.eval_every=0", "train.save_every=0"),
          tmp_path / "siglip", progress=False, root=str(align_root))
    recs = _records(tmp_path / "siglip", "train")
    assert recs[-1]["loss"] < recs[0]["loss"]
    model = AlignModel.from_pretrained(tmp_path / "siglip" / "final")
    assert model.config.loss == "siglip" and set(model.logit_bias) == {"image", "audio"}


@pytest.mark.distributed
def test_two_processes_train_like_one(debug_run: Path, align_root: Path, tmp_path: Path) -> None:
    """torchrun with 2 gloo ranks, half of each global batch per rank, ends with the weights of one process."""
    import os
    import subprocess
    import sys

    steps = ["train.max_steps=4", "train.eval_every=0", "train.save_every=0", "train.warmup_steps=1",
             "train.log_every=1", f"text_codec.path={debug_run / 'text-codec'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "-m", "omnitok.cli", "train", "clip", "--preset", "debug", "--root", str(align_root), "--device", "cpu",
           "--out", str(tmp_path / "ddp"), "--no-progress", *steps]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    train(_debug(*steps), tmp_path / "single", progress=False, root=str(align_root), device="cpu")
    a = load_file(str(tmp_path / "ddp" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "final" / "model.safetensors"))
    start = load_file(str(debug_run / "final" / "model.safetensors"))
    # the losses and the gradient norm (before clipping) of every step: the gradients are summed, not averaged
    for r_ddp, r_one in zip(_records(tmp_path / "ddp", "train"), _records(tmp_path / "single", "train"), strict=True):
        for key in ("loss", "loss_digits", "loss_emoji", "loss_speech", "grad_norm"):
            assert r_ddp[key] == pytest.approx(r_one[key], rel=1e-4), (key, r_ddp, r_one)
    # weights: AdamW divides by sqrt(v) + 1e-8, so a gradient entry near 1e-8 turns float rounding into up to
    # about 1% of one step's learning rate (3e-3) on that entry
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-4, msg=k)
    assert not torch.equal(a["text.proj.weight"], start["text.proj.weight"])
    ddp = json.loads((tmp_path / "ddp" / "final" / "config.json").read_text())
    assert ddp["training"]["world_size"] == 2
