"""v2t: a held-out clip of one moving digit -> caption, judged by the digit the caption names
(:mod:`omnitok.eval.judges.digit_text`) and the direction it names (:func:`omnitok.eval.judges.motion.caption_direction`)
against the clip's own caption ("the digit 3 moving up-left")."""

from __future__ import annotations

from typing import Any

from omnitok.eval.heldout import batches, examples, progress_bar
from omnitok.eval.judges.digit_text import digit_from_text
from omnitok.eval.judges.motion import caption_direction
from omnitok.eval.tasks.base import EvalContext, EvalTask, Headline, TaskResult
from omnitok.eval.tasks.t2v import single_digit
from omnitok.vocab.document import Video

__all__ = ["TASK", "run"]


def run(ctx: EvalContext) -> TaskResult:
    gen, s, save = ctx.gen, ctx.settings, ctx.save
    items = examples("video", s, single_digit, s.limit, video_size=s.video_size, num_frames=s.video_frames)
    caps: list[str] = []
    bar = progress_bar(len(items), "eval v2t", s)
    for chunk in batches(items, s.batch_size):
        # a clip (T, C, H, W) from the held-out split -> (C, T, H, W), the layout every video codec takes
        caps += [seg.text or "" for seg in gen([[Video(data=it["video"].transpose(0, 1))] for it in chunk], "text")]
        bar.update(len(chunk))
    bar.close()
    digit_hits = dir_hits = both = 0
    samples: list[dict[str, Any]] = []
    for i, (it, cap) in enumerate(zip(items, caps)):
        d_ok = digit_from_text(cap) == int(it["meta"]["digits"])
        m_ok = caption_direction(cap) == caption_direction(it["caption"])
        digit_hits, dir_hits, both = digit_hits + d_ok, dir_hits + m_ok, both + (d_ok and m_ok)
        if i < save.n:
            samples.append({"file": save.video(it["video"], f"v2t/real-{i}"), "caption": it["caption"],
                            "generated": cap})
    n = len(items)
    return TaskResult({"digit_accuracy": digit_hits / n, "direction_accuracy": dir_hits / n,
                       "both_accuracy": both / n, "n": n}, samples)


TASK = EvalTask("v2t", run, (Headline("digit named in the caption", "digit_accuracy"),
                             Headline("direction named in the caption", "direction_accuracy")),
                summary="held-out moving-digit clip -> caption; its digit and direction against the clip's caption")
