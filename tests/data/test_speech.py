"""The speech source: the plan, synthesis with flite and espeak-ng, a built slice, resumption."""

from __future__ import annotations

import io
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("soundfile")
pytest.importorskip("emoji")

from omnitok.data.build import BuildContext, build_dataset, shard_paths  # noqa: E402
from omnitok.data.shards import example_from_files, iter_shard  # noqa: E402
from omnitok.data.sources import speech  # noqa: E402
from omnitok.io.audio import read_audio  # noqa: E402

needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite missing: apt-get install -y flite")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng missing: apt-get install -y espeak-ng")

SENTENCES = [("The quick brown fox jumps over it.", "fortunes:test#0"),
             ("In the beginning God created the heaven.", "bible-kjv:Ge1:1")]
SMALL = {"digits": "6", "single_digits": "3", "emoji": "2", "sentences": "2"}


def test_digits_to_words() -> None:
    assert speech.digits_to_words("371") == "three seven one"
    assert speech.digits_to_words("0") == "zero"
    with pytest.raises(ValueError, match="digits"):
        speech.digits_to_words("3a")


def test_plan_is_deterministic_and_interleaved() -> None:
    kw = {"sentence_list": SENTENCES * 10, "emoji_list": ["grinning face", "red apple", "rocket"]}
    a = speech.plan(seed=1, digits=50, single_digits=10, emoji=3, sentences_count=5, **kw)
    b = speech.plan(seed=1, digits=80, single_digits=10, emoji=3, sentences_count=5, **kw)
    assert len(a) == 68 and len({u.key for u in a}) == 68
    # item i of a kind does not depend on how many of each kind are built
    assert {u.key: u for u in a if u.key.startswith("speech-digits")} == \
        {u.key: u for u in b if u.key.startswith("speech-digits-0000") and int(u.key[-6:]) < 50}
    assert speech.plan(seed=2, digits=50, single_digits=10, emoji=3, sentences_count=5, **kw) != a
    # a short prefix already holds every kind and both engines
    assert {u.kind for u in a[:20]} == {"digits", "emoji", "sentence"}
    assert {u.engine for u in a} == {"flite", "espeak-ng"}
    for u in a:
        if u.kind == "digits":
            assert speech.digits_to_words(u.meta["digits"]) == u.text
            assert 1 <= len(u.meta["digits"]) <= 5
    singles = [u for u in a if u.key.startswith("speech-digit-")]
    assert Counter(u.meta["digits"] for u in singles) == Counter(str(d) for d in range(10))
    with pytest.raises(ValueError, match="engines"):
        speech.plan(engines=("festival",))


def test_plan_single_voice() -> None:
    kw = {"sentence_list": SENTENCES * 10, "emoji_list": ["red apple"]}
    one = speech.plan(seed=0, digits=40, single_digits=10, emoji=0, sentences_count=0, engines=("flite",),
                      voices=("awb",), **kw)
    assert {u.voice for u in one} == {"awb"} and len(one) == 50
    both = speech.plan(seed=0, digits=40, single_digits=10, emoji=0, sentences_count=0, engines=("flite",),
                       voices=("awb", "slt"), **kw)
    assert {u.voice for u in both} == {"awb", "slt"}
    assert [u.text for u in both] == [u.text for u in one]  # the words do not depend on the voices
    with pytest.raises(ValueError, match="voices"):
        speech.plan(engines=("flite",), voices=("nobody",))


def test_text_sources() -> None:
    names = speech.emoji_names()
    assert len(names) > 1500 and "grinning face" in names and all(n == n.lower() for n in names)
    assert not any("skin tone" in n for n in names)
    if not speech.FORTUNE_DIR.is_dir() or shutil.which("bible") is None:
        pytest.skip("fortunes / bible-kjv not installed")
    sents = speech.sentences()
    assert len(sents) > 2000
    assert {s.split(":")[0] for _, s in sents[:10]} == {"fortunes", "bible-kjv"}
    assert all(4 <= len(t.split()) <= 12 and not any(c.isdigit() for c in t) for t, _ in sents)


@needs_flite
@needs_espeak
@pytest.mark.parametrize("engine", ["flite", "espeak-ng"])
def test_synthesize_16k_flac_round_trip(engine: str, tmp_path: Path) -> None:
    utts = [u for u in speech.plan(seed=0, digits=20, single_digits=0, emoji=0, sentences_count=0)
            if u.engine == engine][:2]
    for u in utts:
        audio = speech.synthesize(u, tmp_dir=tmp_path)
        assert audio.dtype == np.float32 and audio.ndim == 1
        seconds = audio.shape[0] / 16000
        assert 0.25 * len(u.meta["digits"]) < seconds < 1.5 * len(u.meta["digits"]) + 1.0
        assert np.sqrt(np.mean(audio**2)) > 0.01  # not silence
        ex = speech.to_example(u, audio)
        back, sr = read_audio(ex.files["flac"], name=u.key)
        assert sr == 16000 and back.shape == audio.shape
        assert np.abs(back - np.clip(audio, -1, 1)).max() <= 1 / 32768 + 1e-6
        assert ex.meta["duration"] == pytest.approx(seconds, abs=1e-3)
        assert ex.meta["engine"] == engine and ex.meta["transcript"] == u.text
    assert list(tmp_path.iterdir()) == []  # temporary WAVs are removed


@needs_flite
@needs_espeak
def test_build_slice_and_resume(tmp_path: Path, npm_dir: Path) -> None:
    import soundfile as sf

    card = build_dataset("speech", root=tmp_path, limit=11, options=SMALL, progress=False, npm_root=npm_dir)
    assert card["total"] == 11 and card["modality"] == "audio"
    assert card["versions"].get("deb:flite") and card["versions"].get("deb:espeak-ng")
    examples = [example_from_files(key, files) for p in shard_paths(tmp_path / "datasets" / "speech")
                for key, files in iter_shard(p)]
    assert len(examples) == 11
    kinds = Counter(ex.meta["kind"] for ex in examples)
    assert set(kinds) == {"digits", "emoji", "sentence"}
    for ex in examples:
        info = sf.info(io.BytesIO(ex.files["flac"]))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "FLAC")
        assert ex.meta["sample_rate"] == 16000 and ex.meta["duration"] > 0.2
        for field in ("transcript", "voice", "engine", "speed", "pitch", "source", "licence", "text_source"):
            assert field in ex.meta
    # resume: keys already in finished shards are yielded empty and never synthesised
    done = frozenset(ex.key for ex in examples)
    ctx = BuildContext(name="speech", root=tmp_path, limit=11, options=SMALL, done=done, npm_root=npm_dir)
    original = speech.synthesize
    try:
        speech.synthesize = lambda *a, **k: (_ for _ in ()).throw(AssertionError("synthesised a done key"))
        again = list(speech.iter_examples(ctx))
    finally:
        speech.synthesize = original
    assert [ex.key for ex in again] == [u.key for u in speech.plan(
        digits=6, single_digits=3, emoji=2, sentences_count=2, sentence_list=SENTENCES)][:11]
    assert {ex.key for ex in again} == done and all(ex.files == {} for ex in again)


def test_is_heldout_names() -> None:
    held = ("slt", "en-gb-scotland", "+f4")
    assert speech.is_heldout("slt", held) and not speech.is_heldout("awb", held)
    assert speech.is_heldout("en-gb-scotland+m1", held) and not speech.is_heldout("en-gb+m1", held)
    assert speech.is_heldout("en-us+f4", held) and not speech.is_heldout("en-us+f3", held)
    assert not speech.is_heldout("f4", held)  # a variant name alone is not a flite voice


def test_plan_heldout_voices_never_train() -> None:
    from omnitok.data.splits import split_of

    held = ("slt", "en-gb-scotland", "+f4")
    split = lambda key: split_of(key, {"train": 0.6, "val": 0.2, "test": 0.2})  # noqa: E731
    utts = speech.plan(seed=0, digits=600, single_digits=100, emoji=0, sentences_count=0, heldout=held,
                       split_of=split, heldout_share=0.5)
    by_split: dict[str, list] = {}
    for u in utts:
        by_split.setdefault(split(u.key), []).append(u)
        assert u.meta["heldout_voice"] == speech.is_heldout(u.voice, held)
    assert not any(speech.is_heldout(u.voice, held) for u in by_split["train"])
    for name in ("val", "test"):
        share = np.mean([speech.is_heldout(u.voice, held) for u in by_split[name]])
        assert share == pytest.approx(0.5, abs=0.12)
    heard = {u.voice for u in by_split["test"] if speech.is_heldout(u.voice, held)}
    assert "slt" in heard and any(v.startswith("en-gb-scotland+") for v in heard)
    # the words of a key do not depend on the held-out voices
    plain = speech.plan(seed=0, digits=600, single_digits=100, emoji=0, sentences_count=0)
    assert [u.text for u in plain] == [u.text for u in utts]
    # every voice held out: a training key has nothing to draw from
    with pytest.raises(ValueError, match="no training voice"):
        speech.plan(seed=0, digits=50, single_digits=0, emoji=0, sentences_count=0, engines=("flite",),
                    voices=("slt",), heldout=("slt",), split_of=split)


def test_speaker_card_counts() -> None:
    from omnitok.data.splits import split_of

    held = ("rms",)
    split = lambda key: split_of(key, {"train": 0.5, "test": 0.5})  # noqa: E731
    utts = speech.plan(seed=3, digits=200, single_digits=0, emoji=0, sentences_count=0, engines=("flite",),
                       voices=("awb", "rms", "slt"), heldout=held, split_of=split, augment=0.25)
    card = speech.speaker_card(utts, split, held)
    assert card["train_voices"] == ["awb", "slt"] and card["unseen_voices"] == ["rms"]
    assert sum(sum(row.values()) for row in card["clips_per_voice"].values()) == 200
    assert card["clips_per_voice"]["test"]["rms"] == sum(u.voice == "rms" for u in utts)
    assert card["augmented"] == sum("augment" in u.meta for u in utts)
    assert 25 <= card["augmented"] <= 75  # about a quarter of 200


def test_augment_band_adds_a_channel_and_keeps_the_rest() -> None:
    kw = dict(seed=3, digits=200, single_digits=0, emoji=0, sentences_count=0, engines=("flite",),
              voices=("awb",), augment=0.5)
    plain, banded = speech.plan(**kw), speech.plan(**kw, augment_band=1.0)
    assert [u.key for u in plain] == [u.key for u in banded]
    for a, b in zip(plain, banded):
        assert ("augment" in a.meta) == ("augment" in b.meta)
        if "augment" in b.meta:
            assert {k: v for k, v in b.meta["augment"].items() if k != "band_hz"} == a.meta["augment"]
            assert "band_hz" not in a.meta["augment"]
    assert sum("band_hz" in u.meta.get("augment", {}) for u in banded) == sum("augment" in u.meta for u in banded)
    with pytest.raises(ValueError, match="augment_band"):
        speech.plan(**kw, augment_band=1.5)


def test_augment_pitch_range_changes_only_the_size_of_the_shift() -> None:
    kw = dict(seed=3, digits=300, single_digits=0, emoji=0, sentences_count=0, engines=("flite",),
              voices=("awb",), augment=1.0)
    plain, wide = speech.plan(**kw), speech.plan(**kw, augment_pitch=(-3.0, 5.0))
    shifts = []
    for a, b in zip(plain, wide):
        pa, pb = a.meta["augment"], b.meta["augment"]
        assert {k: v for k, v in pa.items() if k != "pitch"} == {k: v for k, v in pb.items() if k != "pitch"}
        assert -3.0 <= pa.get("pitch", 0.0) <= 3.0
        shifts.append(pb.get("pitch", 0.0))
    assert max(shifts) > 3.5 and min(shifts) >= -3.0
    assert speech._pitch_range({"augment_pitch": "-3,5"}) == (-3.0, 5.0)
    assert speech._pitch_range({"augment_pitch": [-2, 4]}) == (-2.0, 4.0)
    with pytest.raises(ValueError, match="augment_pitch"):
        speech._pitch_range({"augment_pitch": "5"})
    with pytest.raises(ValueError, match="augment_pitch"):
        speech.plan(**kw, augment_pitch=(4.0, -1.0))


@needs_flite
@needs_espeak
def test_build_heldout_and_augmented(tmp_path: Path, npm_dir: Path) -> None:
    options = {"digits": "24", "single_digits": "0", "emoji": "0", "sentences": "0", "voices": "all",
               "heldout_voices": "slt,kal,+f4", "augment": "0.5", "heldout_share": "0.6"}
    card = build_dataset("speech", root=tmp_path, options=options, progress=False, npm_root=npm_dir,
                         splits="train=0.5,val=0.25,test=0.25")
    speakers = card["speakers"]
    assert speakers["heldout_voices"] == ["slt", "kal", "+f4"]
    assert not set(speakers["train_voices"]) & set(speakers["unseen_voices"])
    examples = {key: example_from_files(key, files) for p in shard_paths(tmp_path / "datasets" / "speech")
                for key, files in iter_shard(p)}
    assert len(examples) == 24
    for p in shard_paths(tmp_path / "datasets" / "speech"):
        for key, _ in iter_shard(p):
            if p.name.startswith("train"):
                assert not examples[key].meta.get("heldout_voice")
    augmented = [ex for ex in examples.values() if "augment" in ex.meta]
    assert 0 < len(augmented) < 24
    # an augmented clip is the clean synthesis put through its recorded effects
    ex = augmented[0]
    u = next(u for u in speech.plan(digits=24, single_digits=0, emoji=0, sentences_count=0)
             if u.key == ex.key)
    clean = speech.synthesize(speech.Utterance(u.key, u.kind, u.text, ex.meta["engine"], ex.meta["voice"],
                                               ex.meta["speed"], ex.meta["pitch"], tuple(ex.meta["engine_args"])))
    back, _ = read_audio(ex.files["flac"], name=ex.key)
    assert not np.allclose(back[: len(clean)], clean[: len(back)], atol=1e-3)
    redo = speech.audio_augment.apply(clean, ex.meta["augment"], 16000)
    assert np.abs(back - np.clip(redo, -1, 1)).max() <= 2 / 32768


@needs_flite
def test_voice_prompt_names_the_voice_in_text_to_speech(tmp_path: Path) -> None:
    from omnitok.data.tokenize import build_document

    utts = speech.plan(seed=0, digits=4, single_digits=0, emoji=0, sentences_count=0, engines=("flite",),
                       voices=("awb", "slt"), with_prompt=True)
    for u in utts:
        assert u.meta["prompt"] == f"[voice: {u.voice}] {u.text}" == speech.voice_prompt(u.voice, u.text)
    ex = speech.to_example(utts[0], speech.synthesize(utts[0], tmp_dir=tmp_path))
    t2s, _ = build_document("transcript2speech", ex, sample_rate=16000)
    s2t, _ = build_document("speech2transcript", ex, sample_rate=16000)
    assert t2s.segments[0].text == utts[0].meta["prompt"]
    assert s2t.segments[1].text == utts[0].text  # the transcript a model learns to write names no voice
    assert "prompt" not in speech.plan(seed=0, digits=1, single_digits=0, emoji=0, sentences_count=0)[0].meta


def test_speaker_summary_line() -> None:
    from omnitok.data.cards import format_info, speaker_summary

    card = {"name": "speech", "counts": {"train": 3, "test": 3},
            "speakers": {"heldout_voices": ["slt", "+f4"], "train_voices": ["awb", "en-us+m1"],
                         "unseen_voices": ["en-gb+f4", "slt"], "augmented": 2,
                         "clips_per_voice": {"train": {"awb": 2, "en-us+m1": 1},
                                             "test": {"awb": 1, "slt": 1, "en-gb+f4": 1}}}}
    line = speaker_summary(card)
    assert line == ("speech: 2 voices in train, 4 in all; held out of train (slt, +f4): 2 voices, 2 of 3 "
                    "val/test clips; 2 clips with microphone effects")
    assert line in format_info([card]) and speaker_summary({"name": "digits"}) is None
