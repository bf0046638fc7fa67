"""The dependency arrows of DESIGN.md, checked for every module of src/omnitok: a module imports only its own
layer, the layers its layer may use, and the dependency-free helpers ``omnitok/_*.py``. Imports count in every
form: ``import``, ``from ... import``, inside functions, under TYPE_CHECKING, and module names handed to
``importlib`` (any string constant that is an ``omnitok.`` module path, or an f-string that starts with one)."""

from __future__ import annotations

import ast
import functools
import shutil
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "omnitok"

#: DESIGN.md's arrows, layer -> layers it may import directly; what those may import is allowed too (below).
#: ``codecs.base`` (the Codec interface) is the one module of a layer that a layer may use without the rest.
ARROWS: dict[str, set[str]] = {
    "_base": set(),  # omnitok/_io.py, _malloc.py, ...: helpers every layer shares, importing no omnitok layer
    "io": set(),
    "nn": set(),
    "quantizers": set(),
    "codecs": {"quantizers", "nn", "io"},
    "vocab": {"codecs.base"},
    "model": {"nn"},
    "diffusion": {"nn"},
    "align": {"nn"},
    "generation": {"model", "vocab", "diffusion"},
    "data": {"vocab", "codecs", "io"},
    # eval: DESIGN.md's codecs, vocab, generation; and data (the held-out splits it judges on), align and
    # diffusion ("the comparison points ... judged by the same evaluation")
    "eval": {"codecs", "vocab", "generation", "data", "align", "diffusion"},
    "train": {"io", "nn", "quantizers", "codecs", "vocab", "model", "diffusion", "align", "generation", "data",
              "eval"},
    "report": {"eval"},
    "api": {"io", "nn", "quantizers", "codecs", "vocab", "model", "diffusion", "align", "generation", "data",
            "eval"},  # omnitok/__init__.py: the flat public API of the components
    "builders": {"train"},
    "recipes": {"builders", "train", "report"},
    "serve": {"recipes", "generation"},
    "cli": {"recipes", "serve"},
}
#: top-level modules of omnitok/ and the layer each belongs to (a package is its own layer)
TOP_MODULES = {"__init__": "api", "cli": "cli", "quickstart": "recipes", "info": "recipes", "builders": "builders"}


def allowed(layer: str) -> set[str]:
    """Every layer (or ``layer.module``) ``layer`` may import: its arrows, transitively, and the helpers."""
    seen: set[str] = {"_base"}
    todo = list(ARROWS[layer])
    while todo:
        t = todo.pop()
        if t not in seen:
            seen.add(t)
            todo += ARROWS.get(t, set())
    return seen


def layer_of_file(path: Path, src: Path) -> str:
    rel = path.relative_to(src)
    if len(rel.parts) > 1:
        return rel.parts[0]
    if rel.stem.startswith("_") and rel.stem != "__init__":
        return "_base"
    return TOP_MODULES.get(rel.stem, rel.stem)


def layer_of_module(name: str, src: Path) -> tuple[str, str]:
    """``omnitok.codecs.base.X`` -> ("codecs", "codecs.base"): the layer and its first module."""
    parts = name.split(".")[1:]
    if not parts:
        return "api", "api"
    head = parts[0]
    if not (src / head).is_dir():  # a top-level module
        layer = "_base" if head.startswith("_") else TOP_MODULES.get(head, head)
        return layer, layer
    return head, ".".join(parts[:2])


def omnitok_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module name) of every omnitok module ``path`` imports or names for importlib."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "omnitok":
                found += [(node.lineno, f"omnitok.{a.name}") for a in node.names]
            elif node.module.startswith("omnitok."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, f"relative import (level {node.level}) {node.module or ''}"))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("omnitok.")]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("omnitok."):
            if all(p.isidentifier() for p in node.value.split(".")):  # a module path, not prose
                found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            head = str(node.values[0].value).split(".")
            if head[0] == "omnitok" and len(head) > 2 and head[1].isidentifier():  # f"omnitok.eval.{x}_codec"
                found.append((node.lineno, f"omnitok.{head[1]}"))
    return found


def violations(src: Path) -> list[str]:
    """Every import in ``src`` (a copy of src/omnitok) that DESIGN.md's arrows do not allow."""
    bad = []
    for path in sorted(src.rglob("*.py")):
        layer = layer_of_file(path, src)
        if layer not in ARROWS:
            bad.append(f"{path.relative_to(src)}: layer {layer!r} is not in DESIGN.md's layout")
            continue
        ok = allowed(layer)
        for line, name in omnitok_imports(path):
            if name.startswith("relative import"):
                bad.append(f"{path.relative_to(src)}:{line}: {name} (write omnitok.... in full)")
                continue
            target, module = layer_of_module(name, src)
            if target != layer and target not in ok and module not in ok:
                bad.append(f"{path.relative_to(src)}:{line}: {layer} -> {name}")
    return bad


def check(src: Path, found: list[str] | None = None) -> None:
    """AssertionError listing every import in ``src`` against the arrows (``found``: violations(src) if already
    known). There are no exemptions."""
    found = violations(src) if found is None else found
    assert not found, "imports against DESIGN.md's arrows:\n" + "\n".join(found)


@functools.cache
def _tree_violations() -> tuple[str, ...]:
    return tuple(violations(SRC))


def test_every_import_follows_the_arrows() -> None:
    check(SRC, list(_tree_violations()))


def test_the_matrix_runs_one_way() -> None:
    """No layer reaches a layer that reaches back to it: the allowed arrows form no cycle."""
    for layer in ARROWS:
        for other in allowed(layer) - {layer, "_base"}:
            base = other.split(".")[0]
            assert layer not in allowed(base) or base == layer, f"{layer} <-> {base}"
    assert allowed("quantizers") == {"_base"} and allowed("io") == {"_base"}
    assert "codecs" not in allowed("model") and "vocab" not in allowed("model")


def _copy_src(tmp_path: Path) -> Path:
    dst = tmp_path / "omnitok"
    shutil.copytree(SRC, dst, ignore=lambda d, names: [n for n in names if n == "__pycache__" or (
        not n.endswith(".py") and not (Path(d) / n).is_dir())])  # the Python files, nothing else
    return dst


@pytest.mark.parametrize(
    ("where", "code", "expect"),
    [
        ("quantizers/_planted.py", "from omnitok.codecs.image import ImageCodec\n", "quantizers -> omnitok.codecs.image"),
        ("io/_planted.py", "def f():\n    from omnitok import data\n", "io -> omnitok.data"),
        ("codecs/_planted.py", "import omnitok.data.dataset\n", "codecs -> omnitok.data.dataset"),
        ("model/_planted.py", "import importlib\nM = importlib.import_module('omnitok.vocab.vocabulary')\n",
         "model -> omnitok.vocab.vocabulary"),
        ("nn/_planted.py", "import importlib\ndef f(x):\n    return importlib.import_module(f'omnitok.train.{x}')\n",
         "nn -> omnitok.train"),
        ("vocab/_planted.py", "TABLE = {'image': 'omnitok.codecs.image'}\n", "vocab -> omnitok.codecs.image"),
        ("eval/_planted.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from omnitok.train.lm import train\n",
         "eval -> omnitok.train.lm"),
        ("_planted.py", "from omnitok.codecs.base import Codec\n", "_base -> omnitok.codecs.base"),
        ("data/_planted.py", "from .tokenize import tokenize\n", "relative import"),
        ("generation/_planted.py", "def f():\n    from omnitok.recipes.generate import run\n",
         "generation -> omnitok.recipes.generate"),
    ],
)
def test_a_planted_upward_import_fails(tmp_path: Path, where: str, code: str, expect: str) -> None:
    src = _copy_src(tmp_path)
    (src / where).write_text(code)
    after = violations(src)
    new = sorted(set(after) - set(_tree_violations()))  # the copy is the tree plus the planted file
    assert len(new) == 1 and new[0].startswith(where) and expect in new[0], new
    with pytest.raises(AssertionError, match="against DESIGN.md's arrows") as err:
        check(src, after)
    assert where in str(err.value)


def test_the_same_layer_and_the_interface_are_allowed(tmp_path: Path) -> None:
    src = _copy_src(tmp_path)
    before = set(_tree_violations())
    (src / "vocab" / "_planted.py").write_text("from omnitok.codecs.base import Codec\nfrom omnitok.vocab import grammar\n")
    (src / "train" / "_planted.py").write_text("from omnitok.eval.grids import image_grid\nfrom omnitok._io import read_json\n")
    assert set(violations(src)) == before
