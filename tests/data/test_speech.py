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
