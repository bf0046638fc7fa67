"""pocketsphinx judge on a short flite clip, WER arithmetic, and the audio-codec evaluator end to end."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from omnitok.eval.wer import corpus_wer, edit_distance, normalize_text, wer

pytest.importorskip("pocketsphinx")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite (Debian) is not installed")


def test_wer_arithmetic() -> None:
    assert normalize_text("One, 2 THREE oh!") == ["one", "two", "three", "zero"]
    assert edit_distance(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert wer("one two three", "one two three") == 0.0
    assert wer("one two three four", "one three four five") == 0.5
    assert corpus_wer([("a b", "a"), ("c d e", "c d e")]) == pytest.approx(1 / 5)
    assert wer("", "") == 0.0 and wer("", "x") == 1.0


def flite(text: str, tmp_path) -> np.ndarray:
    from omnitok.io.audio import read_audio

    subprocess.run(["flite", "-voice", "kal16", "-t", text, "-o", str(tmp_path / "t.wav")], check=True)
    return read_audio(tmp_path / "t.wav", target_sr=16000)[0]


@needs_flite
def test_pocketsphinx_digits_and_lm(tmp_path) -> None:
    from omnitok.eval.asr import PocketSphinx

    judge = PocketSphinx()
    audio = flite("seven three one nine", tmp_path)
    assert judge.transcribe(audio, 16000, "digits") == "seven three one nine"
    assert wer("seven three one nine", judge.transcribe(audio, 16000, "lm")) <= 0.5
    noise = np.random.default_rng(0).normal(0, 0.3, 16000).astype(np.float32)
    assert wer("seven three one nine", judge.transcribe(noise, 16000, "digits")) > 0.5  # the judge can fail
    up = judge.transcribe(np.interp(np.arange(len(audio) * 3 // 2) / 1.5, np.arange(len(audio)), audio), 24000,
                          "digits")
    assert up == "seven three one nine"  # 24 kHz input is resampled to the model's 16 kHz
    with pytest.raises(ValueError, match="mode"):
        judge.transcribe(audio, 16000, "words")
    with pytest.raises(ValueError, match="empty"):
        judge.transcribe(np.zeros(0, np.float32), 16000)


@needs_flite
def test_evaluate_audio_codec_with_asr(tmp_path) -> None:
    from omnitok.codecs.audio import AudioCodec
    from omnitok.eval.audio_codec import evaluate
    from omnitok.io.audio import write_wav

    data = tmp_path / "clips"
    data.mkdir()
    texts = {"a": {"text": "four two", "kind": "digits"}, "b": {"text": "good morning", "kind": "sentence"}}
    for key, t in texts.items():
        (data / f"{key}.wav").write_bytes(write_wav(flite(t["text"], tmp_path), 16000))
    (data / "transcripts.json").write_text(json.dumps(texts))
    torch.manual_seed(0)
    codec = AudioCodec(dim=8, enc_channels=2, dec_channels=2, codebook_size=16, num_codebooks=2,
                       quantizer_kwargs={"kmeans_init": False}).eval()
    res = evaluate(codec, str(data), "test", tmp_path / "out", limit=None, examples=1)
    assert res["clips"] == 2 and set(res["per_n_q"]) == {"1", "2"}
    assert res["per_n_q"]["2"]["bitrate_bps"] == 2 * 4 * 50
    assert res["encode_rtf"] > 0 and res["decode_rtf"] > 0
    assert res["wer"]["digits"]["wer_original"] == 0.0 and res["wer"]["digits"]["judge"] == "digit grammar"
    assert res["wer"]["sentences"]["judge"] == "full LM"
    assert res["wer"]["all"]["utterances"] == 2
    rows = [json.loads(line) for line in (tmp_path / "out" / "utterances.jsonl").read_text().splitlines()]
    assert {r["key"] for r in rows} == {"a", "b"} and (tmp_path / "out" / "a-original.wav").is_file()
