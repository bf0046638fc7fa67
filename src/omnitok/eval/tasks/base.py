"""The contract of an eval task of the unified model: :class:`EvalTask`, what it is handed (:class:`EvalContext`)
and what it returns (:class:`TaskResult`).

A task is one module of this package defining ``TASK = EvalTask(name, run, headline)``; ``run(ctx)`` samples
through ``ctx.gen``, judges through ``ctx.judges``, picks prompts from held-out data (:mod:`omnitok.eval.heldout`)
and writes a few media files through ``ctx.save``. The registry (:data:`omnitok.eval.tasks.TASKS`) lists the
tasks; the harness (:mod:`omnitok.eval.harness`) runs them and builds eval.json and its table from their results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omnitok.eval.generator import Generator
from omnitok.eval.judges.shared import Judges
from omnitok.eval.samples import SampleSaver
from omnitok.eval.settings import EvalSettings

__all__ = ["EvalContext", "EvalTask", "Headline", "TaskResult"]


@dataclass
class EvalContext:
    """What every task is handed: the model to sample (``gen``), the judges, the settings, the sample writer."""

    gen: Generator
    judges: Judges
    settings: EvalSettings
    save: SampleSaver


@dataclass
class TaskResult:
    """What every task returns. ``figures``: its numbers (and nested blocks such as i2t's ``emoji``), the keys of
    eval.json's ``tasks.<name>``; ``samples``: a few examples with their media files, for the report."""

    figures: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """eval.json's ``tasks.<name>`` block: the figures and ``samples``."""
        return {**self.figures, "samples": self.samples}


@dataclass(frozen=True)
class Headline:
    """One row of the summary table: ``name`` shown for ``figures[key]`` (or ``figures[sub][key]``), formatted
    with ``fmt``."""

    name: str
    key: str
    fmt: str = "{:.1%}"
    sub: str | None = None


@dataclass(frozen=True)
class EvalTask:
    """A task: its name (``--tasks``, eval.json's key, ``--sampling <name>.key=value``), its run function and its
    headline figures (the table the CLI, the quickstart report and docs/results.md show)."""

    name: str
    run: Callable[[EvalContext], TaskResult]
    headline: tuple[Headline, ...]
    summary: str = ""  # one line: what the model does and who judges it
