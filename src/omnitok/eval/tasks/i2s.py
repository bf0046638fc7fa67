"""i2s: held-out digit image -> speech, judged by whether pocketsphinx (digit grammar) hears the image's digit."""

from __future__ import annotations

from torch import Tensor

from omnitok.eval.heldout import balanced_digits, batches, progress_bar, speech_items
from omnitok.eval.judges.digit_text import DIGIT_WORDS, digit_from_text
from omnitok.eval.tasks._speech import audio_frames
from omnitok.eval.tasks.base import EvalContext, EvalTask, Headline, TaskResult
from omnitok.eval.wer import corpus_wer
from omnitok.vocab.document import Image

__all__ = ["TASK", "run"]


def run(ctx: EvalContext) -> TaskResult:
    gen, s, save, asr = ctx.gen, ctx.settings, ctx.save, ctx.judges.asr
    sr, fps = gen.audio_rate()
    ref_items = speech_items(s, "digit", 20, sr)  # real single spoken digits: their mean length is the target
    dur = sum(it["audio"].shape[-1] for it in ref_items) / len(ref_items) / sr
    T = audio_frames(dur, fps, s, "i2s")
    items = balanced_digits(s, s.limit)
    hyps: list[str] = []
    audio: list[Tensor] = []
    bar = progress_bar(len(items), "eval i2s", s)
    for chunk in batches(items, s.batch_size):
        for seg in gen([[Image(data=it["image"])] for it in chunk], "audio", grid=(T,)):
            audio.append(seg.data)
            hyps.append(asr.transcribe(seg.data.reshape(-1).numpy(), sr, mode="digits"))
        bar.update(len(chunk))
    bar.close()
    labels = [int(it["label"]) for it in items]
    said = [digit_from_text(h) for h in hyps]
    samples = [{"file": save.image(it["image"], f"i2s/digit-{i}"), "label": lab,
                "audio": save.audio(a, f"i2s/gen-{i}", sr), "asr": h}
               for i, (it, lab, a, h) in enumerate(zip(items[: save.n], labels, audio, hyps))]
    return TaskResult({"accuracy": sum(int(a == b) for a, b in zip(said, labels)) / len(items),
                       "wer": corpus_wer([(DIGIT_WORDS[lab], h) for lab, h in zip(labels, hyps)]),
                       "n": len(items)}, samples)


TASK = EvalTask("i2s", run, (Headline("spoken digit accuracy (ASR)", "accuracy"),),
                summary="digit image -> speech; pocketsphinx (digit grammar) says the image's digit")
