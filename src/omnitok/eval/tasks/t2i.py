"""t2i: "the digit k" -> image (k = 0..9), judged by the digit CNN (accuracy, per digit) and FID against held-out
digits; emoji names -> image are shown in the report, not scored (no emoji judge is defined)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from omnitok.eval.fid import InceptionFID
from omnitok.eval.heldout import balanced_digits, batches, examples, progress_bar
from omnitok.eval.judges.digit_text import DIGIT_WORDS
from omnitok.eval.tasks.base import EvalContext, EvalTask, Headline, TaskResult
from omnitok.vocab.document import Text

__all__ = ["TASK", "run"]


def run(ctx: EvalContext) -> TaskResult:
    gen, s, save = ctx.gen, ctx.settings, ctx.save
    per = max(1, s.limit // 10)
    prompts = [f"the digit {DIGIT_WORDS[k]}" for k in range(10) for _ in range(per)]
    labels = torch.tensor([k for k in range(10) for _ in range(per)])
    grid = gen.image_grid()
    images: list[Tensor] = []
    bar = progress_bar(len(prompts), "eval t2i", s)
    for chunk in batches(prompts, s.batch_size):
        images += [seg.data for seg in gen([[Text(p)] for p in chunk], "image", grid=grid)]
        bar.update(len(chunk))
    bar.close()
    x = torch.stack(images)  # (N, C, H, W)
    pred = ctx.judges.classifier.predict(x)
    per_digit = {str(k): float((pred[labels == k] == k).float().mean()) for k in range(10)}
    res: dict[str, Any] = {"accuracy": float((pred == labels).float().mean()), "n": len(prompts),
                           "per_digit": per_digit, "grid": list(grid)}
    if s.fid and len(x) >= 2:
        real = torch.stack([it["image"] for it in balanced_digits(s, max(len(x), 100))])
        fid = InceptionFID()
        fid.real.append(fid.features(real))
        fid.fake.append(fid.features(x))
        res["fid"] = fid.score()
        res["fid_images"] = {"generated": len(x), "real": len(real)}
    grid_rows = []
    for k in range(10):  # one row per digit for the report
        grid_rows.append([save.image(x[k * per + i], f"t2i/digit{k}-{i}") for i in range(min(per, 8))])
    samples = [{"prompt": prompts[k * per], "files": grid_rows[k],
                "predicted": [int(p) for p in pred[k * per : k * per + min(per, 8)]]} for k in range(10)]
    try:
        emoji = examples("emoji", s, lambda m: True, s.emoji_limit, image_size=s.image_size)
    except ValueError:
        emoji = []
    if emoji:
        names = [it["caption"] for it in emoji[: min(len(emoji), 8)]]
        out = gen([[Text(n)] for n in names], "image", grid=grid)
        res["emoji_samples"] = [{"prompt": n, "file": save.image(seg.data, f"t2i/emoji-{i}"),
                                 "real": save.image(emoji[i]["image"], f"t2i/emoji-real-{i}")}
                                for i, (n, seg) in enumerate(zip(names, out))]
    return TaskResult(res, samples)


TASK = EvalTask("t2i", run, (Headline("digit accuracy (judge CNN)", "accuracy"),
                             Headline("FID vs held-out digits", "fid", "{:.1f}")),
                summary='"the digit k" -> image; digit CNN accuracy, FID vs held-out digits')
