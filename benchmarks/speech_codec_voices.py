"""The audio codec's reconstruction WER on voices its training data held and voices it never heard.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/speech_codec_voices.py --root runs/speech/data \
        --codec 700=runs/speech/proof/codecs/audio/codec \
        --codec 1800=runs/speech/codec-long/checkpoints/step_00001800 \
        --heldout "slt,kal,en-gb-scotland,en-gb-x-gbclan,+m3,+f4" --per-group 60 \
        --out benchmarks/results/speech_codec_voices.json

Two sets of clips, each judged by pocketsphinx with a digit grammar on the clip itself and on every codec's
reconstruction of it (encode -> decode at all codebooks), so every codec is read on exactly the same clips:

- ``split``: the test split of a built speech dataset (``--root``; every clip of it, in stored order). A clip is
  seen / unseen by the ``heldout_voice`` its card recorded, and ``mic`` when data/audio_augment.py effects were
  applied to it.
- ``digits``: the digit strings of benchmarks/speech_voices.py (``--per-group`` per group: awb, the other flite
  voices, espeak-ng, awb with microphone effects), seen / unseen by ``--heldout`` (awb with effects: seen-mic).

Only the codecs are measured (no LM): this is the check to run before an LM is trained on a new codec.
Writes JSON: per codec, WER per seen / unseen group, per engine and per voice, and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from omnitok._io import load_safetensors, sha256_file
from omnitok.codecs import load_codec
from omnitok.codecs.builder import build_audio_codec
from omnitok.data import audio_augment
from omnitok.data.dataset import ShardDataset
from omnitok.data.sources import speech
from omnitok.eval.asr import PocketSphinx
from omnitok.eval.wer import corpus_wer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speech_voices import test_utterances  # noqa: E402  (the same digit strings as the LM benchmark)


def load_any(path: str) -> Any:
    """A codec folder (``codec_class`` in its config.json) or a codec trainer's ``checkpoints/step_N`` folder
    (only its config.json and model.safetensors are read, the weights checked against their recorded sha256)."""
    cfg = json.loads((Path(path) / "config.json").read_text())
    if "codec_class" in cfg:
        return load_codec(path)
    weights = Path(path) / "model.safetensors"
    recorded = (cfg.get("files_sha256") or {}).get("model.safetensors")
    if recorded and sha256_file(weights) != recorded:
        raise SystemExit(f"{weights}: sha256 differs from the one recorded at save")
    codec = build_audio_codec(cfg)
    own = codec.state_dict()
    codec.load_state_dict({k: v for k, v in load_safetensors(weights).items() if k in own})
    return codec


def split_clips(root: str, split: str) -> list[dict[str, Any]]:
    """Every clip of ``split`` of the speech dataset under ``root``, labelled seen / unseen and clean / mic."""
    out = []
    for item in ShardDataset("speech", split, root=root, sample_rate=16000):
        meta = item.get("meta") or {}
        heard = "unseen" if meta.get("heldout_voice") else "seen"
        out.append(
            {
                "set": "split",
                "key": item["key"],
                "audio": item["audio"].reshape(-1).numpy(),
                "text": str(meta["transcript"]),
                "voice": str(meta["voice"]),
                "engine": str(meta["engine"]),
                "group": f"{heard}{'-mic' if meta.get('augment') else ''}",
                "heard": heard,
            }
        )
    return out


def digit_clips(per_group: int, heldout: tuple[str, ...]) -> list[dict[str, Any]]:
    """benchmarks/speech_voices.py's clips, synthesised here (awb-mic with the same effects as there)."""
    out = []
    for g, utts in test_utterances(per_group).items():
        for u in utts:
            clip = speech.synthesize(u, sample_rate=16000)
            if g == "awb-mic":
                rng = np.random.default_rng([7, int(u.key.rsplit("-", 1)[1]), len(u.key)])
                params = audio_augment.draw(rng, audio_augment.AugmentConfig(p_noise=1.0))
                clip = audio_augment.apply(clip, params, 16000)
            heard = (
                "unseen" if speech.is_heldout(u.voice, heldout) else "seen-mic" if g == "awb-mic" else "seen"
            )
            out.append(
                {
                    "set": "digits",
                    "key": u.key,
                    "audio": clip,
                    "text": u.text,
                    "voice": u.voice,
                    "engine": u.engine,
                    "group": g,
                    "heard": heard,
                }
            )
    return out


def summarise(rows: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    def block(rs: list[dict[str, Any]]) -> dict[str, Any]:
        ref = [r["text"] for r in rs]
        b = {"n": len(rs), "clip_wer": round(corpus_wer(zip(ref, [r["asr"] for r in rs])), 4)}
        for n in names:
            b[f"recon_wer_{n}"] = round(corpus_wer(zip(ref, [r["asr_recon"][n] for r in rs])), 4)
        return b

    def by(rs: list[dict[str, Any]], key: Any) -> dict[str, Any]:
        keys = sorted({key(r) for r in rs})
        return {k: block([r for r in rs if key(r) == k]) for k in keys}

    out: dict[str, Any] = {}
    for s in sorted({r["set"] for r in rows}):
        rs = [r for r in rows if r["set"] == s]
        out[s] = {
            "seen_unseen": by(rs, lambda r: r["heard"]),
            "groups": by(rs, lambda r: r["group"]),
            "engines": by(rs, lambda r: f"{r['heard']}:{r['engine']}"),
            "voices": by(rs, lambda r: f"{r['heard']}:{r['voice'].split('+')[0]}"),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--codec", action="append", required=True, help="NAME=codec folder; repeat to compare codecs"
    )
    ap.add_argument(
        "--root", default=None, help="data root holding the built speech dataset (its test split)"
    )
    ap.add_argument("--split", default="test")
    ap.add_argument(
        "--heldout",
        default="slt,kal,en-gb-scotland,en-gb-x-gbclan,+m3,+f4",
        help="the held-out voices of the codec's training data (for the digits set)",
    )
    ap.add_argument("--per-group", type=int, default=60, help="digit strings per group (0: skip that set)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    codecs = {}
    for spec in args.codec:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--codec {spec!r}: expected NAME=FOLDER")
        codecs[name] = load_any(path).eval()
    for name, c in codecs.items():
        if int(c.sample_rate) != 16000:
            raise SystemExit(
                f"--codec {name}: sample rate {c.sample_rate}, expected 16000 (the speech data's)"
            )
    heldout = tuple(v for v in args.heldout.split(",") if v)
    t0 = time.time()
    clips = split_clips(args.root, args.split) if args.root else []
    if args.per_group > 0:
        clips += digit_clips(args.per_group, heldout)
    if not clips:
        raise SystemExit("no clips: give --root (a built speech dataset) and/or --per-group > 0")
    asr = PocketSphinx()
    rows = []
    for c in tqdm(clips, desc="codec reconstructions"):
        x = torch.from_numpy(np.ascontiguousarray(c["audio"], dtype=np.float32)).view(1, 1, -1)
        recon = {}
        for name, codec in codecs.items():
            with torch.no_grad():
                y = codec.decode(codec.encode(x))[0, 0, : x.shape[-1]].numpy()
            recon[name] = asr.transcribe(y, 16000, mode="digits")
        rows.append(
            {k: c[k] for k in ("set", "key", "text", "voice", "engine", "group", "heard")}
            | {"asr": asr.transcribe(c["audio"], 16000, mode="digits"), "asr_recon": recon}
        )
    out = {
        "codecs": {n: s.partition("=")[2] for n, s in zip(codecs, args.codec)},
        "root": args.root,
        "split": args.split,
        "heldout": args.heldout,
        "per_group": args.per_group,
        "judge": "pocketsphinx en-us, digit grammar",
        "seconds": round(time.time() - t0, 1),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "load_average": os.getloadavg(),
        },
        "sets": summarise(rows, list(codecs)),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(
        json.dumps(
            {s: {k: v[k] for k in ("seen_unseen", "groups")} for s, v in out["sets"].items()},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
