"""The eval harness: the registry of tasks, a task added by one module + one registry line, the summary table."""

from __future__ import annotations

import pkgutil

import pytest

import omnitok.eval.tasks as tasks_pkg
from omnitok.eval.harness import check_settings, evaluate_model, parse_sampling, summary_rows
from omnitok.eval.settings import EvalSettings
from omnitok.eval.tasks import TASKS, EvalContext, EvalTask, Headline, TaskResult


def test_every_task_module_is_registered_under_its_name():
    modules = {m.name for m in pkgutil.iter_modules(tasks_pkg.__path__) if not m.name.startswith("_")} - {"base"}
    registered = {t.run.__module__.rsplit(".", 1)[-1] for t in TASKS.values()}
    assert modules == registered  # a task module without its registry line (or the reverse) fails here
    for name, task in TASKS.items():
        assert task.name == name and task.headline, name


def _toy(ctx: EvalContext) -> TaskResult:
    if ctx.settings.extra.get("fail"):
        raise ValueError("toy/test holds no example")
    return TaskResult({"score": 0.25, "n": 4, "sub": {"f1": 0.5}}, [{"prompt": "a", "seed": ctx.settings.seed}])


@pytest.fixture
def toy(monkeypatch):
    task = EvalTask("toy", _toy, (Headline("toy score", "score"), Headline("toy f1", "f1", "{:.2f}", sub="sub")))
    monkeypatch.setitem(TASKS, "toy", task)
    return task


def test_a_new_task_is_one_module_and_one_registry_line(toy):
    res = evaluate_model(None, None, EvalSettings(tasks=("toy",), seed=3, progress=False,
                                                  sampling={"toy": {"best_of": 2}}))
    block = res["tasks"]["toy"]
    seconds = block.pop("seconds")  # the harness times every task, to the hundredth of a second
    assert isinstance(seconds, float) and seconds == round(seconds, 2)
    assert block == {"score": 0.25, "n": 4, "sub": {"f1": 0.5}, "samples": [{"prompt": "a", "seed": 3}]}
    assert res["settings"]["tasks"] == ["toy"] and res["judges"] == {}  # no judge was asked for
    assert [r for r in summary_rows(res) if r[0] == "toy"] == [("toy", "toy score", "25.0%"), ("toy", "toy f1", "0.50")]
    assert parse_sampling(["toy.top_k=5"]) == {"toy": {"top_k": 5}}


def test_a_failing_task_records_its_error_and_the_others_run(toy):
    res = evaluate_model(None, None, EvalSettings(tasks=("toy",), progress=False, extra={"fail": True}))
    assert res["tasks"]["toy"]["error"] == "ValueError: toy/test holds no example"
    # the error shows once per headline figure that is not in a sub-block
    assert [r for r in summary_rows(res) if r[0] == "toy"] == [("toy", "toy score",
                                                                "error: ValueError: toy/test holds no example")]


def test_check_settings():
    assert check_settings(EvalSettings()).tasks == tuple(TASKS)  # None = every registered task
    assert check_settings(EvalSettings(tasks=["s2t"])).tasks == ["s2t"]
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['t2x'\]"):
        check_settings(EvalSettings(tasks=("t2x",)))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['speech'\]"):
        check_settings(EvalSettings(sampling={"speech": {"best_of": 4}}))
