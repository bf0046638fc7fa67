"""Every command turns the errors a user can cause into one line and a non-zero exit; --debug shows the
traceback."""

from __future__ import annotations

import json
import sys

import pytest
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / "generation"))
from gen_helpers import make_model, make_vocab  # noqa: E402

from omnitok.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    vocab = make_vocab()
    vocab.save(root / "vocab")
    model = make_model(vocab, seed=1)
    model.generation_config = {"grids": {"image": [2, 3], "video": [1, 2, 2], "audio": [4]}}
    model.save_pretrained(root / "lm")
    return root


def gen(run_dir, *extra):
    return ["generate", "the digit seven", "--ckpt", str(run_dir / "lm"), "--vocab", str(run_dir / "vocab"), *extra]


@pytest.mark.parametrize("argv, match", [
    (["generate", "x", "--to", "image", "--ckpt", "nowhere"], "--ckpt nowhere: expected a model folder"),
    (["--to", "image", "--num-samples", "0"], "--num-samples 0 .* must be >= 1"),
    (["--to", "image", "--grid", "0x4"], "every size must be a whole number >= 1"),
    (["--to", "image", "--grid", "axb"], "--grid 'axb': an image grid is HxW"),
    (["--to", "image", "--grid", "100x100"], "more than the vocabulary's largest"),
    (["--to", "audio", "--grid", "1000000"], "more than the model's context"),
    (["--to", "image", "--cfg", "nan"], "cfg_scale must be a finite number"),
    (["--to", "text", "--grid", "4"], "text takes --max-new-tokens"),
    (["--to", "image", "--from", "photo.gif"], "unsupported file type '.gif'"),
])
def test_generate_errors_are_one_line(run_dir, cli_error, argv, match, tmp_path):
    if argv[0] != "generate":
        argv = gen(run_dir, *argv, "--out", str(tmp_path / "o.png"))
    cli_error(argv, match)


def test_size_mismatch_between_config_and_weights(run_dir, cli_error, tmp_path):
    import shutil

    bad = tmp_path / "lm"
    shutil.copytree(run_dir / "lm", bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["dim"] = 64
    (bad / "config.json").write_text(json.dumps(cfg))
    cli_error(["generate", "x", "--to", "image", "--ckpt", str(bad), "--vocab", str(run_dir / "vocab")],
              r"embed_tokens.weight has shape .* implies")


def test_debug_shows_the_traceback(run_dir):
    with pytest.raises(ValueError, match="every size must be"):
        main(gen(run_dir, "--to", "image", "--grid", "0x4", "--debug"))


def test_defaults_come_from_the_model(run_dir, tmp_path, capsys):
    """No --grid: the grid the model recorded (2x3 codes of the debug codec's 4 px -> an 8 x 12 PNG)."""
    from PIL import Image

    out = tmp_path / "seven.png"
    assert main(gen(run_dir, "--to", "image", "--out", str(out), "--seed", "0")) == 0
    assert Image.open(out).size == (12, 8)
    capsys.readouterr()


def test_info_prints_what_the_model_records(run_dir, capsys, cli_error):
    assert main(["info", str(run_dir / "lm")]) == 0
    text = capsys.readouterr().out
    assert "grid 2x3" in text and "(verified)" in text and str(run_dir / "vocab") in text
    assert main(["info", str(run_dir / "vocab")]) == 0
    assert "audio pattern" in capsys.readouterr().out
    cli_error(["info", str(run_dir / "nothing")], "no such folder")


def test_internal_errors_are_labelled(monkeypatch, capsys):
    import omnitok.info

    def boom(args):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(omnitok.info, "run", boom)
    assert main(["info", "."]) == 1
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: oops" in err and "--debug" in err and "Traceback" not in err
    torch.manual_seed(0)


def test_large_picture_without_a_recorded_codec_size_is_refused(run_dir, cli_error, tmp_path):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("RGB", (600, 600), (10, 20, 30)).save(big)
    cli_error(gen(run_dir, "--to", "text", "--from", str(big), "--max-new-tokens", "3"),
              "600 x 600 pixels is larger than 512 px")


@pytest.mark.parametrize("override, match", [
    ("lr=abc", r"lr = 'abc' \(str\) is not a valid float"),
    ("batch_size=2.5", r"batch_size = 2.5 \(float\) is not a valid int"),
    ("seq_len=0", r"train.seq_len must be >= 1"),
    ("n_layer=true", r"n_layer = True \(bool\) is not a valid int"),
])
def test_train_lm_preset_values_are_checked(cli_error, override, match, tmp_path):
    cli_error(["train", "lm", "--preset", "debug", "--data", "synthetic:vocab=32", "--out", str(tmp_path / "r"),
               "--no-progress", override], match)
