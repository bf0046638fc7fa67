"""``--resume`` continues with bit-identical losses; checkpoints are atomic; metrics and curves are written."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from omnitok.train import checkpoint as ckpt_mod
from omnitok.train.lm import SyntheticBatches, TrainConfig, train

MODEL = dict(n_layer=2, dim=32, n_head=4, n_kv_head=2, ffn_multiple_of=16, max_seq_len=64, qk_norm=True,
             z_loss=1e-4)


def config(**kw) -> TrainConfig:
    base = dict(seq_len=32, batch_size=2, grad_accum=2, max_steps=8, lr=3e-3, warmup_steps=2, log_every=1,
                eval_every=4, eval_batches=1, save_every=4)
    return TrainConfig(**{**base, **kw})


def losses(run) -> dict[int, float]:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: (r["loss"] if r["split"] == "train" else r["val_loss"]) for r in rows}


def test_resume_is_bit_identical(tmp_path):
    torch.set_num_threads(1)
    full, part = tmp_path / "full", tmp_path / "part"
    train(MODEL, config(), "synthetic:vocab=64", full, progress=False)
    train(MODEL, config(halt_after=5), "synthetic:vocab=64", part, progress=False)  # "killed" after step 5
    assert not (part / "final").exists()
    train(MODEL, config(), "synthetic:vocab=64", part, resume=True, progress=False)
    a, b = losses(full), losses(part)
    assert sorted(a) == sorted(b) == list(range(0, 9))
    assert a == b  # exact float equality, every step (and the validation losses)
    assert a[8] < a[1]
    wa = load_file(str(full / "final" / "model.safetensors"))
    wb = load_file(str(part / "final" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (full / "loss.png").stat().st_size > 1000


def test_kill_during_save_keeps_latest(tmp_path, monkeypatch):
    train(MODEL, config(max_steps=4, grad_accum=1, eval_every=0, save_every=2), "synthetic:vocab=64", tmp_path,
          progress=False)
    before = ckpt_mod.latest_checkpoint(tmp_path)
    assert before is not None and before.name == "step_00000004"
    calls = {"n": 0}
    real = ckpt_mod.save_file

    def dying_save(*args, **kwargs):  # dies after writing the model file
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(ckpt_mod, "save_file", dying_save)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    with pytest.raises(KeyboardInterrupt):
        ckpt_mod.save_checkpoint(tmp_path, 6, model, opt, {"model": {}}, {"step": 6})
    assert ckpt_mod.latest_checkpoint(tmp_path) == before
    loaded = ckpt_mod.load_checkpoint(before)
    assert loaded["step"] == 4 and loaded["loader"] == {"step": 4}


def test_synthetic_source_contract_and_sharding():
    one = next(SyntheticBatches(64, 32, 4, seed=3))
    halves = [next(SyntheticBatches(64, 32, 2, seed=3, rank=r, world_size=2)) for r in range(2)]
    for k, v in one.items():
        assert torch.equal(v, torch.cat([h[k] for h in halves]))
    valid = one["labels"] != -100
    assert (one["modality"][valid] > 0).all() and (one["modality"][~valid] == 0).all()
    same_doc = (one["document_ids"][:, 1:] == one["document_ids"][:, :-1]) & (one["document_ids"][:, 1:] >= 0)
    assert torch.equal(one["labels"][:, :-1][same_doc], one["input_ids"][:, 1:][same_doc])


class _Clock:
    """A stand-in for time.perf_counter that advances one second per call."""

    def __init__(self) -> None:
        self.t = 0.0

    def perf_counter(self) -> float:
        self.t += 1.0
        return self.t


def test_time_budget_stops_early_saves_final_and_resume_keeps_it(tmp_path, monkeypatch):
    import omnitok.train.lm as lm_mod

    monkeypatch.setattr(lm_mod, "time", _Clock())
    cfg = config(max_steps=50, eval_every=0, save_every=100, max_minutes=0.5)  # 30 fake seconds
    train(MODEL, cfg, "synthetic:vocab=64", tmp_path, progress=False)
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]["step"]
    assert 1 < last < 50 and (tmp_path / "final" / "model.safetensors").is_file()
    ck = ckpt_mod.latest_checkpoint(tmp_path)
    meta = json.loads((ck / "config.json").read_text())
    assert meta["step"] == last and meta["train_seconds"] >= 30.0
    # the schedule followed the clock: near its end the LR has decayed (by steps it would still be near the peak)
    assert rows[-1]["lr"] < 0.5 * cfg.lr
    before = (tmp_path / "metrics.jsonl").read_text()
    train(MODEL, cfg, "synthetic:vocab=64", tmp_path, resume=True, progress=False)  # the budget is spent
    assert (tmp_path / "metrics.jsonl").read_text() == before
    with pytest.raises(ValueError, match="max_minutes"):
        train(MODEL, config(max_minutes=-1.0), "synthetic:vocab=64", tmp_path / "bad", progress=False)


def test_keep_best_writes_the_model_of_the_lowest_validation_loss(tmp_path):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    cfg = config(max_steps=12, lr=3e-2, eval_every=2, save_every=2, keep_checkpoints=10, keep_best="val_loss")
    train(MODEL, cfg, "synthetic:vocab=64", run, progress=False)
    val = {r["step"]: r["val_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
           if r["split"] == "val" and r["step"] > 0}
    best = json.loads((run / "best" / "best.json").read_text())
    step = min(val, key=val.get)
    assert best == {"metric": "val_loss", "value": val[step], "step": step}
    kept = load_file(str(run / "best" / "model.safetensors"))
    at_step = load_file(str(run / "checkpoints" / f"step_{step:08d}" / "model.safetensors"))
    assert kept.keys() == at_step.keys() and all(torch.equal(kept[k], at_step[k]) for k in kept)
    assert (run / "best" / "config.json").is_file() and not (run / "best.tmp").exists()
    with pytest.raises(ValueError, match="not a validation metric"):
        train(MODEL, config(keep_best="val_nope"), "synthetic:vocab=64", tmp_path / "bad", progress=False)


def test_keep_best_survives_a_resume(tmp_path):
    run = tmp_path / "run"
    train(MODEL, config(halt_after=4, keep_best="val_loss"), "synthetic:vocab=64", run, progress=False)
    first = json.loads((run / "best" / "best.json").read_text())
    (run / "best" / "best.json").write_text(json.dumps({**first, "value": -1.0}))  # nothing can beat it
    train(MODEL, config(keep_best="val_loss"), "synthetic:vocab=64", run, resume=True, progress=False)
    assert json.loads((run / "best" / "best.json").read_text())["step"] == first["step"]
