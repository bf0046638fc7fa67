"""Speech tokenisation: ``AudioCodec.encode`` one clip at a time against ``encode_many`` (sorted, right-padded
batches of ragged clips), same codec, same clips, one process, alternating.

    .venv/bin/python benchmarks/audio_encode.py [--codec quickstart/codecs/audio/codec] [--data DATASET_DIR]
        [--clips 512] [--batches 4,8,16,32] [--repeats 2] [--dtype float32|float64]

Default data: the quickstart's speech train split (``$OMNITOK_HOME/quickstart-data/datasets/speech``) and codec.
Counts how many codes differ from the one-at-a-time path (0 in float64; a near tie can flip in float32) and
writes benchmarks/results/audio_encode_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from omnitok.codecs import load_codec
from omnitok.train.audio_codec import load_clips

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    home = Path(os.environ.get("OMNITOK_HOME", Path.home() / ".cache" / "omnitok"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default=str(ROOT / "quickstart" / "codecs" / "audio" / "codec"))
    ap.add_argument("--data", default=str(home / "quickstart-data" / "datasets" / "speech"))
    ap.add_argument("--clips", type=int, default=512)
    ap.add_argument("--batches", default="4,8,16,32")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "audio_encode_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    codec = load_codec(args.codec).eval()
    codec.encode_dtype = getattr(torch, args.dtype)
    clips = [torch.from_numpy(c).view(1, -1) for c in load_clips(args.data, "train", codec.sample_rate,
                                                                limit=args.clips)]
    seconds_audio = sum(c.shape[-1] for c in clips) / codec.sample_rate
    batches = [int(b) for b in args.batches.split(",")]
    times: dict[str, list[float]] = {"one at a time": [], **{f"encode_many batch {b}": [] for b in batches}}
    ref: list[torch.Tensor] = []
    differ: dict[str, int] = {}
    for _ in range(args.repeats):
        t = time.perf_counter()
        ref = [codec.encode(c[None])[0] for c in clips]
        times["one at a time"].append(time.perf_counter() - t)
        for b in batches:
            t = time.perf_counter()
            many = codec.encode_many(clips, batch_size=b)
            times[f"encode_many batch {b}"].append(time.perf_counter() - t)
            differ[f"encode_many batch {b}"] = sum(int((x != y).sum()) for x, y in zip(ref, many))
    base = statistics.median(times["one at a time"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append({"method": name, "seconds": round(med, 3), "all_seconds": [round(x, 3) for x in ts],
                     "clips_per_s": round(len(clips) / med, 1), "speedup": round(base / med, 2),
                     "codes_differ": differ.get(name, 0)})
        print(f"{name:>24}: {med:6.2f} s  {len(clips) / med:7.1f} clips/s  {base / med:4.2f}x  "
              f"codes differ {differ.get(name, 0)}")
    n_codes = sum(r.numel() for r in ref)
    result = {"clips": len(clips), "audio_seconds": round(seconds_audio, 1), "codes": n_codes,
              "encode_dtype": args.dtype, "threads": args.threads, "codec": args.codec, "rows": rows,
              "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(clips)} clips, {seconds_audio:.0f} s of audio, {n_codes} codes -> {args.out}")


if __name__ == "__main__":
    main()
