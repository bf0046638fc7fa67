"""Evaluate an :class:`~omnitok.codecs.audio.AudioCodec` on a held-out split of a speech dataset.

Called by ``omnitok eval codec CKPT --data speech --split test [--limit N]`` (:mod:`omnitok.eval.codec`).
For every clip: encode -> decode at each number of codebooks 1..n_q, then

* SI-SNR (dB, higher is better) and mel distance (mean |log10 mel| difference, 80 bands; lower is better);
* bitrate n_q * log2(K) * frame_rate;
* real-time factor of encode and decode on this machine (seconds of compute per second of audio,
  all n_q codebooks, batch 1, torch's current thread count);
* pocketsphinx word error rate on the reconstruction at ``asr_n_q`` codebooks (default: all) against
  its word error rate on the original: the digit grammar for ``digits`` / ``digit`` clips, the full
  language model for ``sentence`` and ``emoji`` clips. Both WERs use the same judge and settings, so
  the ratio isolates what the codec loses.

Writes ``out_dir/utterances.jsonl`` (per clip: transcripts, WER, SI-SNR) and a few example WAVs.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from omnitok.codecs.losses.spectral import mel_distance, si_snr
from omnitok.eval.wer import edit_distance, normalize_text

__all__ = ["evaluate", "load_eval_clips", "synthetic_clips"]

DIGIT_KINDS = ("digits", "digit")


def synthetic_clips(n: int, sample_rate: int, seconds: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    """Speech-like test signals: harmonic tones with a moving pitch and formant-ish envelope, plus noise bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    clips = []
    for _ in range(n):
        f0 = rng.uniform(90, 250) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        x = sum(np.sin(k * phase) / k * rng.uniform(0.2, 1) for k in range(1, 8))
        env = np.clip(np.sin(2 * np.pi * rng.uniform(1, 4) * t + rng.uniform(0, 6)), 0, None)
        noise = rng.normal(0, 0.05, t.shape) * (rng.uniform(size=t.shape) < 0.3)
        y = (x * env + noise).astype(np.float32)
        clips.append(0.8 * y / max(np.abs(y).max(), 1e-3))
    return clips


def load_eval_clips(data: str, split: str, sample_rate: int, limit: int | None) -> list[dict[str, Any]]:
    """[{key, audio (T,) float32, text, kind}] from a built dataset, a folder of WAV/FLAC, or ``synthetic``.

    With ``limit`` the first ``limit`` clips in stored order are kept (the speech source interleaves its kinds,
    so a prefix holds all of them).
    """
    if data == "synthetic":
        return [{"key": f"synthetic-{i}", "audio": a, "text": "", "kind": "synthetic"}
                for i, a in enumerate(synthetic_clips(limit or 8, sample_rate, seed=1))]
    folder = Path(data).expanduser()
    if folder.is_dir() and not any(folder.glob("*.tar")):
        from omnitok.io.audio import read_audio

        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac"))[:limit]
        texts: dict[str, Any] = {}
        if (folder / "transcripts.json").is_file():
            texts = json.loads((folder / "transcripts.json").read_text())
        return [{"key": p.stem, "audio": read_audio(p, target_sr=sample_rate)[0],
                 "text": texts.get(p.stem, {}).get("text", ""), "kind": texts.get(p.stem, {}).get("kind", "sentence")}
                for p in files]
    from omnitok.data.dataset import ShardDataset

    out = []
    for item in ShardDataset(data, split, sample_rate=sample_rate):
        meta = item.get("meta") or {}
        out.append({"key": item["key"], "audio": item["audio"].reshape(-1).numpy(),
                    "text": str(meta.get("transcript") or item.get("caption") or ""),
                    "kind": str(meta.get("kind", "sentence"))})
        if limit and len(out) >= limit:
            break
    if not out:
        raise ValueError(f"{data!r} split {split!r} holds no audio clips")
    return out


def _group(kind: str) -> str:
    return "digits" if kind in DIGIT_KINDS else "sentences" if kind == "sentence" else kind


@torch.no_grad()
def evaluate(codec: Any, data: str, split: str, out_dir: Path, limit: int | None = None,
             asr: bool = True, asr_n_q: int | None = None, examples: int = 4) -> dict[str, Any]:
    """Metrics of ``codec`` on ``data``/``split`` (see the module docstring); returns a JSON-ready dict."""
    from omnitok.io.audio import write_wav

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    codec.eval()
    sr, n_q_max = codec.sample_rate, codec.num_codebooks
    asr_n_q = asr_n_q or n_q_max
    device = next(codec.parameters()).device
    clips = load_eval_clips(data, split, sr, limit)
    judge = None
    if asr:
        from omnitok.eval.asr import PocketSphinx

        judge = PocketSphinx()
    sisnr: dict[int, list[float]] = {n: [] for n in range(1, n_q_max + 1)}
    meld: dict[int, list[float]] = {n: [] for n in range(1, n_q_max + 1)}
    enc_s = dec_s = audio_s = 0.0
    # per group: [ref words, errors on originals, errors on reconstructions, utterances]
    groups: dict[str, list[int]] = {}
    rows = []
    for i, clip in enumerate(tqdm(clips, desc=f"eval audio codec on {data}/{split}")):
        x = torch.from_numpy(clip["audio"]).view(1, 1, -1).to(device)
        t = x.shape[-1]
        t0 = time.perf_counter()
        codes = codec.encode(x)  # (1, F, n_q_max)
        t1 = time.perf_counter()
        y_full = codec.decode(codes)[..., :t]
        t2 = time.perf_counter()
        enc_s, dec_s, audio_s = enc_s + t1 - t0, dec_s + t2 - t1, audio_s + t / sr
        recon = {}
        for n in range(1, n_q_max + 1):
            y = y_full if n == n_q_max else codec.decode(codes[..., :n])[..., :t]
            recon[n] = y
            sisnr[n].append(float(si_snr(y, x)[0]))
            meld[n].append(mel_distance(y, x, sr))
        row: dict[str, Any] = {"key": clip["key"], "kind": clip["kind"], "seconds": round(t / sr, 3),
                               "si_snr": round(sisnr[asr_n_q][-1], 3), "mel_distance": round(meld[asr_n_q][-1], 4)}
        if judge is not None and clip["text"]:
            mode = "digits" if clip["kind"] in DIGIT_KINDS else "lm"
            ref = normalize_text(clip["text"])
            hyp_o = judge.transcribe(clip["audio"], sr, mode)
            hyp_r = judge.transcribe(recon[asr_n_q].reshape(-1).cpu().numpy(), sr, mode)
            e_o, e_r = edit_distance(ref, normalize_text(hyp_o)), edit_distance(ref, normalize_text(hyp_r))
            g = groups.setdefault(_group(clip["kind"]), [0, 0, 0, 0])
            g[0] += len(ref)
            g[1] += e_o
            g[2] += e_r
            g[3] += 1
            row.update(reference=clip["text"], mode=mode, hyp_original=hyp_o, hyp_reconstruction=hyp_r,
                       errors_original=e_o, errors_reconstruction=e_r, words=len(ref))
        rows.append(row)
        if i < examples:
            (out_dir / f"{clip['key']}-original.wav").write_bytes(write_wav(clip["audio"], sr))
            (out_dir / f"{clip['key']}-recon-nq{asr_n_q}.wav").write_bytes(
                write_wav(recon[asr_n_q].reshape(-1).cpu().numpy(), sr))
    with (out_dir / "utterances.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")

    def mean(v: list[float]) -> float:
        return round(float(np.mean(v)), 4) if v else float("nan")

    result: dict[str, Any] = {
        "data": data, "split": split, "clips": len(clips), "audio_seconds": round(audio_s, 1),
        "sample_rate": sr, "hop": codec.hop, "frame_rate": codec.frame_rate, "codebook_size": codec.codebook_size,
        "per_n_q": {str(n): {"bitrate_bps": codec.bitrate(n), "si_snr_db": mean(sisnr[n]),
                             "mel_distance": mean(meld[n])} for n in range(1, n_q_max + 1)},
        "encode_rtf": round(enc_s / max(audio_s, 1e-9), 5), "decode_rtf": round(dec_s / max(audio_s, 1e-9), 5),
        "torch_threads": torch.get_num_threads(),
        "asr_n_q": asr_n_q, "asr_bitrate_bps": codec.bitrate(asr_n_q),
        "si_snr_db": mean(sisnr[asr_n_q]), "mel_distance": mean(meld[asr_n_q]),
    }
    if groups:
        wer: dict[str, Any] = {}
        tot = [0, 0, 0, 0]
        for name, (words, e_o, e_r, n) in sorted(groups.items()):
            wer[name] = _wer_entry(words, e_o, e_r, n, "digit grammar" if name == "digits" else "full LM")
            tot = [a + b for a, b in zip(tot, (words, e_o, e_r, n))]
        wer["all"] = _wer_entry(*tot, "per group")
        result["wer"] = wer
    return result


def _wer_entry(words: int, e_o: int, e_r: int, n: int, judge: str) -> dict[str, Any]:
    w_o, w_r = e_o / max(words, 1), e_r / max(words, 1)
    return {"judge": judge, "utterances": n, "words": words, "wer_original": round(w_o, 4),
            "wer_reconstruction": round(w_r, 4),
            "ratio": round(w_r / w_o, 3) if w_o > 0 else (1.0 if w_r == 0 else math.inf)}
