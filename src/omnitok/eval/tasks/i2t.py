"""i2t: held-out digit image -> caption, judged by the digit the caption names; held-out emoji image -> name,
judged by exact match and MiniLM similarity to the true name."""

from __future__ import annotations

import re
from typing import Any

from omnitok.eval.heldout import balanced_digits, batches, examples, progress_bar
from omnitok.eval.judges.digit_text import digit_from_text
from omnitok.eval.tasks.base import EvalContext, EvalTask, Headline, TaskResult
from omnitok.vocab.document import Image

__all__ = ["TASK", "norm_name", "run"]


def norm_name(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces: "Grinning Face!" -> "grinning face"."""
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())


def run(ctx: EvalContext) -> TaskResult:
    gen, s, save = ctx.gen, ctx.settings, ctx.save
    items = balanced_digits(s, s.limit)
    caps: list[str] = []
    bar = progress_bar(len(items), "eval i2t", s)
    for chunk in batches(items, s.batch_size):
        caps += [seg.text or "" for seg in gen([[Image(data=it["image"])] for it in chunk], "text")]
        bar.update(len(chunk))
    bar.close()
    labels = [int(it["label"]) for it in items]
    said = [digit_from_text(c) for c in caps]
    res: dict[str, Any] = {"accuracy": sum(int(a == b) for a, b in zip(said, labels)) / len(items), "n": len(items)}
    samples = [{"file": save.image(it["image"], f"i2t/digit-{i}"), "label": lab, "caption": c}
               for i, (it, lab, c) in enumerate(zip(items[: save.n], labels, caps))]
    try:
        emoji = examples("emoji", s, lambda m: True, s.emoji_limit, image_size=s.image_size)
    except ValueError:
        emoji = []
    if emoji:
        names: list[str] = []
        for chunk in batches(emoji, s.batch_size):
            names += [seg.text or "" for seg in gen([[Image(data=it["image"])] for it in chunk], "text")]
        truth = [it["caption"] for it in emoji]
        exact = [norm_name(a) == norm_name(b) for a, b in zip(names, truth)]
        sim = ctx.judges.minilm.similarity(names, truth)
        res["emoji"] = TaskResult(
            {"exact_match": sum(exact) / len(exact), "minilm_similarity": float(sim.mean()), "n": len(emoji)},
            [{"file": save.image(it["image"], f"i2t/emoji-{i}"), "name": t, "generated": g, "similarity": float(v)}
             for i, (it, t, g, v) in enumerate(zip(emoji[: save.n], truth, names, sim))]).to_json()
    return TaskResult(res, samples)


TASK = EvalTask("i2t", run, (Headline("digit label accuracy", "accuracy"),
                             Headline("emoji exact match", "exact_match", sub="emoji"),
                             Headline("emoji MiniLM similarity", "minilm_similarity", "{:.3f}", sub="emoji")),
                summary="digit image -> caption (label accuracy); emoji image -> name (exact match, MiniLM)")
