"""speech: English utterances synthesised on this machine with Debian ``flite`` and ``espeak-ng``.

Four kinds of utterance, interleaved in proportion so a ``--limit`` slice holds all of them:

- ``digits``   spoken digit strings, 1-5 digits from a seeded RNG: "three seven one" (meta ``digits: "371"``)
- ``digit``    single spoken digits, balanced over 0-9: "seven" (the digits domain is complete in speech)
- ``emoji``    emoji names from PyPI ``emoji`` (CLDR short names): "grinning face"
- ``sentence`` 4-12 word fortunes (Debian ``fortunes``) and verses (``bible-kjv``)

Each utterance gets a voice from a seeded RNG keyed by its example key: flite voices kal16 / awb / rms /
slt with a duration stretch of 0.8-1.25, or an espeak-ng accent (en-us, en-gb, ...) and variant (m1-m7,
f1-f5) at 120-200 words per minute and pitch 25-75. Audio is 16 kHz mono FLAC (PCM_16); espeak-ng's
22,050 Hz output is resampled with :func:`omnitok.io.audio.resample` (Kaiser-windowed sinc).

Synthesis runs in a small pool of subprocesses (``workers``, default 3), in order, with a bounded
look-ahead; keys already in finished shards are not synthesised again on resume.

Options (``omnitok data build speech -o name=value``): ``digits`` (6000), ``single_digits`` (1000),
``emoji`` (``all`` = every name, 1,878), ``sentences`` (2000), ``engines`` (``flite,espeak-ng``),
``workers`` (3), ``sample_rate`` (16000), ``voices`` (the flite voices to draw from, default
``kal16,awb,rms,slt``; ``all`` adds the 8 kHz diphone voice ``kal``), ``espeak_accents`` and
``espeak_variants`` (the espeak-ng voices are accent+variant, default every pair of the lists below).

Many speakers, some never heard in training (``docs/data.md``, "Speech"):

- ``heldout_voices`` (none): voices used only for val/test keys, never for a training key: a whole voice
  (``slt``, ``en-us+m3``), an espeak-ng accent with all its variants (``en-gb-scotland``) or a variant in every
  accent (``+f4``). The split of a key is still its hash (``data/splits.py``); its voice is drawn from the
  training voices or, for a val/test key with probability ``heldout_share`` (0.5), from the held-out ones.
  The card's ``speakers`` field lists both sets and the clips per split per voice.
- ``voice_prompt`` (0): 1 stores ``meta["prompt"]``, the transcript with its voice in front
  (``"[voice: slt] three seven one"``, :func:`voice_prompt`): the text -> speech task is prompted with it, so a
  model trained on it speaks in the voice a prompt names (data/tokenize.py, eval/tasks/t2s.py).
- ``augment`` (0): the probability that a clip goes through :mod:`omnitok.data.audio_augment` (speed and
  pitch perturbation, a room, background noise, loudness), with parameters drawn per key and kept in
  ``meta["augment"]``.
- ``augment_band`` (0): the probability that an augmented clip also passes a narrow-band channel
  (``audio_augment.band_limit``: recorded at 8-12 kHz, as a telephone or a cheap recorder; flite's 8 kHz ``kal``
  is such a voice). The other effects of a key are the same with and without it.
- ``augment_pitch`` ("-3,3"): the range of the pitch shift in semitones, ``LO,HI``. The shift scales the
  formants with the pitch (a shorter or longer vocal tract, as VTLP), so a range reaching +4 or +5 turns male
  voices towards female ones. Only the size of a key's shift changes with the range, not which effects it gets.

The default build is 10,878 utterances (7,000 digits, 1,878 emoji
names, 2,000 sentences; 5.1 hours of audio, 323 MiB): 33 ms per utterance with 3 workers on 2 cores
(about 6 minutes when idle); 24 minutes on a shared 2-core machine at load average 15 (6.8 CPU-minutes).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omnitok.data import audio_augment
from omnitok.data.sources.digits import DIGIT_WORDS
from omnitok.data.splits import key_fraction
from omnitok.data.splits import split_of as split_by_key
from omnitok.data.types import Example
from omnitok.io.audio import read_audio, write_flac

__all__ = [
    "CARD",
    "DIGIT_WORDS",
    "NAME",
    "Utterance",
    "digits_to_words",
    "emoji_names",
    "iter_examples",
    "plan",
    "sentences",
    "synthesize",
]

NAME = "speech"
MODALITY = "audio"
SAMPLE_RATE = 16000
SHARD_SIZE = 1000


FLITE_VOICES = ("kal16", "awb", "rms", "slt")  # the default draw
FLITE_ALL_VOICES = (*FLITE_VOICES, "kal")  # every general voice Debian flite ships (kal: 8 kHz diphones;
# awb_time, a limited-domain voice that only says the time, is left out)
MAX_VOICE_DRAWS = 1000
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "f5")
ESPEAK_DEFAULT_WPM = 175

DEFAULT_COUNTS = {"digits": 6000, "single_digits": 1000, "emoji": -1, "sentences": 2000}  # -1 = all names

FORTUNE_DIR = Path("/usr/share/games/fortunes")
FORTUNE_SKIP = {"art", "ascii-art", "translate-me", "ethnic", "drugs"}  # pictures, non-English, touchy topics
_CLEAN_TEXT = re.compile(r"^[A-Za-z][A-Za-z ,.'?!;:-]*$")

CARD: dict[str, Any] = {
    "version": "1",
    "modality": "audio",
    "description": "English speech synthesised locally with flite and espeak-ng: spoken digit strings, single "
    "digits, emoji names and short fortunes / KJV verses; 16 kHz mono FLAC with transcripts.",
    "source": "Debian flite (voices kal16, awb, rms, slt) and espeak-ng; text from PyPI emoji (CLDR names), "
    "Debian fortunes and bible-kjv",
    "licence": "synthesised audio: flite BSD-style licence (CMU), espeak-ng GPL-3.0-or-later program (its "
    "output is not covered); text: KJV public domain, fortunes public quotations, emoji names Unicode licence",
    "sample_rate": SAMPLE_RATE,
    "fields": {
        "flac": "16 kHz mono, PCM_16",
        "json": "transcript, kind (digits/emoji/sentence), digits, voice, engine, speed (1.0 = engine default "
        "rate), pitch (espeak-ng 0-99; null = flite voice default), duration (s), sample_rate, text_source, "
        "source, licence; with heldout_voices: heldout_voice (bool); with voice_prompt: prompt (the text -> "
        "speech prompt naming the voice); with augment: augment (the effects "
        "applied, data/audio_augment.py)",
    },
    "default_counts": {"digits": 6000, "single_digits": 1000, "emoji": "all (1,878)", "sentences": 2000},
    "build_time": "about 6 minutes for the default counts on 2 idle CPU cores (6.8 CPU-minutes in all)",
}

LICENCES = {
    "flite": "synthesised with CMU flite (BSD-style licence)",
    "espeak-ng": "synthesised with espeak-ng (GPL-3.0-or-later program; the audio output is not covered)",
}
TEXT_LICENCES = {
    "digits": "generated digit strings",
    "emoji": "Unicode CLDR emoji names (Unicode licence)",
    "fortunes": "Debian fortunes (public quotations)",
    "bible-kjv": "King James Version (public domain)",
}


@dataclass(frozen=True)
class Utterance:
    """One planned utterance: what to say and how; ``meta`` holds kind-specific fields."""

    key: str
    kind: str  # digits | emoji | sentence
    text: str
    engine: str  # flite | espeak-ng
    voice: str
    speed: float  # relative rate, 1.0 = engine default
    pitch: int | None  # espeak-ng -p (0-99); None for flite (voice default)
    args: tuple[str, ...]  # engine-specific arguments (without the text and output path)
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def digits_to_words(digits: str) -> str:
    """"371" -> "three seven one"."""
    if not digits or not digits.isdigit():
        raise ValueError(f"digits must be a non-empty string of 0-9, got {digits!r}")
    return " ".join(DIGIT_WORDS[int(c)] for c in digits)


def _clean(text: str) -> str | None:
    text = " ".join(text.replace("\t", " ").split())
    text = text.replace("`", "'").replace('"', "")
    if not _CLEAN_TEXT.match(text) or "--" in text:
        return None
    n = len(text.split())
    return text if 4 <= n <= 12 else None


def emoji_names() -> list[str]:
    """Spoken emoji names from PyPI ``emoji``: fully qualified, no skin tones, letters only, sorted, unique.

    ':grinning_face:' -> 'grinning face'; names with digits or non-ASCII letters are left out.
    """
    try:
        import emoji
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError("the speech source needs PyPI emoji: pip install 'omnitok[data]'") from e
    names = set()
    fully = emoji.STATUS["fully_qualified"]
    for data in emoji.EMOJI_DATA.values():
        if data.get("status") != fully:
            continue
        name = data["en"].strip(":").replace("_", " ")
        if "skin tone" in name:
            continue
        name = " ".join(name.replace("(", " ").replace(")", " ").replace("\u2019", "'").split())
        if re.fullmatch(r"[A-Za-z][A-Za-z' -]*", name):
            names.add(name.lower())
    return sorted(names)


def _fortunes(folder: Path) -> list[tuple[str, str]]:
    out = []
    for path in sorted(folder.iterdir()):
        if path.suffix or not path.is_file() or path.name in FORTUNE_SKIP:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for i, entry in enumerate(text.split("\n%\n")):
            clean = _clean(entry.replace("\n", " "))
            if clean:
                out.append((clean, f"fortunes:{path.name}#{i}"))
    return out


def _bible(bible: str) -> list[tuple[str, str]]:
    proc = subprocess.run([bible, "-f", "gen1:1-rev22:21"], capture_output=True, text=True, check=True)
    out = []
    for line in proc.stdout.splitlines():
        ref, _, verse = line.partition(" ")
        clean = _clean(verse)
        if clean:
            out.append((clean, f"bible-kjv:{ref}"))
    return out


def sentences(
    fortune_dir: Path | None = FORTUNE_DIR, bible: str | None = "bible", seed: int = 0
) -> list[tuple[str, str]]:
    """(sentence, text_source) pairs of 4-12 words, fortunes and verses alternating, in a seeded order."""
    fort = _fortunes(fortune_dir) if fortune_dir is not None and fortune_dir.is_dir() else []
    verses = _bible(bible) if bible is not None else []
    rng = np.random.default_rng([seed, 7])
    fort = [fort[i] for i in rng.permutation(len(fort))]
    verses = [verses[i] for i in rng.permutation(len(verses))]
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for pair in zip(fort, verses):
        for text, src in pair:
            if text.lower() not in seen:
                seen.add(text.lower())
                out.append((text, src))
    rest = fort[len(verses):] if len(fort) > len(verses) else verses[len(fort):]
    for text, src in rest:
        if text.lower() not in seen:
            seen.add(text.lower())
            out.append((text, src))
    return out


def _voice(rng: np.random.Generator, engines: tuple[str, ...], voices: tuple[str, ...] = FLITE_VOICES,
           accents: tuple[str, ...] = ESPEAK_ACCENTS,
           variants: tuple[str, ...] = ESPEAK_VARIANTS) -> tuple[str, str, float, int | None, tuple]:
    engine = engines[int(rng.integers(len(engines)))]
    if engine == "flite":
        voice = voices[int(rng.integers(len(voices)))]
        stretch = round(float(rng.uniform(0.8, 1.25)), 2)
        return engine, voice, round(1.0 / stretch, 3), None, ("-voice", voice, "--setf", f"duration_stretch={stretch}")
    accent = accents[int(rng.integers(len(accents)))]
    variant = variants[int(rng.integers(len(variants)))]
    voice = f"{accent}+{variant}"
    wpm = int(rng.integers(120, 201))
    pitch = int(rng.integers(25, 76))
    return engine, voice, round(wpm / ESPEAK_DEFAULT_WPM, 3), pitch, ("-v", voice, "-s", str(wpm), "-p", str(pitch))


def voice_prompt(voice: str, text: str) -> str:
    """The text -> speech prompt that names its voice: ``"[voice: slt] three seven one"``."""
    return f"[voice: {voice}] {text}"


def is_heldout(voice: str, heldout: tuple[str, ...]) -> bool:
    """Whether ``voice`` ("awb", "en-gb+f3") is named by ``heldout``: a whole voice ("slt", "en-us+m3"), an
    espeak-ng accent with all its variants ("en-gb-scotland") or a variant in every accent ("+f4")."""
    accent, plus, variant = voice.partition("+")
    return any(h == voice or (plus and (h == accent or h == f"+{variant}")) for h in heldout)


def _draw_voice(rng: np.random.Generator, key: str, engines: tuple[str, ...], voices: tuple[str, ...],
                accents: tuple[str, ...], variants: tuple[str, ...], heldout: tuple[str, ...],
                split_of: Callable[[str], str] | None, heldout_share: float) -> tuple:
    """A voice for one key. Without ``heldout`` this is one draw of :func:`_voice`. With it, a training key
    redraws until its voice is not held out, and a val/test key is given a held-out voice with probability
    ``heldout_share`` (decided by a hash of the key) and a training voice otherwise."""
    if not heldout:
        return _voice(rng, engines, voices, accents, variants)
    split = split_of(key) if split_of is not None else "train"
    want = split != "train" and key_fraction(key, "speech-heldout") < heldout_share
    for _ in range(MAX_VOICE_DRAWS):
        drawn = _voice(rng, engines, voices, accents, variants)
        if is_heldout(drawn[1], heldout) == want:
            return drawn
    raise ValueError(f"speech: no {'held-out' if want else 'training'} voice among engines {engines} "
                     f"(flite voices {voices}, held out: {heldout}); change voices or heldout_voices")


def _interleave(groups: list[list[Utterance]]) -> list[Utterance]:
    """Merge lists so each keeps its order and is spread evenly: item i of a list of n sits at (i + .5) / n."""
    tagged = [((i + 0.5) / len(g), gi, u) for gi, g in enumerate(groups) for i, u in enumerate(g)]
    return [u for _, _, u in sorted(tagged, key=lambda t: (t[0], t[1]))]


def plan(
    *,
    seed: int = 0,
    digits: int = DEFAULT_COUNTS["digits"],
    single_digits: int = DEFAULT_COUNTS["single_digits"],
    emoji: int = DEFAULT_COUNTS["emoji"],
    sentences_count: int = DEFAULT_COUNTS["sentences"],
    engines: tuple[str, ...] = ("flite", "espeak-ng"),
    sentence_list: list[tuple[str, str]] | None = None,
    emoji_list: list[str] | None = None,
    voices: tuple[str, ...] = FLITE_VOICES,
    accents: tuple[str, ...] = ESPEAK_ACCENTS,
    variants: tuple[str, ...] = ESPEAK_VARIANTS,
    heldout: tuple[str, ...] = (),
    split_of: Callable[[str], str] | None = None,
    heldout_share: float = 0.5,
    augment: float = 0.0,
    augment_band: float = 0.0,
    augment_pitch: tuple[float, float] = (-3.0, 3.0),
    with_prompt: bool = False,
) -> list[Utterance]:
    """Every utterance of a build, in yield order. Item i of a kind depends only on (seed, kind, i).

    ``voices`` restricts the flite voices drawn from (a single voice gives a single-speaker corpus, as the
    quickstart uses: pocketsphinx understands awb best, about 5% digit WER against 15-23% for the others);
    ``accents`` and ``variants`` the espeak-ng voices (accent+variant).
    ``heldout``: voices never used for a training key (``split_of(key) == "train"``); a val/test key gets one
    of them with probability ``heldout_share`` (see :func:`is_heldout` for the names).
    ``augment``: the probability that a clip is put through :mod:`omnitok.data.audio_augment` (its
    parameters, drawn per key, go to ``meta["augment"]``); ``augment_band``: the probability that an augmented
    clip is also band-limited (``AugmentConfig.p_band``); ``augment_pitch`` the pitch shift's range in semitones.
    ``with_prompt``: ``meta["prompt"]`` = :func:`voice_prompt` (the text -> speech prompt naming the voice).
    """
    if not engines or any(e not in LICENCES for e in engines):
        raise ValueError(f"engines must be a non-empty subset of {sorted(LICENCES)}, got {engines}")
    if not voices or any(v not in FLITE_ALL_VOICES for v in voices):
        raise ValueError(f"voices must be a non-empty subset of the flite voices {FLITE_ALL_VOICES}, got {voices}")
    if not accents or not variants:
        raise ValueError(f"espeak_accents and espeak_variants must not be empty, got {accents} / {variants}")
    if not all(0.0 <= v <= 1.0 for v in (heldout_share, augment, augment_band)):
        raise ValueError(f"heldout_share, augment and augment_band are probabilities in [0, 1], got "
                         f"{heldout_share} / {augment} / {augment_band}")
    lo, hi = (float(v) for v in augment_pitch)
    if not -12.0 <= lo <= hi <= 12.0:
        raise ValueError(f"augment_pitch: expected LO,HI semitones with -12 <= LO <= HI <= 12, got {augment_pitch}")
    augment_config = audio_augment.AugmentConfig(p_band=augment_band, pitch_range=(lo, hi))

    def rng(kind: str, i: int) -> np.random.Generator:
        return np.random.default_rng([seed, sum(map(ord, kind)), len(kind), i])

    def utt(key: str, kind: str, text: str, r: np.random.Generator, meta: dict[str, Any]) -> Utterance:
        engine, voice, speed, pitch, args = _draw_voice(r, key, engines, voices, accents, variants, heldout,
                                                        split_of, heldout_share)
        if augment > 0:
            a = np.random.default_rng([seed, 17, int(key_fraction(key, "speech-augment") * 2**53)])
            if a.random() < augment:
                meta = {**meta, "augment": audio_augment.draw(a, augment_config)}
        if heldout:
            meta = {**meta, "heldout_voice": is_heldout(voice, heldout)}
        if with_prompt:
            meta = {**meta, "prompt": voice_prompt(voice, text)}
        return Utterance(key, kind, text, engine, voice, speed, pitch, args, meta)

    groups: list[list[Utterance]] = []
    g = []
    for i in range(max(digits, 0)):
        r = rng("digits", i)
        n = int(r.integers(1, 6))
        ds = "".join(str(int(d)) for d in r.integers(0, 10, n))
        g.append(utt(f"speech-digits-{i:06d}", "digits", digits_to_words(ds), r,
                     {"digits": ds, "text_source": "digits"}))
    groups.append(g)
    g = []
    for i in range(max(single_digits, 0)):
        r = rng("digit", i)
        d = str(i % 10)
        g.append(utt(f"speech-digit-{i:06d}", "digits", DIGIT_WORDS[i % 10], r,
                     {"digits": d, "text_source": "digits"}))
    groups.append(g)
    if emoji != 0:
        names = emoji_list if emoji_list is not None else emoji_names()
        order = np.random.default_rng([seed, 11]).permutation(len(names))
        n = len(names) if emoji < 0 else min(emoji, len(names))
        groups.append([
            utt(f"speech-emoji-{i:06d}", "emoji", names[order[i]], rng("emoji", i), {"text_source": "emoji"})
            for i in range(n)
        ])
    if sentences_count > 0:
        sents = sentence_list if sentence_list is not None else sentences(seed=seed)
        groups.append([
            utt(f"speech-sentence-{i:06d}", "sentence", sents[i][0], rng("sentence", i),
                {"text_source": sents[i][1]})
            for i in range(min(sentences_count, len(sents)))
        ])
    return _interleave([g for g in groups if g])


def synthesize(u: Utterance, *, sample_rate: int = SAMPLE_RATE, tmp_dir: str | os.PathLike | None = None,
               timeout: float = 60.0) -> np.ndarray:
    """Run the engine for one utterance; returns mono float32 (T,) at ``sample_rate``.

    flite (16 kHz) and espeak-ng (22,050 Hz) write WAV to a temporary file in ``tmp_dir``. Both are read
    with :func:`read_audio` and resampled to ``sample_rate`` when needed.
    """
    if u.engine == "flite":
        cmd = ["flite", *u.args, "-t", u.text, "-o"]
    elif u.engine == "espeak-ng":
        cmd = ["espeak-ng", *u.args, "-w"]
    else:
        raise ValueError(f"{u.key}: unknown engine {u.engine!r}")
    fd, out = tempfile.mkstemp(suffix=".wav", dir=tmp_dir)
    os.close(fd)
    try:
        cmd.append(out)
        if u.engine == "espeak-ng":
            cmd.append(u.text)
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{u.key}: {u.engine} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
        data = Path(out).read_bytes()
    finally:
        Path(out).unlink(missing_ok=True)
    audio, _ = read_audio(data, target_sr=sample_rate, name=f"{u.key} ({u.engine})")
    if "augment" in u.meta:
        audio = audio_augment.apply(audio, u.meta["augment"], sample_rate)
    return audio


def to_example(u: Utterance, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Example:
    """The stored example: FLAC bytes plus the meta dict."""
    src = u.meta.get("text_source", "")
    text_lic = TEXT_LICENCES["bible-kjv" if src.startswith("bible") else "fortunes" if src.startswith("fortunes")
                             else "emoji" if u.kind == "emoji" else "digits"]
    meta = {
        "transcript": u.text,
        "kind": u.kind,
        "voice": u.voice,
        "engine": u.engine,
        "engine_args": list(u.args),
        "speed": u.speed,
        "pitch": u.pitch,
        "duration": round(audio.shape[0] / sample_rate, 3),
        "sample_rate": sample_rate,
        "source": f"{u.engine} (Debian)",
        "licence": f"{LICENCES[u.engine]}; text: {text_lic}",
        **u.meta,
    }
    return Example(u.key, {"flac": write_flac(audio, sample_rate, name=u.key)}, meta)


def _int_option(options: dict[str, str], name: str, default: int) -> int:
    value = options.get(name)
    if value is None:
        return default
    if name == "emoji" and value == "all":
        return -1
    try:
        return int(value)
    except ValueError as e:
        raise ValueError(f"speech option {name} must be an integer, got {value!r}") from e


def _list_option(options: dict[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = options.get(name)
    return default if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


def _float_option(options: dict[str, str], name: str, default: float) -> float:
    value = options.get(name)
    try:
        return default if value is None else float(value)
    except ValueError as e:
        raise ValueError(f"speech option {name} must be a number, got {value!r}") from e


def _pitch_range(options: dict[str, Any]) -> tuple[float, float]:
    raw = options.get("augment_pitch", "-3,3")
    try:
        lo, hi = (float(v) for v in (raw if isinstance(raw, (list, tuple)) else str(raw).split(",")))
    except ValueError:
        raise ValueError(f"speech option augment_pitch: expected LO,HI semitones like -3,5, got {raw!r}") from None
    return lo, hi


def speaker_card(utts: list[Utterance], split_of: Callable[[str], str],
                 heldout: tuple[str, ...]) -> dict[str, Any]:
    """The card's ``speakers`` field: which voices are held out, and clips per split per voice."""
    per: dict[str, dict[str, int]] = {}
    for u in utts:
        row = per.setdefault(split_of(u.key), {})
        row[u.voice] = row.get(u.voice, 0) + 1
    voices = sorted({u.voice for u in utts})
    return {
        "heldout_voices": list(heldout),
        "train_voices": sorted(per.get("train", {})),
        "unseen_voices": [v for v in voices if is_heldout(v, heldout)],
        "augmented": sum("augment" in u.meta for u in utts),
        "clips_per_voice": {split: dict(sorted(row.items())) for split, row in sorted(per.items())},
    }


def iter_examples(ctx: Any) -> Iterator[Example]:
    """Yield every speech example in plan order; keys already built are yielded empty (not synthesised)."""
    options: dict[str, str] = dict(getattr(ctx, "options", {}) or {})
    engines = tuple(e.strip() for e in options.get("engines", "flite,espeak-ng").split(",") if e.strip())
    for engine in engines:
        ctx.require_tool(engine, engine)
    sample_rate = _int_option(options, "sample_rate", SAMPLE_RATE)
    workers = max(1, _int_option(options, "workers", 3))
    n_sent = _int_option(options, "sentences", DEFAULT_COUNTS["sentences"])
    n_emoji = _int_option(options, "emoji", DEFAULT_COUNTS["emoji"])
    sent_list = None
    if n_sent > 0:
        fortune_dir = ctx.require_tool("fortunes", "fortunes", path=FORTUNE_DIR)
        bible = ctx.require_tool("bible", "bible-kjv")
        sent_list = sentences(Path(fortune_dir), str(bible), seed=ctx.seed)
    if n_emoji != 0 and hasattr(ctx, "python_package"):
        ctx.python_package("emoji")
    voices = _list_option(options, "voices", FLITE_VOICES)
    heldout = _list_option(options, "heldout_voices", ())
    splits = getattr(ctx, "splits", None)
    utts = plan(
        seed=ctx.seed,
        digits=_int_option(options, "digits", DEFAULT_COUNTS["digits"]),
        single_digits=_int_option(options, "single_digits", DEFAULT_COUNTS["single_digits"]),
        emoji=n_emoji,
        sentences_count=n_sent,
        engines=engines,
        sentence_list=sent_list,
        voices=FLITE_ALL_VOICES if voices == ("all",) else voices,
        accents=_list_option(options, "espeak_accents", ESPEAK_ACCENTS),
        variants=_list_option(options, "espeak_variants", ESPEAK_VARIANTS),
        heldout=heldout,
        split_of=lambda key: split_by_key(key, splits),
        heldout_share=_float_option(options, "heldout_share", 0.5),
        augment=_float_option(options, "augment", 0.0),
        augment_band=_float_option(options, "augment_band", 0.0),
        augment_pitch=_pitch_range(options),
        with_prompt=_int_option(options, "voice_prompt", 0) != 0,
    )
    limit = getattr(ctx, "limit", None)
    if limit is not None:
        utts = utts[:limit]
    if hasattr(ctx, "card"):
        ctx.card["speakers"] = speaker_card(utts, lambda key: split_by_key(key, splits), heldout)
    if hasattr(ctx, "set_total"):
        ctx.set_total(len(utts))
    is_done = getattr(ctx, "is_done", lambda key: False)
    tmp_dir = Path(ctx.work_dir) if hasattr(ctx, "work_dir") else None

    def job(u: Utterance) -> Example:
        return to_example(u, synthesize(u, sample_rate=sample_rate, tmp_dir=tmp_dir), sample_rate)

    pending: deque[tuple[Utterance, Future | None]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="speech") as pool:
        try:
            it = iter(utts)
            exhausted = False
            while True:
                while not exhausted and len(pending) < 4 * workers:
                    u = next(it, None)
                    if u is None:
                        exhausted = True
                        break
                    pending.append((u, None if is_done(u.key) else pool.submit(job, u)))
                if not pending:
                    break
                u, fut = pending.popleft()
                yield Example(u.key, {}, {}) if fut is None else fut.result()
        finally:
            for _, fut in pending:
                if fut is not None:
                    fut.cancel()
