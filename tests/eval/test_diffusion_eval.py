"""``omnitok eval diffusion``: prompts per digit, the judge's reading, seconds per image, one grid per setting."""

from __future__ import annotations

import json

import torch

from omnitok.cli import main
from omnitok.eval.judges.digit_classifier import DigitClassifier, DigitCNN
from omnitok.train.diffusion import load_preset, train


def test_eval_diffusion_rows_and_table(tmp_path, capsys) -> None:
    train(load_preset("debug", ["train.progress=false", "train.steps=2", "train.sample_every=0",
                                "train.save_every=0"]), tmp_path / "run")
    torch.manual_seed(0)
    DigitClassifier(DigitCNN(), test_accuracy=0.5).save(tmp_path / "judge")  # any judge: the plumbing is tested
    out = tmp_path / "eval.json"
    assert main(["eval", "diffusion", str(tmp_path / "run"), "--steps", "2,3", "--ddpm", "4", "--per-digit", "2",
                 "--batch-size", "8", "--judge-dir", str(tmp_path / "judge"), "--samples", str(tmp_path / "grids"),
                 "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    res = json.loads(out.read_text())
    rows = [(r["sampler"], r["steps"]) for r in res["rows"]]
    assert rows == [("ddim", 2), ("ddim", 3), ("ddpm", 4)]
    for r in res["rows"]:
        assert r["images"] == 20 and 0.0 <= r["accuracy"] <= 1.0 and r["seconds_per_image"] > 0
        assert set(r["per_digit"]) == {str(k) for k in range(10)}
        assert (tmp_path / "grids" / f"{r['sampler']}-{r['steps']}.png").is_file()
    assert res["judge_test_accuracy"] == 0.5 and res["train"]["steps"] == 2
    table = capsys.readouterr().out
    assert "| ddim | 2 | 3 |" in table and "| ddpm | 4 | 3 |" in table
