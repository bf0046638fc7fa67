"""``omnitok eval model`` end to end on a debug model, a debug vocabulary and tiny fake held-out splits."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import omnitok.eval.generator as generator_module
from omnitok.data.debug import debug_vocabulary
from omnitok.data.shards import ShardWriter
from omnitok.data.types import Example
from omnitok.eval.generator import Generator
from omnitok.eval.harness import evaluate_model, parse_sampling, summary_rows
from omnitok.eval.judges.digit_classifier import DigitClassifier, train_classifier
from omnitok.eval.judges.digit_text import digit_from_text
from omnitok.eval.judges.shared import Judges
from omnitok.eval.settings import EvalSettings
from omnitok.eval.tasks._speech import UNTIL_END_SLACK
from omnitok.io.audio import write_flac
from omnitok.io.image import encode_png
from omnitok.io.video import write_mp4
from omnitok.model.config import ModelConfig
from omnitok.model.transformer import Transformer

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _glyph(k: int, side: int = 32) -> np.ndarray:
    a = np.zeros((side, side, 3), np.uint8)
    r, c = 4 + 12 * (k // 5), 2 + 6 * (k % 5)
    a[r : r + 6, c : c + 6] = 255
    return a


def _write(root: Path, name: str, examples: list[Example]) -> None:
    w = ShardWriter(root / "datasets" / name / "test-000000.tar")
    for ex in examples:
        w.write(ex)
    w.close()


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval_root")
    rng = np.random.default_rng(0)
    _write(root, "digits", [Example(f"d{i}", {"png": encode_png(_glyph(i % 10))},
                                    {"caption": f"the digit {WORDS[i % 10]}", "label": i % 10}) for i in range(20)])
    noise = lambda n: (0.1 * rng.standard_normal(n)).astype(np.float32)  # noqa: E731
    speech = [Example(f"s{i}", {"flac": write_flac(noise(1600), 16000)},
                      {"transcript": "three one", "kind": "digits", "digits": "31", "engine": "flite"})
              for i in range(3)]
    speech += [Example(f"t{i}", {"flac": write_flac(noise(1600), 16000)},
                       {"transcript": WORDS[i], "kind": "digit", "digits": str(i), "engine": "flite"})
               for i in range(3)]
    speech += [Example("e0", {"flac": write_flac(noise(1600), 16000)},
                       {"transcript": "five", "kind": "digit", "digits": "5", "engine": "espeak-ng"})]
    _write(root, "speech", speech)
    frames = np.stack([np.roll(_glyph(0), 2 * t, axis=1) for t in range(8)])  # (T, H, W, 3) moving right
    _write(root, "video", [Example(f"v{i}", {"mp4": write_mp4(frames, 8)},
                                   {"caption": "the digit 3 moving right", "kind": "digits", "motion": "single",
                                    "digits": "3"}) for i in range(2)])
    _write(root, "text", [Example(f"x{i}", {"txt": b"the quick brown fox jumps over the lazy dog"}, {})
                          for i in range(2)])
    return root


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory) -> Path:
    x = torch.stack([torch.from_numpy(_glyph(k % 10)).permute(2, 0, 1).float() / 127.5 - 1 for k in range(200)])
    y = torch.arange(200) % 10
    clf = DigitClassifier(train_classifier(x, y, epochs=3, batch_size=32, lr=3e-3, max_shift=0, progress=False),
                          test_accuracy=1.0)
    folder = tmp_path_factory.mktemp("judge") / "digit-cnn-v1"
    clf.save(folder)
    return folder


class _StubMiniLM:
    def similarity(self, a, b):
        return torch.tensor([float(x == y) for x, y in zip(a, b)])


def test_digit_from_text():
    assert digit_from_text("the digit seven") == 7
    assert digit_from_text("a handwritten 7") == 7
    assert digit_from_text("oh") == 0
    assert digit_from_text("a red apple") is None


def test_eval_model_all_tasks(fake_root, judge_dir, tmp_path):
    torch.manual_seed(0)
    vocab = debug_vocabulary(max_height=8, max_width=8, max_frames=4)
    model = Transformer(ModelConfig(vocab_size=vocab.size, n_layer=1, dim=32, n_head=2, ffn_multiple_of=32,
                                    max_seq_len=1024)).eval()
    s = EvalSettings(tasks=("t2i", "i2t", "t2s", "s2t", "t2v", "v2t", "i2s", "s2i", "text"), limit=10, seed=0,
                     data_root=str(fake_root), image_size=32, video_size=32, video_frames=8, fid=False,
                     samples_dir=str(tmp_path / "samples"), num_samples_saved=2, progress=False,
                     judge_dir=str(judge_dir), batch_size=10)
    judges = Judges(s.judge_dir, s.data_root, progress=False, minilm=_StubMiniLM())
    res = evaluate_model(model, vocab, s, judges=judges)
    t = res["tasks"]
    for name in s.tasks:
        assert "error" not in t[name], (name, t[name])
    # eval.json's keys per task, as the quickstart, the report and docs read them (no FID, no emoji data here)
    keys = {"t2i": "accuracy n per_digit grid", "i2t": "accuracy n", "t2s": "wer n per_engine real_recordings "
            "duration_s", "s2t": "wer n per_engine over_twice_reference", "t2v": "frame_accuracy direction_accuracy n frames grid "
            "real_direction_accuracy real_frame_accuracy", "v2t": "digit_accuracy direction_accuracy both_accuracy n",
            "i2s": "accuracy wer n", "s2i": "accuracy n",
            "text": "nll_per_token perplexity tokens n continuation_minilm_similarity"}
    assert {k: set(t[k]) for k in keys} == {k: {*v.split(), "samples", "seconds"} for k, v in keys.items()}
    # one prompt per digit: the accuracy is the mean of the per-digit hits, each 0 or 1
    per = t["t2i"]["per_digit"]
    assert t["t2i"]["n"] == 10 and sorted(per) == [str(k) for k in range(10)] and set(per.values()) <= {0.0, 1.0}
    assert t["t2i"]["accuracy"] == pytest.approx(sum(per.values()) / 10)
    assert t["i2t"]["n"] == 10
    assert t["t2s"]["per_engine"]["flite"]["n"] == 3  # espeak-ng utterances are left out by default
    assert t["t2s"]["real_recordings"]["n"] == 3
    # an untrained model's transcripts are not the references: a WER of 0 would mean hypotheses were scored
    # against themselves; the only engine's WER is the whole WER
    assert t["s2t"]["wer"] > 0.0 and t["s2t"]["wer"] == t["s2t"]["per_engine"]["flite"]["wer"]
    assert t["t2v"]["frames"] == 2 * 8 and t["t2v"]["real_direction_accuracy"] == 1.0
    # v2t: both clips captioned, each scored on its digit and its direction ("the digit 3 moving right")
    assert t["v2t"]["n"] == 2 and t["v2t"]["both_accuracy"] <= min(t["v2t"]["digit_accuracy"],
                                                                   t["v2t"]["direction_accuracy"])
    assert (tmp_path / "samples" / "v2t" / "real-0.mp4").is_file()
    strip = tmp_path / "samples" / "t2v" / "gen-0-first-middle-last.png"  # the first, middle and last frames
    assert t["t2v"]["samples"][0]["frames_file"] == str(strip) and strip.is_file()
    assert t["s2i"]["n"] == 3 and t["i2s"]["n"] == 10
    assert t["text"]["perplexity"] > 1.0
    assert res["judges"]["digit_classifier"]["test_accuracy"] == 1.0
    assert (tmp_path / "samples" / "t2i" / "digit0-0.png").is_file()
    assert any(Path(p).suffix == ".mp4" for p in [t["t2v"]["samples"][0]["file"]])
    json.dumps(res)  # JSON-serialisable
    assert any(r[0] == "t2i" for r in summary_rows(res))
    # fixed seeds: the same figures again
    again = evaluate_model(model, vocab, EvalSettings(**{**vars(s), "tasks": ("t2i",), "samples_dir": None}),
                           judges=judges)
    assert again["tasks"]["t2i"]["accuracy"] == t["t2i"]["accuracy"]


def test_unknown_task_and_missing_data(tmp_path):
    vocab = debug_vocabulary()
    model = Transformer(ModelConfig(vocab_size=vocab.size, n_layer=1, dim=32, n_head=2, ffn_multiple_of=32))
    with pytest.raises(ValueError, match="unknown task"):
        evaluate_model(model, vocab, EvalSettings(tasks=("t2x",)))
    res = evaluate_model(model, vocab, EvalSettings(tasks=("i2t",), data_root=str(tmp_path), progress=False))
    assert "not built" in res["tasks"]["i2t"]["error"]


def test_media_sampling_settings_reach_generate(monkeypatch):
    seen = []

    def fake_generate(model, vocab, prompts, request):
        seen.append((request.produce, request.kwargs()))
        return types.SimpleNamespace(outputs=[])

    monkeypatch.setattr(generator_module, "generate", fake_generate)
    gen = Generator(None, None, EvalSettings(temperature=0.5, top_k=7, cfg_scale=2.0, seed=3))
    gen([], "audio")
    gen([], "text")
    gen([], "image", top_k=11)  # a task's own setting wins
    (_, audio_kw), (_, text_kw), (_, image_kw) = seen
    assert (audio_kw["temperature"], audio_kw["top_k"], audio_kw["cfg_scale"], audio_kw["seed"]) == (0.5, 7, 2.0, 3)
    assert text_kw["temperature"] == 0.0 and text_kw["top_k"] is None and text_kw["cfg_scale"] is None
    assert image_kw["top_k"] == 11 and image_kw["seed"] == 5
    seen.clear()
    per = Generator(None, None, EvalSettings(temperature=0.5, sampling={"audio": {"temperature": 0.7, "cfg_scale": 1.0}}))
    per([], "audio")
    per([], "image")
    assert (seen[0][1]["temperature"], seen[0][1]["cfg_scale"]) == (0.7, 1.0)  # per modality wins
    assert seen[1][1]["temperature"] == 0.5 and seen[1][1]["cfg_scale"] is None
    with pytest.raises(ValueError, match="sampling.audio.tempo"):
        Generator(None, None, EvalSettings(sampling={"audio": {"tempo": 1}}))([], "audio")
    seen.clear()
    Generator(None, None, EvalSettings())([], "audio")
    assert all(seen[0][1][k] is None for k in ("temperature", "top_k", "cfg_scale"))  # the modality's defaults


def test_split_selects_the_held_out_split(fake_root):
    vocab = debug_vocabulary()
    model = Transformer(ModelConfig(vocab_size=vocab.size, n_layer=1, dim=32, n_head=2, ffn_multiple_of=32))
    res = evaluate_model(model, vocab, EvalSettings(tasks=("s2t",), data_root=str(fake_root), split="val",
                                                    progress=False))
    assert "no shards for split 'val'" in res["tasks"]["s2t"]["error"]


def test_t2s_and_i2s_with_until_end_cap_and_report_lengths(fake_root, judge_dir):
    """sampling.audio.until_end: the model ends the speech itself, within UNTIL_END_SLACK x the reference length
    (a one-codebook vocabulary; the delay pattern of several codebooks cannot end per step)."""
    torch.manual_seed(0)
    vocab = debug_vocabulary(audio_pattern="flatten", audio_levels=1)
    model = Transformer(ModelConfig(vocab_size=vocab.size, n_layer=1, dim=32, n_head=2, ffn_multiple_of=32,
                                    max_seq_len=1024)).eval()
    base = dict(tasks=("t2s", "i2s"), limit=10, seed=0, data_root=str(fake_root), fid=False, progress=False,
                judge_dir=str(judge_dir), batch_size=10)
    fixed = evaluate_model(model, vocab, EvalSettings(**base))["tasks"]
    free = evaluate_model(model, vocab, EvalSettings(**base, sampling={"audio": {"until_end": True}}))["tasks"]
    for t in (fixed, free):
        assert "error" not in t["t2s"] and "error" not in t["i2s"], t
    real = fixed["t2s"]["duration_s"]["real"]
    assert fixed["t2s"]["duration_s"]["length"] == "fixed per group" and free["t2s"]["duration_s"]["length"] == "model ends it"
    assert abs(fixed["t2s"]["duration_s"]["generated"] - real) < 0.05  # the group's mean length, in whole frames
    assert 0 < free["t2s"]["duration_s"]["generated"] <= UNTIL_END_SLACK * real + 0.05
    with pytest.raises(ValueError, match="sampling.image.until_end"):
        Generator(None, None, EvalSettings(sampling={"image": {"until_end": True}}))([], "image")
    with pytest.raises(ValueError, match="sampling.text.until_end"):
        Generator(None, None, EvalSettings(sampling={"text": {"until_end": True}}))([], "text")


def test_parse_sampling():
    assert parse_sampling(["audio.cfg_scale=1", "audio.until_end=true", "image.top_k=50", "audio.temperature=0.7"]) == {
        "audio": {"cfg_scale": 1, "until_end": True, "temperature": 0.7}, "image": {"top_k": 50}}
    assert parse_sampling(["text.cfg_scale=2"]) == {"text": {"cfg_scale": 2}}
    for bad in ("audio.tempo=1", "emoji.top_k=5", "audio.top_k", "top_k=5"):
        with pytest.raises(ValueError, match="WHERE.KEY=VALUE"):
            parse_sampling([bad])
    # a task name sets that task only
    assert parse_sampling(["t2s.best_of=4", "i2t.rerank=joint"]) == {"t2s": {"best_of": 4},
                                                                     "i2t": {"rerank": "joint"}}


def test_task_sampling_wins_over_the_modality(monkeypatch):
    seen = []

    def fake_generate(model, vocab, prompts, request):
        seen.append(request.kwargs())
        return types.SimpleNamespace(outputs=[], stats={})

    monkeypatch.setattr(generator_module, "generate", fake_generate)
    gen = Generator(None, None, EvalSettings(sampling={"audio": {"temperature": 0.7, "top_k": 50},
                                                  "t2s": {"best_of": 4, "temperature": 0.9}}))
    gen.task = "t2s"
    gen([], "audio")
    gen.task = "i2s"
    gen([], "audio")
    assert (seen[0]["best_of"], seen[0]["temperature"], seen[0]["top_k"]) == (4, 0.9, 50)
    assert seen[1]["best_of"] == 1 and seen[1]["temperature"] == 0.7
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['speech'\]"):
        evaluate_model(None, None, EvalSettings(sampling={"speech": {"best_of": 4}}))
    with pytest.raises(ValueError, match="sampling.t2s.tempo"):
        g = Generator(None, None, EvalSettings(sampling={"t2s": {"tempo": 1}}))
        g.task = "t2s"
        g([], "audio")


def test_t2s_best_of_reports_the_reranking(fake_root, judge_dir):
    torch.manual_seed(0)
    vocab = debug_vocabulary(max_height=8, max_width=8, max_frames=4)
    model = Transformer(ModelConfig(vocab_size=vocab.size, n_layer=1, dim=32, n_head=2, ffn_multiple_of=32,
                                    max_seq_len=1024)).eval()
    s = EvalSettings(tasks=("t2s", "i2t"), limit=10, seed=0, data_root=str(fake_root), fid=False, progress=False,
                     judge_dir=str(judge_dir), batch_size=10,
                     sampling={"t2s": {"best_of": 3}, "i2t": {"best_of": 2, "temperature": 1.0}})
    t = evaluate_model(model, vocab, s)["tasks"]
    assert "error" not in t["t2s"] and "error" not in t["i2t"], t
    rr = t["t2s"]["rerank"]
    assert rr["best_of"] == 3 and rr["score"] == "reverse" and rr["prompts"] == t["t2s"]["n"]
    kept = rr["first_draw_kept"] * rr["prompts"]  # a share of the prompts: a whole number of them
    assert abs(kept - round(kept)) < 1e-6 and isinstance(rr["rerank_seconds"], float)  # rounded to 0.01 s
    assert t["i2t"]["rerank"]["prompts"] == t["i2t"]["n"] + t["i2t"].get("emoji", {}).get("n", 0)
