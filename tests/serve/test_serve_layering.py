"""serve/ sits on top (DESIGN.md): it uses generation, the model, the vocabulary, codecs, io and the data loaders'
helpers, never the trainers, the evaluation or the quickstart; and only the command line imports it."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "omnitok"


def omnitok_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        found |= {n.split(".")[1] for n in names if n.startswith("omnitok.")}
    return found


def test_serve_imports_no_trainer_eval_or_quickstart():
    bad = {str(p.relative_to(SRC)): omnitok_imports(p) & {"train", "eval", "quickstart", "cli", "recipes"}
           for p in (SRC / "serve").rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}


def test_nothing_below_imports_serve():
    users = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
             if p.parent.name != "serve" and "serve" in omnitok_imports(p)]
    assert users == []
