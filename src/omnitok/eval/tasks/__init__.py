"""The eval tasks of the unified model, one module each, and their registry :data:`TASKS`.

Adding a task = a module here defining ``TASK = EvalTask(name, run, headline)`` (see :mod:`.base`) and one line in
``TASKS`` below; ``--tasks``, ``--sampling <name>.key=value``, eval.json and the summary table then know it.
The order of ``TASKS`` is the default ``--tasks`` order and the order of the summary table.
"""

from __future__ import annotations

from omnitok.eval.tasks import i2s, i2t, s2i, s2t, t2i, t2s, t2v, text, v2t
from omnitok.eval.tasks.base import EvalContext, EvalTask, Headline, TaskResult

__all__ = ["TASKS", "EvalContext", "EvalTask", "Headline", "TaskResult"]

#: task name -> task, one line per task
TASKS: dict[str, EvalTask] = {
    "t2i": t2i.TASK,
    "i2t": i2t.TASK,
    "t2s": t2s.TASK,
    "s2t": s2t.TASK,
    "t2v": t2v.TASK,
    "v2t": v2t.TASK,
    "i2s": i2s.TASK,
    "s2i": s2i.TASK,
    "text": text.TASK,
}
