"""t2v: "the digit k moving <dir>" -> video, judged by the digit CNN on every frame (each frame's sprite given
MNIST's framing first, :mod:`omnitok.eval.judges.video_digits`) and by the direction of motion of the per-frame
centroids (:mod:`omnitok.eval.judges.motion`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from omnitok.eval.heldout import batches, examples, progress_bar
from omnitok.eval.judges.motion import caption_direction, direction_of_motion
from omnitok.eval.judges.video_digits import frame_digits
from omnitok.eval.tasks.base import EvalContext, EvalTask, Headline, TaskResult
from omnitok.vocab.document import Text

__all__ = ["TASK", "run", "single_digit"]


def single_digit(m: dict[str, Any]) -> bool:
    """A clip of one moving digit: the clips whose digit and direction the judges read."""
    return m.get("kind") == "digits" and m.get("motion") == "single" and len(str(m.get("digits", ""))) == 1


def run(ctx: EvalContext) -> TaskResult:
    gen, s, save = ctx.gen, ctx.settings, ctx.save
    items = examples("video", s, single_digit, s.limit, video_size=s.video_size, num_frames=s.video_frames)
    grid = gen.video_grid()
    videos: list[Tensor] = []  # each (T, C, H, W)
    bar = progress_bar(len(items), "eval t2v", s)
    for chunk in batches(items, max(1, s.batch_size // 2)):
        out = gen([[Text(it["caption"])] for it in chunk], "video", grid=grid)
        videos += [gen.video_frames(seg.data) for seg in out]
        bar.update(len(chunk))
    bar.close()
    labels = [int(it["meta"]["digits"]) for it in items]
    frame_hits = frames = dir_hits = 0
    rows = []
    for i, (v, lab, it) in enumerate(zip(videos, labels, items)):
        pred = frame_digits(ctx.judges.classifier, v)
        frame_hits += int((pred == lab).sum())
        frames += len(v)
        want = caption_direction(it["caption"])
        got = direction_of_motion(v)
        dir_hits += int(got == want)
        if i < save.n:
            strip = torch.cat([v[0], v[len(v) // 2], v[-1]], dim=-1)  # first | middle | last frame, (C, H, 3W)
            rows.append({"prompt": it["caption"], "file": save.video(v, f"t2v/gen-{i}"), "direction": got,
                         "expected_direction": want, "frame_digits": [int(p) for p in pred],
                         "frames_file": save.image(strip.clamp(-1, 1), f"t2v/gen-{i}-first-middle-last")})
    real_dir = sum(int(direction_of_motion(it["video"]) == caption_direction(it["caption"])) for it in items)
    real_frames = sum(int((frame_digits(ctx.judges.classifier, it["video"]) == lab).sum())
                      for it, lab in zip(items, labels))
    return TaskResult({"frame_accuracy": frame_hits / frames, "direction_accuracy": dir_hits / len(items),
                       "n": len(items), "frames": frames, "grid": list(grid),
                       "real_direction_accuracy": real_dir / len(items),
                       "real_frame_accuracy": real_frames / sum(len(it["video"]) for it in items)}, rows)


TASK = EvalTask("t2v", run, (Headline("digit accuracy per frame", "frame_accuracy"),
                             Headline("direction of motion", "direction_accuracy")),
                summary='"the digit k moving <dir>" -> video; digit CNN per frame, direction of motion')
