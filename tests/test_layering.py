"""The dependency direction of DESIGN.md: lower layers never import higher ones."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "omnitok"

# package -> omnitok packages it must never import
FORBIDDEN = {
    "io": {"nn", "quantizers", "codecs", "vocab", "model", "generation", "data", "train", "eval", "cli", "quickstart"},
    "quantizers": {"codecs", "vocab", "model", "generation", "data", "train", "eval", "cli", "quickstart"},
    "nn": {"codecs", "vocab", "model", "generation", "data", "train", "eval", "cli", "quickstart"},
    "model": {"codecs", "vocab", "generation", "data", "train", "eval", "cli", "quickstart"},
    "align": {"codecs", "vocab", "model", "generation", "data", "train", "eval", "cli", "quickstart"},
    "codecs": {"vocab", "model", "generation", "data", "train", "eval", "cli", "quickstart"},
    "vocab": {"model", "generation", "train", "eval", "cli", "quickstart"},
    "generation": {"train", "cli", "quickstart"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("omnitok."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("omnitok."):
                    found.add(alias.name.split(".")[1])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_imports(package: str) -> None:
    bad = []
    for path in sorted((SRC / package).rglob("*.py")):
        if path.name == "commands.py":  # command-line layers sit on top of everything (like cli.py)
            continue
        hit = _imports(path) & FORBIDDEN[package]
        if hit:
            bad.append(f"{path.relative_to(SRC)} imports omnitok.{sorted(hit)}")
    assert not bad, "upward imports:\n" + "\n".join(bad)
