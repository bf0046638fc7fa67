"""The one reader of presets and ``key=value`` overrides, with typed values (no omnitok imports).

YAML 1.1 (PyYAML) reads ``1e-3`` as the *string* '1e-3' (its floats need a dot); here every number is a
number: ``1e-3``, ``3e-4``, ``1.0e-4``, ``-2E5`` are floats, ``10`` and ``1_000`` ints, ``true`` a bool,
``[1, 2e-3]`` a list of numbers, ``null`` None, anything else a string. Presets (YAML files) and overrides
go through the same loader, so a value means the same on the command line as in a preset.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["apply_overrides", "load_yaml", "parse_value", "preset_file", "split_override"]

#: configs/<kind>/<name>.yaml: the named presets
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def preset_file(kind: str, name: str) -> Path:
    """``configs/<kind>/<name>.yaml``, or ``name`` itself when it is a path to a YAML file; a ValueError listing
    the known presets otherwise."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    path = CONFIG_DIR / kind / f"{name}.yaml"
    if not path.is_file():
        known = sorted(q.stem for q in (CONFIG_DIR / kind).glob("*.yaml"))
        raise ValueError(f"unknown {kind} preset {name!r} (no {path}); known presets: {known}")
    return path


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads exponent-only floats (``1e-3``) as floats, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """YAML text -> Python values, numbers typed as described in the module docstring."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def parse_value(text: str) -> Any:
    """One override value: ``'1e-3'`` -> 0.001, ``'7'`` -> 7, ``'true'`` -> True, ``'[1, 2]'`` -> [1, 2],
    ``''`` -> '' (an empty string, not None), ``'a:b'`` -> 'a:b'."""
    if text == "":
        return ""
    try:
        return load_yaml(text)
    except yaml.YAMLError:  # e.g. 'a: b: c' or '[1,' : not YAML, so it is the string itself
        return text


def split_override(item: str) -> tuple[list[str], Any]:
    """``'a.b.c=value'`` -> (['a', 'b', 'c'], typed value); ValueError for an item without ``=``."""
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like key=value (e.g. train.steps=100 or train.lr=1e-3)")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ValueError(f"override {item!r}: empty key part in {key!r}")
    return parts, parse_value(value)


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a nested dict in place (missing sections are created); returns it."""
    for item in overrides:
        parts, value = split_override(item)
        node = cfg
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return cfg
