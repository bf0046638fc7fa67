"""s2t: held-out spoken digit string -> transcript, judged by WER against the true transcript, per engine."""

from __future__ import annotations

from omnitok.eval.heldout import progress_bar, speech_items
from omnitok.eval.tasks._speech import wer_block
from omnitok.eval.tasks.base import EvalContext, EvalTask, Headline, TaskResult
from omnitok.vocab.document import Audio

__all__ = ["TASK", "run"]


def run(ctx: EvalContext) -> TaskResult:
    gen, s, save = ctx.gen, ctx.settings, ctx.save
    sr, _ = gen.audio_rate()
    items = speech_items(s, "digits", s.limit, sr)
    hyps: list[str] = []
    bar = progress_bar(len(items), "eval s2t", s)
    for it in items:  # one at a time: prompts of different lengths would need padding inside the codec
        hyps += [seg.text or "" for seg in gen([[Audio(data=it["audio"])]], "text")]
        bar.update(1)
    bar.close()
    refs = [it["caption"] for it in items]
    engines = [str(it["meta"].get("engine", "?")) for it in items]
    samples = [{"file": save.audio(it["audio"], f"s2t/real-{i}", sr), "text": r, "transcript": h, "engine": e}
               for i, (it, r, h, e) in enumerate(zip(items[: save.n], refs, hyps, engines))]
    return TaskResult(wer_block(list(zip(refs, hyps)), engines), samples)


TASK = EvalTask("s2t", run, (Headline("WER of the model's transcripts", "wer"),),
                summary="spoken digit string -> transcript; WER per engine")
