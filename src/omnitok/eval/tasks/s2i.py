"""s2i: held-out spoken single digit -> image, judged by whether the digit CNN sees the spoken digit."""

from __future__ import annotations

import torch
from torch import Tensor

from omnitok.eval.heldout import progress_bar, speech_items
from omnitok.eval.judges.digit_text import digit_from_text
from omnitok.eval.tasks.base import EvalContext, EvalTask, Headline, TaskResult
from omnitok.vocab.document import Audio

__all__ = ["TASK", "run"]


def run(ctx: EvalContext) -> TaskResult:
    gen, s, save = ctx.gen, ctx.settings, ctx.save
    sr, _ = gen.audio_rate()
    items = speech_items(s, "digit", s.limit, sr)
    grid = gen.image_grid()
    images: list[Tensor] = []
    bar = progress_bar(len(items), "eval s2i", s)
    for it in items:  # one at a time (prompts of different lengths)
        images += [seg.data for seg in gen([[Audio(data=it["audio"])]], "image", grid=grid)]
        bar.update(1)
    bar.close()
    said = [digit_from_text(it["caption"]) for it in items]
    labels = torch.tensor([-1 if d is None else d for d in said])
    pred = ctx.judges.classifier.predict(torch.stack(images))
    samples = [{"audio": save.audio(it["audio"], f"s2i/real-{i}", sr), "text": it["caption"],
                "file": save.image(x, f"s2i/gen-{i}"), "predicted": int(p)}
               for i, (it, x, p) in enumerate(zip(items[: save.n], images, pred))]
    return TaskResult({"accuracy": float((pred == labels).float().mean()), "n": len(items)}, samples)


TASK = EvalTask("s2i", run, (Headline("digit accuracy (judge CNN)", "accuracy"),),
                summary="spoken single digit -> image; the digit CNN says the spoken digit")
