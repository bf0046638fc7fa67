"""Audio codec speed on this CPU: omnitok's AudioCodec beside the ``encodec`` package's 24 kHz model.

    .venv/bin/pip install --no-deps encodec      # the peer (bench only; see the note on torchaudio below)
    nice -n 10 .venv/bin/python benchmarks/audio_codec.py [--codec runs/codec/speech16k/codec] [--threads 1]

Both models get the same speech (clips of the speech test split concatenated to ``--seconds``, or flite
when the dataset is not built), resampled to each model's rate (16 kHz / 24 kHz) before timing.
EnCodec is built with ``EncodecModel.encodec_model_24khz(pretrained=False)``: random weights, so this
compares speed only (its weights cannot be downloaded here). Timings are the median of ``--repeats``
runs of encode and of decode on the whole signal, batch 1; the real-time factor (RTF) is compute
seconds per second of audio (lower is faster). Writes benchmarks/results/audio_codec_cpu.json.

``encodec.utils`` imports torchaudio for file I/O only. torchaudio is not installed here (it would pull
another torch build), so an empty stand-in module is registered before importing encodec; no code path
that is timed uses it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def speech(seconds: float) -> tuple[np.ndarray, str]:
    """~``seconds`` of 16 kHz speech: the speech test split if built, else flite."""
    from omnitok.io.audio import read_audio

    try:
        from omnitok.data.dataset import ShardDataset

        parts, total = [], 0
        for item in ShardDataset("speech", "test", sample_rate=16000):
            a = item["audio"].reshape(-1).numpy()
            parts.append(a)
            total += len(a)
            if total >= seconds * 16000:
                break
        if total >= seconds * 16000:
            return np.concatenate(parts)[: int(seconds * 16000)], "speech/test clips concatenated"
    except (ValueError, OSError):
        pass
    text = "the quick brown fox jumps over the lazy dog. one two three four five six seven eight nine. " * 4
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["flite", "-voice", "kal16", "-t", text, "-o", f"{d}/a.wav"], check=True)
        a, _ = read_audio(f"{d}/a.wav", target_sr=16000)
    reps = int(np.ceil(seconds * 16000 / len(a)))
    return np.tile(a, reps)[: int(seconds * 16000)], "flite kal16"


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def load_encodec():
    if "torchaudio" not in sys.modules:
        try:
            import torchaudio  # noqa: F401
        except ImportError:
            sys.modules["torchaudio"] = types.ModuleType("torchaudio")  # file I/O only; never called here
    import encodec

    return encodec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--codec", default=str(ROOT / "runs/codec/speech16k/codec"),
                    help="AudioCodec folder (random speech16k weights when missing)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on this shared 2-core machine)")
    ap.add_argument("--n-q", type=int, default=4, help="omnitok codebooks (4 = 2 kbps)")
    ap.add_argument("--encodec-bandwidth", type=float, default=1.5, help="kbps: 1.5 (2 codebooks), 3, 6, ...")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/audio_codec_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from omnitok.codecs.audio import AudioCodec
    from omnitok.codecs.base import load_codec
    from omnitok.io.audio import resample

    audio16, source = speech(args.seconds)
    secs = len(audio16) / 16000
    if Path(args.codec, "config.json").is_file():
        codec, weights = load_codec(args.codec), args.codec
    else:
        import yaml

        from omnitok.train.audio_codec import build_audio_codec

        cfg = yaml.safe_load((ROOT / "src/omnitok/configs/codec/speech16k.yaml").read_text())
        cfg["quantizer"]["kmeans_init"] = False
        codec, weights = build_audio_codec(cfg).eval(), "random (speech16k preset)"
    assert isinstance(codec, AudioCodec)
    codec.eval()
    x = torch.from_numpy(audio16).view(1, 1, -1)
    results: dict[str, dict] = {}
    with torch.no_grad():
        codes = codec.encode(x, n_q=args.n_q)
        enc, enc_t = timed(lambda: codec.encode(x, n_q=args.n_q), args.repeats)
        dec, dec_t = timed(lambda: codec.decode(codes), args.repeats)
        prepared = codec.prepare(x)
        enc32, _ = timed(lambda: codec.encoder(prepared), args.repeats)
    results["omnitok_audio_codec"] = {
        "weights": weights, "sample_rate": codec.sample_rate, "n_q": args.n_q,
        "bitrate_kbps": codec.bitrate(args.n_q) / 1000,
        "params_m": round(sum(p.numel() for p in codec.parameters()) / 1e6, 3),
        "encode_s": enc, "decode_s": dec, "encode_rtf": enc / secs, "decode_rtf": dec / secs,
        "encoder_float32_only_s": enc32, "encode_runs_s": enc_t, "decode_runs_s": dec_t,
        "note": "encode = float64 encoder (chunk-exact) + RVQ; encoder_float32_only_s = the float32 encoder alone",
    }
    try:
        encodec = load_encodec()
        model = encodec.EncodecModel.encodec_model_24khz(pretrained=False).eval()
        model.set_target_bandwidth(args.encodec_bandwidth)
        audio24 = resample(audio16, 16000, model.sample_rate)
        x24 = torch.from_numpy(audio24).view(1, 1, -1)
        with torch.no_grad():
            frames = model.encode(x24)
            e_enc, e_enc_t = timed(lambda: model.encode(x24), args.repeats)
            e_dec, e_dec_t = timed(lambda: model.decode(frames), args.repeats)
        results["encodec_24khz_random"] = {
            "version": getattr(encodec, "__version__", "?"), "sample_rate": model.sample_rate,
            "bandwidth_kbps": args.encodec_bandwidth, "n_q": int(frames[0][0].shape[1]),
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            "encode_s": e_enc, "decode_s": e_dec, "encode_rtf": e_enc / secs, "decode_rtf": e_dec / secs,
            "encode_runs_s": e_enc_t, "decode_runs_s": e_dec_t,
        }
        ours = results["omnitok_audio_codec"]
        results["ratios"] = {"encodec_over_omnitok_encode": e_enc / ours["encode_s"],
                             "encodec_over_omnitok_decode": e_dec / ours["decode_s"]}
    except ImportError as e:
        results["encodec_24khz_random"] = {"error": f"encodec not installed ({e}); pip install --no-deps encodec"}
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    out = {
        "benchmark": "audio_codec_cpu", "audio_seconds": secs, "audio_source": source, "repeats": args.repeats,
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "load_average_at_start": os.getloadavg(),
                    "platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for name, r in results.items():
        if "encode_rtf" in r:
            print(f"{name:24s} encode RTF {r['encode_rtf']:.4f}  decode RTF {r['decode_rtf']:.4f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
