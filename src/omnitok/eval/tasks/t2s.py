"""t2s: held-out digit string -> speech, judged by pocketsphinx's WER (digit grammar) per engine, beside the same
judge's WER on the real recordings. A speech build with voice prompts (speech voice_prompt=1) is prompted with the
clip's ``prompt`` ("[voice: slt] three seven one"): WER per voice asked for, and per seen / unseen voice."""

from __future__ import annotations

from collections import defaultdict

from torch import Tensor

from omnitok.eval.heldout import batches, progress_bar, speech_items
from omnitok.eval.tasks._speech import audio_frames, until_end, voice_group, wer_block
from omnitok.eval.tasks.base import EvalContext, EvalTask, Headline, TaskResult
from omnitok.vocab.document import Text

__all__ = ["TASK", "run"]


def run(ctx: EvalContext) -> TaskResult:
    gen, s, save, asr = ctx.gen, ctx.settings, ctx.save, ctx.judges.asr
    sr, fps = gen.audio_rate()
    items = speech_items(s, "digits", s.limit, sr)
    # group by the number of digits. Fixed length (the default): each group's audio gets the mean duration of
    # its reference recordings (a length prior). With sampling.audio.until_end the model ends the speech itself
    # and that length, x UNTIL_END_SLACK, is only the cap.
    free = until_end(s, "t2s")
    groups: dict[int, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        groups[len(it["caption"].split())].append(i)
    hyps: dict[int, str] = {}
    audio: dict[int, Tensor] = {}
    bar = progress_bar(len(items), "eval t2s", s)
    for _, idx in sorted(groups.items()):
        dur = sum(items[i]["audio"].shape[-1] for i in idx) / len(idx) / sr
        T = audio_frames(dur, fps, s, "t2s")
        for chunk in batches(idx, s.batch_size):
            prompts = [str(items[i]["meta"].get("prompt") or items[i]["caption"]) for i in chunk]
            out = gen([[Text(p)] for p in prompts], "audio", grid=(T,), max_new_tokens=None)
            for i, seg in zip(chunk, out):
                audio[i] = seg.data
                hyps[i] = asr.transcribe(seg.data.reshape(-1).numpy(), sr, mode="digits")
            bar.update(len(chunk))
    bar.close()
    refs = [it["caption"] for it in items]
    engines = [str(it["meta"].get("engine", "?")) for it in items]
    prompted = any("prompt" in it["meta"] for it in items)
    groups = [voice_group(it["meta"]) for it in items]
    voices = [str(it["meta"].get("voice", "?")) for it in items] if prompted else None
    res = wer_block([(refs[i], hyps[i]) for i in range(len(items))], engines, groups, voices)
    real = [(r, asr.transcribe(it["audio"].reshape(-1).numpy(), sr, mode="digits")) for r, it in zip(refs, items)]
    res["real_recordings"] = wer_block(real, engines, groups, voices)
    if prompted:
        res["voice_prompts"] = True
    res["duration_s"] = {"generated": sum(audio[i].shape[-1] for i in audio) / len(items) / sr,
                         "real": sum(it["audio"].shape[-1] for it in items) / len(items) / sr,
                         "length": "model ends it" if free else "fixed per group"}
    samples = [{"text": refs[i], "file": save.audio(audio[i], f"t2s/gen-{i}", sr), "asr": hyps[i],
                "real_file": save.audio(items[i]["audio"], f"t2s/real-{i}", sr), "engine": engines[i]}
               for i in range(min(save.n, len(items)))]
    return TaskResult(res, samples)


TASK = EvalTask("t2s", run, (Headline("WER (pocketsphinx, digit grammar)", "wer"),
                             Headline("WER of the real recordings", "wer", sub="real_recordings")),
                summary="digit string -> speech; pocketsphinx WER (digit grammar) per engine, real recordings beside")
