"""What ``omnitok eval model`` judges and how: :class:`EvalSettings` and the names of its sampling settings.

The task names themselves are the keys of the registry in :mod:`omnitok.eval.tasks`; the harness
(:mod:`omnitok.eval.harness`) checks settings against them before any task runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MEDIA", "SAMPLED", "SAMPLING_KEYS", "EvalSettings"]

#: keys of ``EvalSettings.sampling[modality or task]``; ``best_of`` / ``rerank``: keep the best of N candidates by
#: the model's own reverse-task score (generation/rerank.py); ``method`` / ``steps``: the decoder (e.g. ``t2i.method=
#: masked``, ``t2i.steps=8``: masked parallel decoding, generation/masked.py); ``until_end`` (audio): the model ends
#: the speech itself
SAMPLING_KEYS = ("cfg_scale", "temperature", "top_k", "top_p", "best_of", "rerank", "method", "steps",
                 "until_end")  # until_end last (audio only)
MEDIA = ("image", "audio", "video")
#: the modalities whose sampling --sampling sets; text (captions, transcripts) is greedy unless it is set
SAMPLED = ("text", *MEDIA)


@dataclass
class EvalSettings:
    """What to judge and how. ``limit``: held-out examples per task (t2i: prompts per digit = limit // 10).
    ``tasks``: None = every registered task (:data:`omnitok.eval.tasks.TASKS`)."""

    tasks: Sequence[str] | None = None
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
    # settings above for that modality; per task (a task name, e.g. {"t2s": {"best_of": 4}}), wins over its
    # output modality's settings for that task only
    sampling: dict[str, dict[str, Any]] = field(default_factory=dict)
    split: str = "test"  # held-out split to judge on; "val" for choosing settings without touching test
    samples_dir: str | None = None  # write PNG / WAV / MP4 of the first few samples here
    num_samples_saved: int = 10
    progress: bool = True
    judge_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
