"""Type and range checks for config dataclasses read from files (config.json, YAML presets, overrides).

``check_fields(Cls, mapping, where)`` raises one ``ValueError`` that names the file (``where``), the key, what
was found and what is expected, before a constructor turns a wrong value into a torch or Python internal error
(``size mismatch for embed_tokens.weight`` from a ``"dim": "64"``). No omnitok imports: every layer may use it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

__all__ = ["check_fields", "check_mapping"]


def check_mapping(obj: Any, where: str) -> dict[str, Any]:
    """``obj`` if it is a JSON object / YAML mapping, else a ValueError naming ``where``."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object / mapping of settings, got a {type(obj).__name__}")
    return obj


def _accepts(tp: Any, value: Any) -> bool:
    """Whether ``value`` fits the annotation ``tp`` (int, float, bool, str, None, lists, dicts, unions, Any)."""
    if tp is Any or tp is object:
        return True
    if tp is type(None) or tp is None:
        return value is None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, value) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return not args or all(_accepts(args[0], v) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    return True  # an annotation this checker does not know: the constructor decides


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def check_fields(cls: type, values: dict[str, Any], where: str, ignore: tuple[str, ...] = ()) -> None:
    """Every key of ``values`` is a field of the dataclass ``cls`` and its value fits the field's type.

    ``where`` names the source (a file path, ``"--preset small"``); ``ignore`` lists keys that may be present
    but are not fields (e.g. ``model_class``)."""
    check_mapping(values, where)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names - set(ignore))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; expected some of {sorted(names)}")
    for key, value in values.items():
        if key in names and not _accepts(hints[key], value):
            raise ValueError(f"{where}: {key} = {value!r} ({type(value).__name__}) is not a valid "
                             f"{_name(hints[key])}")
