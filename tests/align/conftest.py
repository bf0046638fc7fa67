"""Small real slices of digits, emoji and spoken digits for the alignment tests, built once per test module
that asks for them.

npm packages come from the persistent test npm cache (``~/.cache/omnitok-test-npm``, as in tests/data); the
slices go to a temporary cache root, never to the user's ``~/.cache/omnitok``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omnitok.data.build import build_dataset

SPLITS = "train=0.7,val=0.15,test=0.15"  # enough held-out pairs in a slice for the eval test


@pytest.fixture(scope="module")
def align_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    npm = Path(os.environ.get("OMNITOK_TEST_NPM_DIR", Path.home() / ".cache" / "omnitok-test-npm"))
    npm.mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("align_data")
    common = {"root": root, "progress": False, "npm_root": npm, "splits": SPLITS, "allow_apt": False}
    build_dataset("digits", limit=120, **common)
    build_dataset("emoji", limit=60, size=32, **common)
    build_dataset("speech", limit=60, options={"digits": "60", "single_digits": "0", "emoji": "0", "sentences": "0",
                                               "engines": "flite", "workers": "2"}, **common)
    return root
