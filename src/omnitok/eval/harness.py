"""The harness of ``omnitok eval model``: checks the settings, loads the model, runs the registered tasks
(:data:`omnitok.eval.tasks.TASKS`) with shared judges, a sampling :class:`Generator` and a sample writer, and
builds eval.json and its summary table.

    model, vocab, vocab_dir = load_model_and_vocab("runs/lm", None)
    result = evaluate_model(model, vocab, settings_for(vocab_dir, tasks=["t2i", "i2t"], limit=50))
    for task, figure, value in summary_rows(result): ...
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from omnitok._overrides import parse_value
from omnitok.eval.generator import Generator
from omnitok.eval.judges.shared import Judges
from omnitok.eval.samples import SampleSaver
from omnitok.eval.settings import SAMPLED, SAMPLING_KEYS, EvalSettings
from omnitok.eval.tasks import TASKS, EvalContext
from omnitok.generation.loading import load_model

__all__ = ["check_settings", "evaluate_model", "load_model_and_vocab", "parse_sampling", "settings_for",
           "summary_rows", "write_result"]


def check_settings(s: EvalSettings) -> EvalSettings:
    """``s`` with ``tasks`` filled in (None = every registered task); ValueError naming an unknown task or an
    unknown key of ``s.sampling``."""
    tasks = tuple(TASKS) if s.tasks is None else tuple(s.tasks)
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f"--tasks: unknown task(s) {bad}; known: {', '.join(TASKS)}")
    bad = [k for k in s.sampling if k not in SAMPLED and k not in TASKS]
    if bad:
        raise ValueError(f"eval sampling: unknown key(s) {bad}; expected an output modality "
                         f"({', '.join(SAMPLED)}) or a task ({', '.join(TASKS)})")
    return s if s.tasks is not None else dataclasses.replace(s, tasks=tasks)


def evaluate_model(model: torch.nn.Module, vocab: Any, settings: EvalSettings,
                   judges: Judges | None = None) -> dict[str, Any]:
    """Run the judges for ``settings.tasks``; returns {"tasks": {name: figures}, "judges": ..., "settings": ...}.

    A task that cannot run (its data is not built, its codec is missing) records ``{"error": message}`` and the
    others still run."""
    s = check_settings(settings)
    torch.manual_seed(s.seed)
    gen = Generator(model, vocab, s)
    judges = judges if judges is not None else Judges(s.judge_dir, s.data_root, s.progress)
    sr = gen.audio_rate()[0] if "audio" in getattr(vocab, "codecs", {}) else 16000
    ctx = EvalContext(gen, judges, s, SampleSaver(s.samples_dir, s.num_samples_saved, sr))
    results: dict[str, Any] = {}
    for t in s.tasks:
        t0 = time.perf_counter()
        gen.task = t
        try:
            results[t] = TASKS[t].run(ctx).to_json()
        except (ValueError, KeyError) as e:
            results[t] = {"error": f"{type(e).__name__}: {e}"}
        rr = gen.rerank_summary(t)
        if rr is not None:
            results[t]["rerank"] = rr
        results[t]["seconds"] = round(time.perf_counter() - t0, 2)
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(s).items()}
    return {"tasks": results, "judges": judges.info(), "settings": cfg}


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(task, figure, value) rows of the headline figures of each task (``EvalTask.headline``), for tables; a
    task that failed shows its error in its first rows."""
    t = result.get("tasks", {})
    rows: list[tuple[str, str, str]] = []
    for name, task in TASKS.items():
        for h in task.headline:
            d = t.get(name, {})
            d = d.get(h.sub, {}) if h.sub else d
            if isinstance(d, dict) and d.get(h.key) is not None:
                rows.append((name, h.name, h.fmt.format(d[h.key])))
            elif name in t and "error" in t[name] and not h.sub:
                rows.append((name, h.name, "error: " + t[name]["error"][:80]))
    return rows


def parse_sampling(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["audio.cfg_scale=1", "audio.until_end=true", "t2s.best_of=4"]`` -> ``{"audio": {"cfg_scale": 1,
    "until_end": True}, "t2s": {"best_of": 4}}`` (typed values as in every override; a task name sets that task
    only)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        where, dot, name = key.partition(".")
        if not sep or not dot or (where not in SAMPLED and where not in TASKS) or name not in SAMPLING_KEYS:
            raise ValueError(f"--sampling {item!r}: expected WHERE.KEY=VALUE with WHERE an output modality "
                             f"({', '.join(SAMPLED)}) or a task ({', '.join(TASKS)}) and KEY one of "
                             f"{', '.join(SAMPLING_KEYS)}")
        out.setdefault(where, {})[name] = parse_value(value)
    return out


def _codec_preset(vocab_dir: Path, modality: str) -> dict[str, Any]:
    try:
        cfg = json.loads((vocab_dir / "codecs" / modality / "config.json").read_text())
        return dict((cfg.get("preset") or {}).get("data") or {})
    except (OSError, ValueError, AttributeError):
        return {}


def settings_for(vocab_dir: Path, **kw: Any) -> EvalSettings:
    """Settings whose image / video sizes follow the codecs' training presets (recorded in their config.json)."""
    img, vid = _codec_preset(vocab_dir, "image"), _codec_preset(vocab_dir, "video")
    kw.setdefault("image_size", int(img.get("size") or 32))
    kw.setdefault("video_size", int(vid.get("size") or 32))
    kw.setdefault("video_frames", int(vid.get("frames") or 9))
    return EvalSettings(**kw)


def load_model_and_vocab(ckpt: str, vocab: str | None, device: str = "auto") -> tuple[Any, Any, Path]:
    """(model in eval mode, vocabulary, vocabulary folder) for a model / checkpoint / run folder, loaded and
    checked against each other as ``omnitok generate`` loads them."""
    model, voc, _, vocab_dir = load_model(ckpt, vocab, device)
    return model.eval(), voc, vocab_dir


def write_result(result: dict[str, Any], out: str | Path) -> Path:
    """eval.json: the result as indented JSON."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return path
