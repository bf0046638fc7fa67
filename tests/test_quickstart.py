"""`omnitok quickstart --preset debug`: the whole pipeline (data, judge, codecs, tokens, LM, eval, report) at
test size, then a rerun that reuses every stage."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from omnitok.quickstart import STAGES, load_config, run_pipeline

pytestmark = pytest.mark.skipif(shutil.which("flite") is None or shutil.which("npm") is None,
                                reason="the quickstart builds speech with flite and digits from npm")


@pytest.fixture()
def env(tmp_path, monkeypatch):
    npm = Path(os.environ.get("OMNITOK_TEST_NPM_DIR", Path.home() / ".cache" / "omnitok-test-npm"))
    npm.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("OMNITOK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OMNITOK_NPM_DIR", str(npm))
    monkeypatch.setenv("OMNITOK_ALLOW_APT", "0")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_config_overrides():
    cfg = load_config("debug", ["eval.limit=3", "lm.max_steps=2", "data.digits.limit=10"])
    assert cfg["eval"]["limit"] == 3 and cfg["data"]["digits"]["limit"] == 10
    assert "max_steps=2" in cfg["lm"]["overrides"]
    with pytest.raises(ValueError, match="no such quickstart preset"):
        load_config("nope")
    with pytest.raises(ValueError, match="key=value"):
        load_config("debug", ["eval.limit"])
    assert load_config("debug")["vocab"]["audio_encode_dtype"] == "float32"
    with pytest.raises(ValueError, match="audio_encode_dtype"):
        load_config("debug", ["vocab.audio_encode_dtype=float16"])
    assert load_config("quickstart")["vocab"]["share_image_ids"] is True
    with pytest.raises(ValueError, match="share_image_ids"):
        load_config("debug", ["vocab.share_image_ids=sometimes"])


def test_quickstart_debug_end_to_end(env):
    out = env / "qs"
    report = run_pipeline("debug", out, progress=False)
    assert report == out / "report.html" and report.is_file()
    page = report.read_text()
    for needle in ("<audio", "<video", "Text → image", "Targets", "Stage times"):
        assert needle in page, needle
    ev = json.loads((out / "eval.json").read_text())
    assert set(ev["tasks"]) == {"t2i", "i2t", "t2s", "s2t", "t2v", "v2t", "i2s", "s2i", "text"}
    for name in ("t2i", "i2t", "t2s", "s2t", "t2v", "v2t", "text"):
        assert "error" not in ev["tasks"][name], (name, ev["tasks"][name])
    t2i = ev["tasks"]["t2i"]
    hits = t2i["accuracy"] * t2i["n"]  # a share of the prompts the judge read as their digit
    assert t2i["n"] > 0 and abs(hits - round(hits)) < 1e-5  # (a float32 mean)
    assert ev["tasks"]["t2s"]["rerank"]["best_of"] == 2 and "the best of 2 candidates" in page
    timings = json.loads((out / "timings.json").read_text())
    assert set(STAGES) <= set(timings)
    # a rerun reuses every stage but the report
    run_pipeline("debug", out, progress=False)
    again = json.loads((out / "timings.json").read_text())
    assert again["lm"] == timings["lm"] and again["codecs"] == timings["codecs"]
    # changed settings redo their stage and the ones after it, nothing before
    run_pipeline("debug", out, overrides=["eval.limit=1"], progress=False)
    third = json.loads((out / "timings.json").read_text())
    assert third["lm"] == timings["lm"] and third["codecs"] == timings["codecs"]
    assert third["eval"]["fingerprint"] != timings["eval"]["fingerprint"]
    assert json.loads((out / "eval.json").read_text())["tasks"]["t2i"]["n"] <= 10
    run_pipeline("debug", out, overrides=["eval.limit=1", "lm.max_steps=2"], progress=False)
    fourth = json.loads((out / "timings.json").read_text())
    assert fourth["codecs"] == timings["codecs"] and fourth["tokenize"] == timings["tokenize"]
    assert fourth["lm"]["fingerprint"] != timings["lm"]["fingerprint"]
    assert fourth["eval"]["finished"] >= fourth["lm"]["finished"]
    steps = [json.loads(line).get("step") for line in (out / "lm" / "metrics.jsonl").read_text().splitlines()]
    assert max(s for s in steps if s is not None) == 2  # retrained from scratch with the new max_steps

    # the model records what it was trained and judged with; generate needs no flags beyond the prompt
    from PIL import Image

    from omnitok.cli import main
    from omnitok.data.tokenize import codec_input_size

    gc = json.loads((out / "lm" / "final" / "generation_config.json").read_text())
    ev = json.loads((out / "eval.json").read_text())
    assert gc["grids"]["image"] == ev["tasks"]["t2i"]["grid"]  # the grid it was trained on is the one judged
    assert gc["grids"]["video"] == ev["tasks"]["t2v"]["grid"]
    assert gc["grids"]["audio"][0] > 0  # the longest training clip, in frames: the cap of generated speech
    assert "sampling_from" in gc  # the evaluation recorded what it sampled with
    side = codec_input_size(out / "vocab", {}, "image")
    assert main(["generate", "the digit seven", "--to", "image", "--ckpt", str(out / "lm" / "final"),
                 "--out", str(env / "seven.png"), "--no-stream"]) == 0
    assert Image.open(env / "seven.png").size == (side, side)
    assert main(["generate", "three one four", "--to", "audio", "--ckpt", str(out / "lm" / "final"),
                 "--out", str(env / "t.wav"), "--no-stream"]) == 0
    assert (env / "t.wav").stat().st_size > 44
    assert main(["info", str(out / "lm")]) == 0
    # continue the quickstart model: the tokens root is enough for --data (every task, the recorded ratios)
    assert main(["train", "lm", "--preset", "quickstart-debug", "--data", str(out / "tokens"), "--out",
                 str(out / "lm"), "--resume", "--no-progress", "max_steps=4"]) == 0
    steps = [json.loads(line).get("step") for line in (out / "lm" / "metrics.jsonl").read_text().splitlines()]
    assert max(s for s in steps if s is not None) == 4


def test_stage_fingerprints_follow_their_sections():
    from omnitok.quickstart import fingerprint

    base = load_config("debug")
    other = load_config("debug", ["eval.limit=7"])
    assert fingerprint(base, "lm") == fingerprint(other, "lm")
    assert fingerprint(base, "eval") != fingerprint(other, "eval")
    more = load_config("debug", ["lm.max_steps=9"])
    assert fingerprint(base, "tokenize") == fingerprint(more, "tokenize")
    assert fingerprint(base, "lm") != fingerprint(more, "lm") != fingerprint(base, "eval")
    reweighted = load_config("debug")
    reweighted["tokenize"][0]["ratio"] = 9.0  # a mixture ratio is read by the LM, not by the tokeniser
    assert fingerprint(base, "tokenize") == fingerprint(reweighted, "tokenize")
    assert fingerprint(base, "lm") != fingerprint(reweighted, "lm")


def test_stages_skip_rerun_and_clear(tmp_path):
    from omnitok.quickstart import Stages

    cfg = load_config("debug")
    other = load_config("debug", ["lm.max_steps=9"])
    out = tmp_path / "qs"
    out.mkdir()
    marker = out / "lm-output"
    calls: list[str] = []

    def stage(st: Stages, fail: bool = False) -> None:
        def fn() -> None:
            calls.append("run")
            marker.write_text("partial" if fail else "done")
            if fail:
                raise RuntimeError("killed")

        def clear() -> None:
            calls.append("clear")
            marker.unlink(missing_ok=True)

        st.run("lm", "train", fn, lambda: marker.is_file() and marker.read_text() == "done", clear)

    stage(Stages(out, set(), cfg))
    stage(Stages(out, set(), cfg))  # same settings: skipped
    assert calls == ["run"]
    stage(Stages(out, {"lm"}, cfg))  # --redo clears and runs
    assert calls == ["run", "clear", "run"]
    calls.clear()
    with pytest.raises(RuntimeError):
        stage(Stages(out, set(), other), fail=True)  # settings changed: cleared, then killed half way
    assert calls == ["clear", "run"]
    calls.clear()
    stage(Stages(out, set(), other))  # the unfinished run had these settings: it continues (no clear)
    assert calls == ["run"]
    calls.clear()
    marker.write_text("partial")
    json_path = out / "timings.json"
    rec = json.loads(json_path.read_text())
    rec["lm"]["started"] = "something-else"
    json_path.write_text(json.dumps(rec))
    stage(Stages(out, set(), other))  # an unfinished run with other settings starts afresh
    assert calls == ["clear", "run"]


def test_lm_minutes_is_what_the_earlier_stages_left():
    from omnitok.quickstart import lm_minutes

    cfg = {"budget_minutes": 30, "lm": {"preset": "quickstart", "overrides": [], "reserve_minutes": 4,
                                        "min_minutes": 5}}
    timings = {"data": {"wall_s": 120.0}, "judge": {"wall_s": 30.0}, "codecs": {"wall_s": 450.0},
               "tokenize": {"wall_s": 60.0}, "lm": {"started": "x"}}
    assert lm_minutes(cfg, timings) == 15.0  # 30 - 11 - 4
    assert lm_minutes(cfg, {"codecs": {"wall_s": 1800.0}}) == 5.0  # never below min_minutes
    assert lm_minutes({**cfg, "budget_minutes": 0}, timings) is None
    assert lm_minutes({**cfg, "lm": {**cfg["lm"], "overrides": ["max_minutes=3"]}}, timings) is None


def test_quickstart_debug_with_masked_decoding(env):
    """``masked: 0.5``: the vocabulary gets <|mask|>, half the caption -> image documents are masked in the LM's
    mixture, and the evaluation's text -> image runs masked parallel decoding (eval.sampling.t2i.method)."""
    from omnitok.cli import main
    from omnitok.vocab import Vocabulary

    out = env / "qs"
    run_pipeline("debug", out, progress=False, overrides=[
        "masked=0.5", "eval.tasks=[t2i, i2t]", "eval.sampling.t2i.method=masked", "eval.sampling.t2i.steps=2"])
    assert Vocabulary.load(out / "vocab").mask_id is not None
    cfg = json.loads((out / "lm" / "train_config.json").read_text())
    assert cfg["train"]["masked"] == {"digits-caption2image": 0.5}
    rows = [json.loads(line) for line in (out / "lm" / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/task_masked_image" in r for r in rows)  # masked documents reached the model
    ev = json.loads((out / "eval.json").read_text())
    for name in ("t2i", "i2t"):
        assert "error" not in ev["tasks"][name], (name, ev["tasks"][name])
    assert ev["tasks"]["t2i"]["n"] > 0
    assert main(["generate", "the digit seven", "--to", "image", "--ckpt", str(out / "lm" / "final"), "--method",
                 "masked", "--steps", "2", "--out", str(env / "seven.png"), "--no-stream"]) == 0
    assert (env / "seven.png").stat().st_size > 0
    with pytest.raises(ValueError, match="masked"):
        load_config("debug", ["masked=1.5"])


def test_codec_stage_derives_the_sprite_video_codec_from_the_trained_image_codec(tmp_path):
    """The default quickstart's video codec (``image_from: image``) is built around the image codec the stage
    trained just before, with its weights and the preset recorded; nothing is trained for it."""
    import torch

    from omnitok.codecs import ImageCodec, SpriteMotionCodec, load_codec
    from omnitok.quickstart import _stage_codecs

    out = tmp_path / "qs"
    image = ImageCodec(in_channels=3, channels=8, channel_mult=[1, 2, 2, 2], num_res_blocks=1, z_channels=8,
                       quantizer="fsq", quantizer_kwargs={"levels": [8, 5, 5, 5]})
    image.save_pretrained(out / "codecs" / "image" / "codec")
    for done in ("text", "audio/codec"):  # trained before: the stage skips them
        (out / "codecs" / done).mkdir(parents=True)
        (out / "codecs" / done / "config.json").write_text("{}")
    cfg = load_config("quickstart")
    _stage_codecs(cfg, out, tmp_path / "data", progress=False)
    video = load_codec(out / "codecs" / "video" / "codec")
    assert isinstance(video, SpriteMotionCodec) and (video.frame_size, video.window) == (64, 28)
    assert all(torch.equal(a, b) for a, b in zip(video.image.state_dict().values(), image.state_dict().values()))
    saved = json.loads((out / "codecs" / "video" / "codec" / "config.json").read_text())
    assert saved["preset"]["name"] == "quickstart-video-sprite" and saved["preset"]["data"]["frames"] == 8
    assert not (out / "codecs" / "video" / "checkpoints").exists()


def test_speech_preset_plans_held_out_voices_and_a_narrow_band():
    """The many-voice preset's speech options are ones the speech source takes: its held-out voices never reach
    training, and augmented clips get the narrow-band channel."""
    from omnitok.data.sources import speech
    from omnitok.data.splits import split_of

    cfg = load_config("quickstart-speech")
    opts = {k: str(v) for k, v in cfg["data"]["speech"]["options"].items()}
    held = tuple(opts["heldout_voices"].split(","))
    split = lambda key: split_of(key, cfg["data"]["speech"]["splits"])  # noqa: E731
    utts = speech.plan(seed=0, digits=300, single_digits=100, emoji=0, sentences_count=0,
                       engines=tuple(opts["engines"].split(",")), voices=speech.FLITE_ALL_VOICES, heldout=held,
                       split_of=split, heldout_share=float(opts["heldout_share"]), augment=float(opts["augment"]),
                       augment_band=float(opts["augment_band"]), with_prompt=True)
    assert not any(speech.is_heldout(u.voice, held) for u in utts if split(u.key) == "train")
    assert any(speech.is_heldout(u.voice, held) for u in utts if split(u.key) == "test")
    assert any("band_hz" in u.meta.get("augment", {}) for u in utts)
