"""Video tokenizations side by side on held-out moving-digit clips: ids per clip against what the judges read in
the reconstructions (digit per frame, direction of motion) and PSNR, plus the judges' own check on the real clips.

    OMNITOK_HOME=<root with the video dataset and judges/> python benchmarks/video_tokenizers.py \\
        --video runs/quickstart/codecs/video/codec --image runs/quickstart/codecs/image/codec \\
        --trained runs/video/motion/codec --frames 9 --out benchmarks/results/video_tokenizers.json

Rows: ``--video`` a 3-D VideoCodec folder; from the ``--image`` codec folder, the image codec on every frame
(FrameCodec) and on the first frame with global motion steps for the rest (GlobalMotionCodec); from the
``--sprite`` image codec, the first frame's sprite cut out and coded at the codec's framing (SpriteMotionCodec,
``--window`` / ``--image-size``); ``--trained``:
any further video codec folders (e.g. a GlobalMotionCodec trained on video frames). Each row is
``omnitok.eval.video_codec.evaluate`` on the same clips.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    from omnitok.codecs import FrameCodec, GlobalMotionCodec, SpriteMotionCodec, load_codec
    from omnitok.eval.video_codec import evaluate

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", action="append", default=[], help="3-D video codec folder(s)")
    ap.add_argument("--image", action="append", default=[],
                    help="image codec folder(s) (or a video codec folder holding one) to apply per frame / on the "
                         "first frame")
    ap.add_argument("--trained", action="append", default=[], help="further video codec folders")
    ap.add_argument("--sprite", action="append", default=[],
                    help="image codec folder(s) to code the first frame's sprite with (SpriteMotionCodec: a --window "
                         "px cut around the sprite, resized to --image-size px; frames of --size px)")
    ap.add_argument("--window", type=int, default=28, help="SpriteMotionCodec window, px")
    ap.add_argument("--image-size", type=int, default=32, help="the size the --sprite image codec was trained at")
    ap.add_argument("--data", default="video")
    ap.add_argument("--split", default="test")
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--where", default="digits", help="clip kind (digits or emoji)")
    ap.add_argument("--out", default="benchmarks/results/video_tokenizers.json")
    ap.add_argument("--max-step", type=float, default=2.0,
                    help="largest global motion step per frame and axis, px (velocities scale with --size)")
    ap.add_argument("--grids", default="runs/video/tokenizers", help="folder for each row's reconstruction grid")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    rows: list[tuple[str, object, dict]] = []
    for path in args.video + args.trained:
        rows.append((str(path), load_codec(path), {}))
    for path in args.image:
        img = load_codec(path)
        img = getattr(img, "image", img)  # a GlobalMotionCodec / FrameCodec folder: its image codec
        rows.append((f"{path} per frame", FrameCodec.from_image_codec(img), {}))
        rows.append((f"{path} first frame + global motion", GlobalMotionCodec.from_image_codec(img, max_step=args.max_step),
                     {}))
    for path in args.sprite:
        img = load_codec(path)
        img = getattr(img, "image", img)
        codec = SpriteMotionCodec.from_image_codec(img, window=args.window, image_size=args.image_size,
                                                   frame_size=args.size, max_step=args.max_step)
        rows.append((f"{path} sprite ({args.window} px window) + corner + global motion", codec, {}))
    results = []
    out = Path(args.out)
    for name, codec, _ in rows:
        codec.train_config = {"data": {"name": args.data, "size": args.size, "frames": args.frames,
                                       "where": {"kind": args.where}}}
        t0 = time.perf_counter()
        folder = Path(args.grids) / f"row{len(results)}"
        try:
            codec.code_grid((3, args.frames, args.size, args.size))
        except ValueError as e:  # e.g. global motion needs T = 1 + k * w frames
            print(f"{name:60s} skipped: {e}", flush=True)
            continue
        r = evaluate(codec, args.data, args.split, folder, args.limit, size=args.size, frames=args.frames)
        r["name"], r["seconds"] = name, round(time.perf_counter() - t0, 1)
        results.append(r)
        j = r.get("judges", {}).get("reconstructed", {})
        print(f"{name:60s} ids {r['tokens_per_clip']:4d}  frame {j.get('frame_accuracy', float('nan')):.1%}  "
              f"direction {j.get('direction_accuracy', float('nan')):.1%}  PSNR {r['psnr']:.2f} dB", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "python": sys.version.split()[0],
                               "torch": torch.__version__, "argv": sys.argv[1:], "rows": results}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
