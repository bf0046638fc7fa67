"""Speech -> text and the audio codec on voices a model heard in training and voices it never heard.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/speech_voices.py --ckpt runs/quickstart-ref/lm/final \
        --vocab runs/quickstart-ref/vocab --train-voices awb --per-group 100 \
        --out benchmarks/results/speech_voices_quickstart_ref.json

The clips are the spoken digit strings of the speech source's test split (keys ``split_of(key) == "test"`` of
``plan(seed=0)``, the quickstart's own plan; the same words in every group), synthesised here in four groups:

- ``awb``          flite awb at 0.8-1.25x speed (the quickstart's one training voice: these are its test clips);
- ``flite-other``  the other flite voices (kal16, rms, slt, kal), one drawn per clip;
- ``espeak``       espeak-ng, 7 accents x 11 variants, 120-200 words per minute, pitch 25-75;
- ``awb-mic``      the ``awb`` clips put through data/audio_augment.py (speed / pitch / room / noise / gain).

A clip is "seen" when its voice is one of ``--train-voices`` (what the model's speech data was built from,
see its dataset card) and "unseen" otherwise. Per clip: the model's transcript (greedy, as ``omnitok eval
model``'s s2t, with and without the transcript cap of generation/transcript_cap.py), pocketsphinx with a
digit grammar on the clip (the outside judge's floor), and pocketsphinx on the audio codec's reconstruction
(the codec's reconstruction WER). Writes JSON: WER per group, per voice, seen / unseen, transcripts longer
than twice their reference, and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from omnitok.data import audio_augment
from omnitok.data.sources import speech
from omnitok.data.splits import split_of
from omnitok.eval.asr import PocketSphinx
from omnitok.eval.wer import corpus_wer, normalize_text
from omnitok.generation.generate import generate
from omnitok.generation.loading import load_model
from omnitok.vocab.document import Audio

ROOT = Path(__file__).resolve().parent.parent
GROUPS = ("awb", "flite-other", "espeak", "awb-mic")


def test_utterances(per_group: int, seed: int = 0) -> dict[str, list[speech.Utterance]]:
    """Per group, ``per_group`` utterances of the same test-split keys (digit strings and single digits)."""
    counts = dict(seed=seed, digits=6000, single_digits=2000, emoji=0, sentences_count=0)
    plans = {
        "awb": speech.plan(engines=("flite",), voices=("awb",), **counts),
        "flite-other": speech.plan(engines=("flite",), voices=("kal16", "rms", "slt", "kal"), **counts),
        "espeak": speech.plan(engines=("espeak-ng",), **counts),
    }
    keys = [u.key for u in plans["awb"] if split_of(u.key) == "test"][:per_group]
    out = {g: [next(u for u in p if u.key == k) for k in keys] for g, p in plans.items()}
    out["awb-mic"] = out["awb"]
    return out


def transcribe(model: Any, vocab: Any, clip: np.ndarray, cap: bool) -> str:
    seg = generate(
        model,
        vocab,
        [[Audio(data=torch.from_numpy(clip).view(1, -1))]],
        "text",
        temperature=0.0,
        max_new_tokens=48,
        seed=0,
        cap_transcripts=cap,
    ).outputs[0]
    return seg.text or ""


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def block(rs: list[dict[str, Any]]) -> dict[str, Any]:
        ref = [r["text"] for r in rs]
        long = sum(len(normalize_text(r["model"])) > 2 * len(normalize_text(r["text"])) for r in rs)
        long_free = sum(
            len(normalize_text(r["model_uncapped"])) > 2 * len(normalize_text(r["text"])) for r in rs
        )
        return {
            "n": len(rs),
            "model_wer": round(corpus_wer(zip(ref, [r["model"] for r in rs])), 4),
            "model_wer_uncapped": round(corpus_wer(zip(ref, [r["model_uncapped"] for r in rs])), 4),
            "over_twice_reference": long,
            "over_twice_reference_uncapped": long_free,
            "pocketsphinx_wer": round(corpus_wer(zip(ref, [r["asr"] for r in rs])), 4),
            "codec_recon_wer": round(corpus_wer(zip(ref, [r["asr_codec"] for r in rs])), 4),
        }

    by = lambda key: {k: block([r for r in rows if r[key] == k]) for k in sorted({r[key] for r in rows})}  # noqa: E731
    return {"seen_unseen": by("heard"), "groups": by("group"), "voices": by("voice_group")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--vocab", default=None)
    ap.add_argument(
        "--train-voices",
        default="awb",
        help="comma list: the voices the model's training data used "
        "(whole voices, espeak accents or +variants as in heldout_voices)",
    )
    ap.add_argument(
        "--all-train-voices-except",
        default=None,
        help="instead of --train-voices: every voice is seen except these (a heldout_voices list)",
    )
    ap.add_argument("--per-group", type=int, default=100)
    ap.add_argument("--groups", default=",".join(GROUPS))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model, vocab, path, vocab_dir = load_model(args.ckpt, args.vocab, "cpu")
    codec = vocab.codecs["audio"]
    sr = int(codec.sample_rate)
    asr = PocketSphinx()
    if args.all_train_voices_except is not None:
        held = tuple(v for v in args.all_train_voices_except.split(",") if v)
        heard = lambda voice: not speech.is_heldout(voice, held)  # noqa: E731
    else:
        train = tuple(v for v in args.train_voices.split(",") if v)
        heard = lambda voice: speech.is_heldout(voice, train)  # noqa: E731  (named by the list = trained on)
    groups = [g for g in args.groups.split(",") if g]
    utts = test_utterances(args.per_group)
    rows: list[dict[str, Any]] = []
    t0 = time.time()
    bar = tqdm(total=sum(len(utts[g]) for g in groups), desc="speech voices")
    for g in groups:
        for u in utts[g]:
            clip = speech.synthesize(u, sample_rate=sr)
            if g == "awb-mic":
                rng = np.random.default_rng([7, int(u.key.rsplit("-", 1)[1]), len(u.key)])
                params = audio_augment.draw(rng, audio_augment.AugmentConfig(p_noise=1.0))
                clip = audio_augment.apply(clip, params, sr)
            with torch.no_grad():
                codes = codec.encode(torch.from_numpy(clip).view(1, 1, -1))
                recon = codec.decode(codes)[0, 0, : len(clip)].numpy()
            rows.append(
                {
                    "key": u.key,
                    "group": g,
                    "voice": u.voice,
                    "engine": u.engine,
                    "voice_group": f"{g}:{u.voice.split('+')[0] if g == 'espeak' else u.voice}",
                    "heard": "seen"
                    if heard(u.voice) and g != "awb-mic"
                    else ("seen-mic" if heard(u.voice) else "unseen"),
                    "text": u.text,
                    "seconds": round(len(clip) / sr, 3),
                    "model": transcribe(model, vocab, clip, True),
                    "model_uncapped": transcribe(model, vocab, clip, False),
                    "asr": asr.transcribe(clip, sr, mode="digits"),
                    "asr_codec": asr.transcribe(recon, sr, mode="digits"),
                }
            )
            bar.update(1)
    bar.close()
    out = {
        "ckpt": str(args.ckpt),
        "vocab": str(vocab_dir),
        "train_voices": args.train_voices,
        "all_train_voices_except": args.all_train_voices_except,
        "per_group": args.per_group,
        "decoding": "greedy, max_new_tokens 48 (as omnitok eval model's s2t)",
        "judge": "pocketsphinx en-us, digit grammar",
        "seconds": round(time.time() - t0, 1),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "load_average": os.getloadavg(),
        },
        **summarise(rows),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("seen_unseen", "groups")}, indent=1))


if __name__ == "__main__":
    main()
