"""s2t: held-out spoken digit string -> transcript, judged by WER against the true transcript, per engine and, for a
speech build with held-out voices, per seen / unseen voice; transcripts over twice their reference are counted."""

from __future__ import annotations

from omnitok.eval.heldout import progress_bar, speech_items
from omnitok.eval.tasks._speech import voice_group, wer_block
from omnitok.eval.tasks.base import EvalContext, EvalTask, Headline, TaskResult
from omnitok.eval.wer import normalize_text
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
    groups = [voice_group(it["meta"]) for it in items]
    res = wer_block(list(zip(refs, hyps)), engines, groups)
    res["over_twice_reference"] = sum(len(normalize_text(h)) > 2 * len(normalize_text(r)) for r, h in zip(refs, hyps))
    samples = [{"file": save.audio(it["audio"], f"s2t/real-{i}", sr), "text": r, "transcript": h, "engine": e,
                "voice": str(it["meta"].get("voice", "?")), "group": g}
               for i, (it, r, h, e, g) in enumerate(zip(items[: save.n], refs, hyps, engines, groups))]
    return TaskResult(res, samples)


TASK = EvalTask("s2t", run, (Headline("WER of the model's transcripts", "wer"),),
                summary="spoken digit string -> transcript; WER per engine and per seen / unseen voice")
