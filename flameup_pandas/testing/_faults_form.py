"""The web view's faults form: one input per `Faults` field, and the posted form back to a
`Faults`.

The inputs are derived from the dataclass itself (its type hints and the docstring under
each field), so a fault added to `Faults` shows up in the form without touching this file.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import textwrap
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._faults import Faults

__all__ = ["FormField", "form_fields", "form_values", "parse_form"]

Kind = Literal["number", "integer", "choice", "flag"]


@dataclass(frozen=True)
class FormField:
    """One input of the form: how it is typed and what it means."""

    name: str
    kind: Kind
    optional: bool
    """Whether an empty input means None."""
    choices: tuple[str, ...]
    hint: str


@functools.cache
def form_fields() -> tuple[FormField, ...]:
    """The inputs, in the order `Faults` declares its fields."""
    hints = typing.get_type_hints(Faults)
    notes = _field_docstrings()
    return tuple(
        _form_field(f.name, hints[f.name], notes.get(f.name, ""))
        for f in dataclasses.fields(Faults)
    )


def _form_field(name: str, hint: Any, note: str) -> FormField:
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is Literal:
        return FormField(name, "choice", optional, tuple(map(str, typing.get_args(hint))), note)
    kinds: dict[Any, Kind] = {bool: "flag", int: "integer", float: "number"}
    if hint not in kinds:
        raise TypeError(f"Faults.{name}: no form input for {hint!r}")
    return FormField(name, kinds[hint], optional, (), note)


def _field_docstrings() -> dict[str, str]:
    """The string literal under each field of `Faults`, as one line of text."""
    try:
        source = textwrap.dedent(inspect.getsource(Faults))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    notes: dict[str, str] = {}
    for before, after in zip(body.body, body.body[1:], strict=False):
        if (
            isinstance(before, ast.AnnAssign)
            and isinstance(before.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            notes[before.target.id] = " ".join(after.value.value.replace("``", "").split())
    return notes


def form_values(faults: Faults) -> dict[str, str]:
    """What each input shows for these faults (None is an empty input).

    >>> form_values(Faults(error_rate=0.25))["error_rate"], form_values(Faults())["seed"]
    ('0.25', '')
    """
    values = {}
    for field in form_fields():
        value = getattr(faults, field.name)
        if value is None or value is False:
            values[field.name] = ""
        elif value is True:
            values[field.name] = "on"
        else:
            values[field.name] = f"{value:g}" if isinstance(value, float) else str(value)
    return values


def parse_form(form: Mapping[str, str]) -> Faults:
    """The `Faults` a posted form asks for; ValueError naming the field when it is wrong.

    >>> parse_form({"error_rate": "0.5", "seed": "7", "down_mode": "drop"}).error_rate
    0.5
    >>> parse_form({"error_rate": "lots"})
    Traceback (most recent call last):
    ...
    ValueError: error_rate: 'lots' is not a number
    """
    values: dict[str, Any] = {}
    for field in form_fields():
        value = _parsed(field, form.get(field.name, "").strip())
        if value is not _DEFAULT:
            values[field.name] = value
    return Faults(**values)


_DEFAULT = object()
"""An input left empty whose field has no None: the field keeps its default."""


def _parsed(field: FormField, raw: str) -> Any:
    if field.kind == "flag":
        return raw != ""
    if raw == "":
        return None if field.optional else _DEFAULT
    if field.kind == "choice":
        if raw not in field.choices:
            raise ValueError(f"{field.name}: {raw!r} is not one of {', '.join(field.choices)}")
        return raw
    if field.kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{field.name}: {raw!r} is not a whole number") from None
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"{field.name}: {raw!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{field.name}: {raw!r} is not a finite number")
    return number
