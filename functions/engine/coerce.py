"""Coerce config values (often strings from papermill ``-p`` or the command line) to their declared types.

``coerce_fields(StudyConfig, kwargs)`` turns ``"false"`` into ``False``, ``"[0.05]"`` into ``[0.05]``,
``"8"`` into ``8`` … and raises :class:`CoercionError` (a ``ValueError``) naming the field, the value and the
expected type instead of letting a wrong value through silently (``bool("false")`` is ``True``).

Standard library only: ``functions.engine.config`` imports this module and must stay light.
"""
from __future__ import annotations

import ast
import functools
import json
import math
import numbers
import os
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any

TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")
NONE_WORDS = ("none", "null", "")


class CoercionError(ValueError):
    """A value cannot be read as its field's type; ``field``, ``value`` and ``expected`` say which."""

    def __init__(self, field: str, value: Any, expected: str):
        self.field, self.value, self.expected = field, value, expected
        super().__init__(f"{field}: expected {expected}, got {value!r}")


# ----------------------------------------------------------------- public API
def coerce_fields(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``kwargs`` with each known dataclass field of ``cls`` coerced; unknown keys pass through."""
    hints = field_types(cls)
    return {key: coerce_value(key, value, hints[key]) if key in hints else value
            for key, value in kwargs.items()}


def coerce_value(field: str, value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation`` (bool, int, float, str, list[T], unions with None); CoercionError if not.

    Annotations outside that set (dict, Literal, classes …) leave the value unchanged.
    """
    if not _supported(annotation):
        return value
    try:
        return _convert(value, annotation)
    except _Fail:
        raise CoercionError(field, value, describe(annotation)) from None


@functools.lru_cache(maxsize=None)
def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of the dataclass fields of ``cls`` (string annotations evaluated)."""
    if not is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if f.name in hints}


def describe(annotation: Any) -> str:
    """Readable type name used in error messages, e.g. ``int or list[int]``."""
    if annotation is bool:
        return "bool (true/false)"
    if annotation is float:
        return "finite float"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return annotation.__name__
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if _is_union(origin):
        return " or ".join(describe(a) for a in args)
    if origin in (list, tuple) and args:
        return f"list[{_short(args[0])}]"
    return str(annotation)


# ----------------------------------------------------------------- dispatch
class _Fail(Exception):
    """Internal: a value does not fit one annotation (turned into CoercionError at the top)."""


def _convert(value: Any, annotation: Any) -> Any:
    """Convert or raise _Fail."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if _is_union(origin):
        return _to_union(value, args)
    if origin is list:
        return _to_list(value, args[0] if args else Any)
    if annotation is type(None):
        if _is_none(value):
            return None
        raise _Fail
    if annotation is Any:
        return value
    return _SCALARS[annotation](value)


def _supported(annotation: Any) -> bool:
    """True for bool/int/float/str/None/Any and lists and unions built from them."""
    if annotation in _SCALARS or annotation is type(None) or annotation is Any:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return all(_supported(a) for a in args)
    if _is_union(origin):
        return all(_supported(a) for a in args)
    return False


# ----------------------------------------------------------------- scalars
def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise _Fail


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Fail
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            value = _parse_float(text)
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise _Fail


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Fail
    if isinstance(value, str):
        value = _parse_float(value.strip())
    if isinstance(value, numbers.Real) and math.isfinite(value):
        return float(value)
    raise _Fail


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise _Fail


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _Fail from None


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


# ----------------------------------------------------------------- lists and unions
def _to_list(value: Any, item: Any) -> list:
    if isinstance(value, str):
        value = _parse_list_text(value)
    if isinstance(value, (list, tuple)):
        return [_convert(v, item) for v in value]
    if value is None or isinstance(value, (dict, set, frozenset, bytes)):
        raise _Fail
    return [_convert(value, item)]  # a scalar where a list is expected: one-element list


def _parse_list_text(text: str) -> Any:
    """``"[0.05, 0.1]"`` (JSON or Python literal) or ``"0.05,0.1"`` → list; anything else stays a string."""
    stripped = text.strip()
    if stripped.startswith(("[", "(")):
        try:
            return json.loads(stripped)
        except ValueError:
            pass
        try:
            return ast.literal_eval(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise _Fail from None
    if "," in stripped:
        return [part.strip() for part in stripped.split(",")]
    return text


def _to_union(value: Any, args: tuple) -> Any:
    """Try the members of a union: None first, then list members for list-like values, else scalars first."""
    allows_none = type(None) in args
    if allows_none and _is_none(value):
        return None
    members = [a for a in args if a is not type(None)]
    listy = [a for a in members if typing.get_origin(a) is list]
    others = [a for a in members if typing.get_origin(a) is not list]
    for member in (listy + others if _looks_like_list(value) else others + listy):
        try:
            return _convert(value, member)
        except _Fail:
            continue
    raise _Fail


def _looks_like_list(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return True
    return isinstance(value, str) and (value.strip().startswith(("[", "(")) or "," in value)


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS)


def _is_union(origin: Any) -> bool:
    return origin is typing.Union or origin is types.UnionType


def _short(annotation: Any) -> str:
    """Bare type name inside list[...] (``float`` rather than ``finite float``)."""
    if isinstance(annotation, type):
        return annotation.__name__
    return describe(annotation)
