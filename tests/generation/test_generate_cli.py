"""``omnitok generate``: text streamed to stdout, image with a row-by-row preview, audio, video, --from media."""

from __future__ import annotations

import pytest
import torch
from gen_helpers import make_model, make_vocab

from omnitok.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    vocab = make_vocab()
    vocab.save(root / "vocab")
    make_model(vocab, seed=1).save_pretrained(root / "lm")
    return root


def test_cli_text_streams(run_dir, capsys):
    assert main(["generate", "zero one", "--to", "text", "--ckpt", str(run_dir / "lm"), "--vocab",
                 str(run_dir / "vocab"), "--max-new-tokens", "8", "--seed", "0"]) == 0
    out = capsys.readouterr()
    assert "tokens in" in out.err


def test_cli_image_preview_and_vocab_lookup(run_dir, capsys):
    out = run_dir / "apple.png"
    # no --vocab: found beside the model folder (run_dir/vocab)
    assert main(["generate", "a red apple", "--to", "image", "--ckpt", str(run_dir / "lm"), "--out", str(out),
                 "--grid", "3x4", "--seed", "1", "--cfg", "2"]) == 0
    err = capsys.readouterr().err
    assert "preview: 3/3 rows" in err and out.is_file()
    from PIL import Image

    assert Image.open(out).size == (16, 12)


def test_cli_from_image_to_text_and_audio(run_dir, capsys):
    pytest.importorskip("soundfile")
    img = run_dir / "apple.png"
    if not img.exists():
        from omnitok.io.image import save_image

        save_image(torch.rand(3, 12, 16) * 2 - 1, img)
    assert main(["generate", "--from", str(img), "--to", "text", "--ckpt", str(run_dir / "lm"),
                 "--max-new-tokens", "6", "--out", str(run_dir / "caption.txt")]) == 0
    assert (run_dir / "caption.txt").is_file()
    wav = run_dir / "speech.wav"
    assert main(["generate", "say zero", "--to", "audio", "--ckpt", str(run_dir / "lm"), "--grid", "4",
                 "--out", str(wav), "--method", "jacobi"]) == 0
    assert wav.stat().st_size > 44
    assert main(["generate", "--from", str(wav), "--to", "text", "--ckpt", str(run_dir / "lm"),
                 "--max-new-tokens", "4", "--no-stream"]) == 0
    capsys.readouterr()


def test_cli_video(run_dir):
    pytest.importorskip("av")
    mp4 = run_dir / "four.mp4"
    assert main(["generate", "a moving digit four", "--to", "video", "--ckpt", str(run_dir / "lm"),
                 "--grid", "2x2x2", "--out", str(mp4)]) == 0
    assert mp4.stat().st_size > 0


def test_cli_missing_vocab(tmp_path, cli_error):
    vocab = make_vocab()
    make_model(vocab).save_pretrained(tmp_path / "lm")
    cli_error(["generate", "x", "--to", "text", "--ckpt", str(tmp_path / "lm")], "--vocab")


def test_cli_vocab_recorded_in_model_config(tmp_path, run_dir, cli_error):
    vocab = make_vocab()
    m = make_model(vocab)
    m.config.extra = {"vocab_dir": str(run_dir / "vocab"), "vocab_hash": vocab.hash}
    m.save_pretrained(tmp_path / "lm")
    assert main(["generate", "x", "--to", "text", "--ckpt", str(tmp_path / "lm"), "--max-new-tokens", "3",
                 "--no-stream"]) == 0
    m.config.extra["vocab_hash"] = "0" * 64
    m.save_pretrained(tmp_path / "lm2")
    cli_error(["generate", "x", "--to", "text", "--ckpt", str(tmp_path / "lm2")], "differs")


def test_cli_until_end_audio(tmp_path, capsys, cli_error):
    """--until-end: a one-codebook vocabulary gives speech of at most --grid frames; the delay pattern of four
    codebooks is refused with the reason."""
    pytest.importorskip("soundfile")
    from omnitok.data.debug import debug_vocabulary
    from omnitok.io.audio import read_audio

    vocab = debug_vocabulary(audio_pattern="flatten", audio_levels=1)
    vocab.save(tmp_path / "vocab")
    make_model(vocab, seed=2).save_pretrained(tmp_path / "lm")
    wav = tmp_path / "free.wav"
    assert main(["generate", "say zero", "--to", "audio", "--ckpt", str(tmp_path / "lm"), "--grid", "9",
                 "--until-end", "--seed", "0", "--out", str(wav)]) == 0
    audio, sr = read_audio(wav.read_bytes(), name=str(wav))
    assert 0 < audio.shape[-1] <= 9 * 80
    capsys.readouterr()
    make_model(make_vocab(), seed=1).save_pretrained(tmp_path / "lm4")
    make_vocab().save(tmp_path / "vocab4")
    cli_error(["generate", "say zero", "--to", "audio", "--ckpt", str(tmp_path / "lm4"), "--vocab",
               str(tmp_path / "vocab4"), "--grid", "5", "--until-end", "--out", str(tmp_path / "x.wav")],
              "delay pattern")


def test_cli_best_of_reports_the_kept_scores(run_dir, capsys):
    pytest.importorskip("soundfile")
    wav = run_dir / "best.wav"
    assert main(["generate", "say zero", "--to", "audio", "--ckpt", str(run_dir / "lm"), "--grid", "4",
                 "--out", str(wav), "--best-of", "3", "--seed", "2"]) == 0
    err = capsys.readouterr().err
    assert "kept the best of 3 by the reverse score" in err and "3 candidates" in err
    assert wav.stat().st_size > 44
