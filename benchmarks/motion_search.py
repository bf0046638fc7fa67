"""The global motion search of the sprite video codec, old against new, on the quickstart's moving-digit clips:
ms per clip for ``GlobalMotionCodec.estimate_motion`` (the closed-loop search of 7 steps per 8-frame clip) and for
the whole ``SpriteMotionCodec.encode``, 1 thread, both searches in the same run and alternating, medians over
batches x repeats; and the share of identical codes between the two searches.

    OMNITOK_HOME=<root with the video dataset> OMP_NUM_THREADS=1 python benchmarks/motion_search.py \\
        --image quickstart/codecs/image/codec --limit 320 --out benchmarks/results/motion_search_cpu.json

Old: the naive search kept in tests/codecs/test_global_motion.py (every candidate translated with affine_grid +
grid_sample on 25 copies of the first frame). New: the codec's ``estimate_motion`` (Gram matrix of whole-pixel
shifts). The search's input is what ``SpriteMotionCodec.encode`` gives it: the decoded first frame (window coded
by the image codec and pasted back), then the clip's frames 1..T-1.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import MethodType

import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]


def _naive_search():
    """The naive search from the test module (one copy of the old code)."""
    spec = importlib.util.spec_from_file_location(
        "_test_global_motion", ROOT / "tests/codecs/test_global_motion.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.naive_estimate_motion


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    from omnitok.codecs import SpriteMotionCodec, load_codec
    from omnitok.eval.codec_data import to_float
    from omnitok.eval.video_codec import load_clips

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--image", required=True, help="the image codec folder (or a video codec folder holding one)"
    )
    ap.add_argument("--data", default="video")
    ap.add_argument("--split", default="train")
    ap.add_argument("--limit", type=int, default=320)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--window", type=int, default=28)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--step", type=float, default=0.25)
    ap.add_argument("--max-step", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=32, help="clips per batch (the tokenizer's batch size)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/motion_search_cpu.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load_before = os.getloadavg()

    naive = _naive_search()
    img = load_codec(args.image)
    img = getattr(img, "image", img)
    codec = SpriteMotionCodec.from_image_codec(
        img,
        window=args.window,
        image_size=args.image_size,
        frame_size=args.size,
        step=args.step,
        max_step=args.max_step,
    ).eval()
    clips, _ = load_clips(
        args.data, args.split, args.size, args.frames, limit=args.limit, where={"kind": "digits"}
    )  # uint8 (N, T, 3, S, S)
    batches = []
    with torch.no_grad():
        for i in range(0, len(clips), args.batch):
            x = to_float(clips[i : i + args.batch]).permute(0, 2, 1, 3, 4).contiguous()  # (B, 3, T, S, S)
            corner = codec.corners(x[:, :, 0])
            first = codec._paste(
                codec.image.decode(codec.image.encode(codec._cut(x[:, :, 0], corner))), corner
            )
            batches.append((x, torch.cat([first[:, :, None], x[:, :, 1:]], 2)))

    fast_search = codec.estimate_motion
    naive_search = MethodType(naive, codec)
    search = {"old": [], "new": []}  # seconds per clip, one entry per batch and repeat
    encode = {"old": [], "new": []}
    same_steps = n_steps = same_clips = n_clips = 0
    for fn in (naive_search, fast_search, codec.encode):  # warm up (allocator, kernels) before timing
        fn(batches[0][1] if fn is not codec.encode else batches[0][0])
    for r in tqdm(range(args.repeats), desc="repeats"):
        for j, (x, inp) in enumerate(tqdm(batches, desc="batches", leave=False)):
            order = ("old", "new") if (r + j) % 2 == 0 else ("new", "old")
            ids = {}
            for side in order:
                fn = naive_search if side == "old" else fast_search
                ids[side], dt = _timed(fn, inp)
                search[side].append(dt / len(inp))
            for side in order:
                codec.estimate_motion = naive_search if side == "old" else fast_search
                codes, dt = _timed(codec.encode, x)
                encode[side].append(dt / len(x))
                ids[side + "_codes"] = codes
            codec.estimate_motion = fast_search
            if r == 0:
                same_steps += int((ids["old"] == ids["new"]).sum())
                n_steps += ids["old"].numel()
                same_clips += int((ids["old_codes"] == ids["new_codes"]).flatten(1).all(1).sum())
                n_clips += len(x)

    def ms(v: list[float]) -> float:
        return round(statistics.median(v) * 1000, 3)

    res = {
        "search_ms_per_clip": {
            "old": ms(search["old"]),
            "new": ms(search["new"]),
            "ratio": round(statistics.median(search["old"]) / statistics.median(search["new"]), 2),
        },
        "encode_ms_per_clip": {
            "old": ms(encode["old"]),
            "new": ms(encode["new"]),
            "ratio": round(statistics.median(encode["old"]) / statistics.median(encode["new"]), 2),
        },
        "clips": n_clips,
        "step_codes": n_steps,
        "identical_step_codes": same_steps,
        "identical_step_code_share": same_steps / n_steps,
        "clips_with_identical_codes": same_clips,
        "identical_clip_share": same_clips / n_clips,
        "samples_per_side": len(search["old"]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout
    out.write_text(
        json.dumps(
            {
                "benchmark": "motion_search",
                "machine": {
                    "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cpu_threads": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "load_average_before": [round(v, 2) for v in load_before],
                    "load_average_after": [round(v, 2) for v in os.getloadavg()],
                },
                "versions": {"python": sys.version.split()[0], "torch": torch.__version__},
                "commit": commit.strip(),
                "args": vars(args),
                "results": res,
                "command": "benchmarks/motion_search.py " + " ".join(sys.argv[1:] if argv is None else argv),
            },
            indent=2,
        )
        + "\n"
    )
    print(json.dumps(res, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
