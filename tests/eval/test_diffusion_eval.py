"""``omnitok eval diffusion``: prompts per digit, the judge's reading, seconds per image, one grid per setting."""

from __future__ import annotations

import json

import pytest
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
        assert r["images"] == 20 and r["seconds_per_image"] > 0
        assert set(r["per_digit"]) == {str(k) for k in range(10)}
        # 2 prompts per digit: each digit's share is 0, 1/2 or 1, and the row's accuracy is their mean
        assert all(v in (0.0, 0.5, 1.0) for v in r["per_digit"].values())
        assert r["accuracy"] == pytest.approx(sum(r["per_digit"].values()) / 10)
        assert (tmp_path / "grids" / f"{r['sampler']}-{r['steps']}.png").is_file()
    assert res["judge_test_accuracy"] == 0.5 and res["train"]["steps"] == 2
    table = capsys.readouterr().out
    assert "| ddim | 2 | 3 |" in table and "| ddpm | 4 | 3 |" in table


def test_eval_emoji_fid_references_clipscore_and_grid(tmp_path, capsys) -> None:
    import os
    from pathlib import Path

    from omnitok.align.model import AlignConfig, AlignModel, BPETokenizer, ImageTowerConfig, TextTowerConfig
    from omnitok.codecs.image import ImageCodec
    from omnitok.codecs.text import TextCodec
    from omnitok.data.build import build_dataset
    from omnitok.eval.diffusion import real_emoji
    from omnitok.io.image import load_image

    npm = Path(os.environ.get("OMNITOK_TEST_NPM_DIR", Path.home() / ".cache" / "omnitok-test-npm"))
    npm.mkdir(parents=True, exist_ok=True)
    root = tmp_path / "data"
    build_dataset("emoji", limit=24, size=32, root=root, progress=False, npm_root=npm, allow_apt=False,
                  splits="train=0.5,val=0.25,test=0.25")
    torch.manual_seed(0)
    codec = ImageCodec(3, channels=8, channel_mult=[1, 2, 2], z_channels=8, quantizer="vq",
                       quantizer_kwargs={"dim": 4, "codebook_size": 16})
    codec.save_pretrained(tmp_path / "codec")
    train(load_preset("debug", ["train.progress=false", "train.steps=2", "train.sample_every=0", "train.save_every=0",
                                "data.name=emoji", "data.size=32", f"data.root={root}",
                                f"latent.codec={tmp_path / 'codec'}"]), tmp_path / "run")
    real, names = real_emoji("test", 32, str(root))
    bpe = TextCodec.train_bpe(names * 2, vocab_size=270)
    clip = AlignModel(AlignConfig(vocab_size=270, embed_dim=16, text=TextTowerConfig(dim=16, n_layer=1, n_head=2,
                                                                                      max_len=8),
                                  image=ImageTowerConfig(image_size=32, widths=[8, 16])),
                      BPETokenizer(bpe.tokenizer.to_str()))
    clip.save_pretrained(tmp_path / "clip")
    out = tmp_path / "eval.json"
    assert main(["eval", "diffusion", str(tmp_path / "run"), "--data", "emoji", "--steps", "2", "--cfg", "2",
                 "--data-root", str(root), "--clip", str(tmp_path / "clip"), "--samples", str(tmp_path / "grids"),
                 "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    res = json.loads(out.read_text())
    (row,) = res["rows"]
    assert row["images"] == len(names) == len(real) and res["size"] == 32
    assert row["clipscore"]["pairs"] == len(names) and row["clipscore"]["wrong_names"] == len(names)
    refs = res["references"]
    assert refs["real_other_split"]["images"] == len(names) and refs["real"]["clipscore"]["pairs"] == len(names)
    # the untrained codec's reconstructions are far from the emoji: PSNR well under a trained codec's 20+ dB
    assert refs["codec_reconstructions"]["psnr"] < 15
    grid = load_image(row["grid"])  # 3 rows of (12 real above 12 generated) tiles of 32 px, 2 px padding
    assert tuple(grid.shape[-2:]) == (6 * 34, 12 * 34)
    table = capsys.readouterr().out
    assert "| codec reconstructions |" in table and f"| generated ({len(names)}) | ddim | 2 | 2 |" in table
