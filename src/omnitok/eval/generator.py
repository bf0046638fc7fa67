"""The model under the vocabulary's grammar, as the eval tasks sample from it: :class:`Generator`.

Each call resolves the sampling settings of the task being judged (``EvalSettings.sampling[task]``), then of the
output modality (``EvalSettings.sampling[modality]``), then the three media-wide settings (``cfg_scale``,
``temperature``, ``top_k``); a keyword the task passes itself wins over all of them. Seeds follow the call count,
so a run with the same settings draws the same samples.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import Tensor

from omnitok.eval.settings import SAMPLING_KEYS, EvalSettings
from omnitok.generation.generate import GenerationRequest, generate

__all__ = ["Generator"]


class Generator:
    """``gen(prompts, produce, **kw) -> list of output segments``, ``kw`` being :class:`GenerationRequest` fields;
    ``gen.task`` names the task being judged."""

    def __init__(self, model: torch.nn.Module, vocab: Any, s: EvalSettings) -> None:
        self.model, self.vocab, self.s = model, vocab, s
        self.calls = 0
        self.task: str | None = None  # the task being judged (its sampling settings win over the modality's)
        self.stats: dict[str, list[Any]] = defaultdict(list)  # per task: generation stats of each call

    def __call__(self, prompts: list[Any], produce: str, **kw: Any) -> list[Any]:
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
        request = GenerationRequest(produce, seed=self.s.seed + self.calls).with_(**kw)
        out = generate(self.model, self.vocab, prompts, request=request)
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
        """(H, W) codes of an image of the settings' size."""
        codec = self.vocab.codecs["image"]
        g = codec.code_grid((3, self.s.image_size, self.s.image_size))
        return int(g[0]), int(g[1])

    def video_grid(self) -> tuple[int, int, int]:
        """(T, H, W) codes of a video of the settings' size and frames."""
        codec = self.vocab.codecs["video"]
        g = codec.code_grid((3, self.s.video_frames, self.s.video_size, self.s.video_size))
        return int(g[0]), int(g[1]), int(g[2])

    def audio_rate(self) -> tuple[int, float]:
        """(sample rate, audio frames per second) of the audio codec."""
        codec = self.vocab.codecs["audio"]
        sr = int(getattr(codec, "sample_rate", 16000))
        hop = int(getattr(codec, "hop", None) or codec.config.get("hop", 320))
        return sr, sr / hop

    @staticmethod
    def video_frames(data: Tensor) -> Tensor:
        """A decoded video (C, T, H, W), as every video codec decodes -> (T, C, H, W)."""
        return data.transpose(0, 1)
