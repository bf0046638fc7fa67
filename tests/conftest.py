"""Shared test settings: small tensors run fastest single-threaded on these 2-core machines."""

import torch

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture
def cli_error(capsys):
    """``cli_error(argv, match)``: ``omnitok ARGV`` must fail with exit code 2 and print its error as one line
    ``omnitok <command>: error: ...`` containing ``match`` (no traceback); returns that line."""
    import re

    from omnitok.cli import main

    def run(argv: list[str], match: str, code: int = 2) -> str:
        capsys.readouterr()
        assert main(argv) == code
        err = capsys.readouterr().err
        assert "Traceback" not in err, err
        lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("omnitok ")]
        assert len(lines) == 1 and ": error: " in lines[0], err
        assert re.search(match, lines[0]), lines[0]
        return lines[0]

    return run
