"""Declared options: the default, the allowed values and the range of every setting, in one
place next to its field.

flexgame's settings are dataclasses (:class:`flexgame.markets.system.SystemConfig`,
:class:`flexgame.markets.schemes.ClearingConfig`, ...). Each field is declared with
:func:`option`, which records its rules in the field's metadata; :func:`check` validates an
instance against its field types and those rules and raises one
:class:`~flexgame.markets.errors.FlexgameInputError` naming the dotted key, the value and what
is allowed. The same rules serve the Python API (``ClearingConfig(...).validate()``) and the
config layer, whose Hydra schema is built from these dataclasses
(:mod:`flexgame.experiments.schema`). :func:`inert` lists options set to a non-default value
that have no effect under the chosen variant (``interface`` of the common market).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from flexgame.markets.errors import FlexgameInputError

_RULES = "flexgame"


def option(default: Any = dataclasses.MISSING, *, factory: Callable[[], Any] | None = None,
           choices: Sequence | Callable[[], Sequence] | None = None, low: float | None = None,
           high: float | None = None, low_open: bool = False, high_open: bool = False,
           rule: Callable[[Any], str | None] | None = None,
           only_for: tuple[str, Sequence | Callable[[], Sequence]] | None = None,
           open_keys: bool = False) -> Any:
    """A dataclass field with its rules.

    Args:
        default, factory: the default value (or a factory for mutable defaults).
        choices: the allowed values (or a function returning them).
        low, high: range of a number, closed unless ``low_open`` / ``high_open``.
        rule: a further check of the value: returns what is wrong ("must be ...") or None.
        only_for: ``(selector, values)``: the option has an effect only when the sibling field
            ``selector`` takes one of ``values`` (or a function returning them).
        open_keys: a mapping whose keys are data (line names, feeder names), not a schema: the
            config layer lets users add keys to it.
    """
    rules = dict(choices=choices, low=low, high=high, low_open=low_open, high_open=high_open,
                 rule=rule, only_for=only_for, open_keys=open_keys)
    metadata = {_RULES: rules}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def rules(f: dataclasses.Field) -> dict:
    """The rules :func:`option` recorded on a field (empty for a plain field)."""
    return f.metadata.get(_RULES, {})


def _resolve(values):
    return values() if callable(values) else values


@cache
def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass's fields."""
    return typing.get_type_hints(cls)


def optional_type(tp) -> tuple[Any, bool]:
    """(inner type, whether None is allowed) of ``X | None`` / ``Optional[X]``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else Any), True
    return tp, False


def range_text(low=None, high=None, low_open=False, high_open=False) -> str:
    """``a value in (0, 1]``, ``>= 0`` or ``<= 5``."""
    if low is not None and high is not None:
        return f"a value in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    return f"{'<' if high_open else '<='} {high}"


def _number(key: str, value, integer: bool):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FlexgameInputError(f"{key}={value!r} must be {'an integer' if integer else 'a number'}")
    if not math.isfinite(value):
        raise FlexgameInputError(f"{key}={value} must be a finite number")
    if integer and not float(value).is_integer():
        raise FlexgameInputError(f"{key}={value!r} must be an integer")


def _check_type(key: str, value, tp) -> None:
    """Raise unless ``value`` fits the type hint ``tp`` (recursing into containers)."""
    tp, nullable = optional_type(tp)
    if value is None:
        if not nullable and tp is not Any:
            raise FlexgameInputError(f"{key} must be set (null is not allowed)")
        return
    if tp is Any:
        return
    origin = typing.get_origin(tp)
    if tp in (int, float):
        _number(key, value, integer=tp is int)
    elif tp is bool:
        if not isinstance(value, bool):
            raise FlexgameInputError(f"{key}={value!r} must be true or false")
    elif tp is str:
        if not isinstance(value, str):
            raise FlexgameInputError(f"{key}={value!r} must be a string")
    elif dataclasses.is_dataclass(tp):
        if not isinstance(value, tp):
            raise FlexgameInputError(f"{key}={value!r} must be a mapping of {tp.__name__} options")
        check(value, key)
    elif origin in (list, tuple):
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            raise FlexgameInputError(f"{key}={value!r} must be a list")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis and len(value) != len(args):
            raise FlexgameInputError(f"{key}={list(value)!r} must be a list of {len(args)} values")
        for i, item in enumerate(value):
            item_type = (args[i] if origin is tuple and args and args[-1] is not Ellipsis
                         else args[0] if args else Any)
            _check_type(f"{key}[{i}]", item, item_type)
    elif origin is dict:
        if not isinstance(value, Mapping):
            raise FlexgameInputError(f"{key}={value!r} must be a mapping")
        _, item_type = typing.get_args(tp) or (Any, Any)
        for k, item in value.items():
            _check_type(f"{key}.{k}", item, item_type)


def check_value(key: str, value, f: dataclasses.Field, tp) -> None:
    """Check one field's value against its type and rules."""
    _check_type(key, value, tp)
    r = rules(f)
    if value is None or not r:
        return
    choices = _resolve(r["choices"])
    if choices is not None and value not in choices:
        raise FlexgameInputError(
            f"{key}={value!r} is not allowed; choose one of: {', '.join(map(str, choices))}")
    low, high = r["low"], r["high"]
    if low is not None or high is not None:
        below = low is not None and (value <= low if r["low_open"] else value < low)
        above = high is not None and (value >= high if r["high_open"] else value > high)
        if below or above:
            raise FlexgameInputError(f"{key}={value} is out of range; allowed: "
                                     f"{range_text(low, high, r['low_open'], r['high_open'])}")
    if r["rule"] is not None:
        problem = r["rule"](value)
        if problem:
            shown = list(value) if isinstance(value, tuple) else value
            raise FlexgameInputError(f"{key}={shown!r} {problem}")


def check(obj, prefix: str = "") -> None:
    """Validate a settings dataclass: every field's type and rules, nested ones included, then
    its ``cross_check()`` (rules between fields) if it has one: it yields ``(field, problem)``.

    Raises:
        FlexgameInputError: for the first offending field, named by its dotted key
            (``prefix.field``) with its value and what is allowed.
    """
    types_ = field_types(type(obj))
    for f in dataclasses.fields(obj):
        check_value(_join(prefix, f.name), getattr(obj, f.name), f, types_[f.name])
    for name, problem in getattr(obj, "cross_check", lambda: [])():
        value = obj
        for part in name.split("."):  # a rule between nested settings names a dotted key
            value = getattr(value, part)
        raise FlexgameInputError(f"{_join(prefix, name)}={value!r} {problem}")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def normalize(obj):
    """``obj`` with every tuple-typed field (``quantity_share``, ``v_limits``) held as a
    tuple, recursively: a config layer hands lists. Returns ``obj``."""
    types_ = field_types(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        tp, _ = optional_type(types_[f.name])
        if dataclasses.is_dataclass(value):
            normalize(value)
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            for item in value:
                normalize(item)
        elif typing.get_origin(tp) is tuple and isinstance(value, list):
            object.__setattr__(obj, f.name, tuple(value))
    return obj


def default_of(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def only_for(f: dataclasses.Field) -> tuple[str, tuple] | None:
    """``(selector, values)``: the field has an effect only when its sibling ``selector``
    takes one of ``values``; None for a field that always has an effect."""
    only = rules(f).get("only_for")
    return None if only is None else (only[0], tuple(_resolve(only[1])))


def inert(obj) -> list[tuple[str, str, tuple]]:
    """Options of ``obj`` set to a value other than their default that have no effect under
    its selector: ``(field, selector, values the option needs)`` each."""
    out = []
    for f in dataclasses.fields(obj):
        only = only_for(f)
        if only and getattr(obj, only[0]) not in only[1] and getattr(obj, f.name) != default_of(f):
            out.append((f.name, *only))
    return out


def pair_rule(low: float = 0.0, low_open: bool = True) -> Callable[[Sequence], str | None]:
    """Rule of a ``[low, high]`` pair: both above ``low`` and ordered."""
    def rule(value) -> str | None:
        a, b = value
        if (a <= low if low_open else a < low) or a > b:
            return f"needs {low} {'<' if low_open else '<='} low <= high"
        return None
    return rule
