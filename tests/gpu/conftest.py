"""GPU tests: skipped with the reason where CUDA is absent; a JSON report of every outcome when
``OMNITOK_TEST_REPORT`` names a file (scripts/gpu_check.sh sets it).

``OMNITOK_GPU_TESTS_DEVICE=cpu`` runs their bodies on the CPU instead (what needs CUDA itself then compares the
CPU with itself): a check of their plumbing on a machine without a GPU, not of CUDA.

The report holds, per test: outcome, seconds, the skip reason or the failure's last lines, and the figures a
test recorded with ``record_property`` (differences between bf16 and fp32, code agreement, ...).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

NO_GPU = ("needs a CUDA GPU: torch.cuda.is_available() is False on this machine "
          "(scripts/gpu_check.sh runs these where there is one)")

_REPORT: dict[str, dict[str, Any]] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available() or os.environ.get("OMNITOK_GPU_TESTS_DEVICE") == "cpu":
        return
    skip = pytest.mark.skip(reason=NO_GPU)
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not os.environ.get("OMNITOK_TEST_REPORT"):
        return
    rec = _REPORT.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0})
    rec["seconds"] = round(rec["seconds"] + report.duration, 3)
    if report.skipped:
        rec["outcome"] = "skipped"
        longrepr = report.longrepr
        rec["reason"] = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    elif report.failed:
        rec["outcome"] = "failed" if report.when == "call" else f"error in {report.when}"
        rec["message"] = "\n".join(str(report.longrepr).splitlines()[-15:])
    if report.user_properties:
        rec["figures"] = {k: v for k, v in report.user_properties}


def pytest_unconfigure(config: pytest.Config) -> None:
    path = os.environ.get("OMNITOK_TEST_REPORT")
    if not path:
        return
    counts: dict[str, int] = {}
    for rec in _REPORT.values():
        counts[rec["outcome"]] = counts.get(rec["outcome"], 0) + 1
    out = {"cuda_available": torch.cuda.is_available(), "counts": counts, "tests": _REPORT}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=2, default=str) + "\n")
