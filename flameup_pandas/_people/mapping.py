"""Which column of a frame feeds which field of a Flameup person.

The result of :func:`resolve_mapping` is a :class:`FieldMap`; :func:`canonical_frame` applies it
and gives the rest of the package one frame shape to work on: columns named after the API fields
(``userId``, ``email``, ``phone``, then one column per trait) over positional row numbers.

Canonical names: a trait is named after itself, except that a trait whose name is a top-level
field (only ``phone`` can be: ``userId`` and ``email`` are refused as trait names) or starts with
``traits.`` gets a ``traits.`` prefix, so ``traits.phone`` is the phone *trait* and ``phone`` the
top-level phone. :func:`trait_name` undoes the prefix.

Integer user ids are common (database keys) and Flameup wants a string, so ``canonical_frame``
turns integers into their decimal string. Integral floats (``1.0``, which is what pandas makes of
an integer column with a missing value) are treated the same way when they are exact (below
2**53); any other non-string userId is left alone for validation to report.
"""

from __future__ import annotations

import numbers
import re
import warnings
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from ..exceptions import FieldNameWarning, MappingError
from .person import KNOWN_TRAITS, TOP_LEVEL
from .values import category_values

__all__ = [
    "KNOWN_TRAITS",
    "RESULT_COLUMNS",
    "USER_ID_ALIASES",
    "FieldMap",
    "canonical_frame",
    "canonical_trait_column",
    "normalize_user_ids",
    "resolve_mapping",
    "trait_name",
]

USER_ID_ALIASES: tuple[str, ...] = ("userId", "user_id", "external_id")
RESULT_COLUMNS: tuple[str, ...] = ("flameup_id", "flameup_status", "flameup_error")

_TRAIT_PREFIX = "traits."
_FORBIDDEN_TRAITS = frozenset({"userId", "email"})
_EXACT_FLOAT_LIMIT = 2.0**53


def canonical_trait_column(name: str) -> str:
    """The canonical column name of the trait ``name``.

    >>> canonical_trait_column("plan"), canonical_trait_column("phone")
    ('plan', 'traits.phone')
    """
    return _TRAIT_PREFIX + name if name in TOP_LEVEL or name.startswith(_TRAIT_PREFIX) else name


def trait_name(canonical: str) -> str:
    """The trait name behind a canonical trait column (inverse of ``canonical_trait_column``).

    >>> trait_name("traits.phone"), trait_name("plan")
    ('phone', 'plan')
    """
    return canonical[len(_TRAIT_PREFIX) :] if canonical.startswith(_TRAIT_PREFIX) else canonical


@dataclass(frozen=True)
class FieldMap:
    """Which source column feeds each API field; build it with :func:`resolve_mapping`."""

    user_id: Hashable | None
    email: Hashable | None
    phone: Hashable | None
    traits: Mapping[str, Hashable] = field(default_factory=dict)

    def _pairs(self) -> list[tuple[str, Hashable]]:
        top = zip(TOP_LEVEL, (self.user_id, self.email, self.phone), strict=True)
        pairs = [(name, source) for name, source in top if source is not None]
        return pairs + [(canonical_trait_column(t), src) for t, src in self.traits.items()]

    def source_columns(self) -> list[Hashable]:
        """The source columns used, each once, in canonical order."""
        seen: list[Hashable] = []
        for _, source in self._pairs():
            if not any(source is s or source == s for s in seen):
                seen.append(source)
        return seen

    def canonical_columns(self) -> list[str]:
        """``userId``, ``email``, ``phone`` (those mapped), then the trait columns."""
        return [name for name, _ in self._pairs()]

    def source_of(self, canonical: str) -> Hashable:
        return dict(self._pairs())[canonical]


def _describe(columns: Sequence[Hashable]) -> str:
    shown = ", ".join(repr(c) for c in list(columns)[:30])
    more = len(columns) - 30
    return shown + (f" and {more} more" if more > 0 else "")


def _require(columns: Sequence[Hashable], column: Hashable, what: str) -> None:
    if column not in columns:
        raise MappingError(
            f"{what} names the column {column!r}, which the frame does not have; "
            f"its columns are: {_describe(columns)}"
        )


def _label_name(column: Hashable) -> str:
    """The trait name a column label gives, or a MappingError when it cannot be one."""
    if isinstance(column, str):
        name = column
    elif isinstance(column, numbers.Number) and not isinstance(column, bool | complex):
        name = str(column)
    else:
        raise MappingError(
            f"column label {column!r} cannot name a trait; rename the column, name it in "
            f"mapping={{'traits.<name>': {column!r}}}, or drop it with exclude=[{column!r}]"
        )
    if not name.strip():
        raise MappingError(
            f"column {column!r} has a blank name and cannot be a trait; rename or exclude it"
        )
    return name


def _parse_mapping(
    columns: Sequence[Hashable], mapping: Mapping[str, Hashable]
) -> tuple[dict[str, Hashable | None], dict[str, Hashable]]:
    """Split a user mapping into top-level fields and traits, checking every name."""
    top: dict[str, Hashable | None] = {}
    traits: dict[str, Hashable] = {}
    for key, source in mapping.items():
        if key in TOP_LEVEL:
            if source is not None:
                _require(columns, source, f"mapping[{key!r}]")
            top[key] = source
        elif isinstance(key, str) and key.startswith(_TRAIT_PREFIX) and (name := trait_name(key)):
            if name in _FORBIDDEN_TRAITS:
                raise MappingError(f"mapping key {key!r}: a trait cannot be named {name!r}")
            _require(columns, source, f"mapping[{key!r}]")
            traits[name] = source
        else:
            raise MappingError(
                f"mapping key {key!r} is not an API field; use 'userId', 'email', 'phone' "
                "or 'traits.<name>'"
            )
    return top, traits


def resolve_mapping(
    columns: Sequence[Hashable],
    mapping: Mapping[str, Hashable] | None = None,
    traits: Sequence[Hashable] | None = None,
    exclude: Sequence[Hashable] | None = None,
) -> FieldMap:
    """Decide which column feeds which API field.

    ``mapping`` keys are API fields (``"userId"``, ``"email"``, ``"phone"``, ``"traits.<name>"``)
    and values source columns; a top-level field mapped to ``None`` is not sent. Unmapped
    fields default to columns of their own name (``userId`` also from ``user_id`` or
    ``external_id``, in that order); every other column becomes a custom trait named after it,
    unless ``traits=`` lists the custom trait columns or ``exclude=`` drops some. Columns named
    like the result columns (``flameup_id``, ``flameup_status``, ``flameup_error``) are left out
    unless named explicitly.

    >>> fm = resolve_mapping(["customer_no", "Email", "tier"],
    ...                      {"userId": "customer_no", "email": "Email", "traits.plan": "tier"})
    >>> fm.canonical_columns()
    ['userId', 'email', 'plan']
    """
    columns = list(columns)
    top, mapped_traits = _parse_mapping(columns, mapping or {})
    excluded = list(exclude or [])
    for column in excluded:
        _require(columns, column, "exclude")
    # a field mapped to None is not sent, and its same-named column is not a trait either
    excluded += [name for name, source in top.items() if source is None and name in columns]
    available = [c for c in columns if c not in excluded]
    top.setdefault("userId", next((a for a in USER_ID_ALIASES if a in available), None))
    for name in ("email", "phone"):
        top.setdefault(name, name if name in available else None)
    if top["userId"] is None and top["email"] is None:
        raise MappingError(
            "no userId or email column: name one with mapping={'userId': ...} "
            f"(the frame's columns are: {_describe(columns)})"
        )
    known = {name: name for name in KNOWN_TRAITS if name != "phone" and name in available}
    all_traits: dict[str, Hashable] = {**known, **mapped_traits}
    used = [c for c in top.values() if c is not None] + list(all_traits.values())
    custom = _custom_columns(columns, used, traits, excluded)
    for column in custom:
        name = _label_name(column)
        if name in _FORBIDDEN_TRAITS:
            raise MappingError(
                f"column {column!r} would be sent as a custom trait named {name!r}, which "
                f"is a top-level field; map it, or drop it with exclude=[{column!r}]"
            )
        if name in all_traits:
            raise MappingError(
                f"trait {name!r} would be fed by both {all_traits[name]!r} and {column!r}; "
                f"drop one with exclude=[...]"
            )
        all_traits[name] = column
    counts = Counter(columns)
    for column in used + custom:
        if counts[column] > 1:
            raise MappingError(
                f"the frame has {counts[column]} columns labelled {column!r}; rename them or "
                f"drop them with exclude=[{column!r}]"
            )
    _warn_near_misses(top, all_traits, mapped_traits)
    return FieldMap(top["userId"], top["email"], top["phone"], all_traits)


def _squeezed(name: str) -> str:
    """A name without case, blanks, ``-`` or ``_``: how near misses of field names are found."""
    return re.sub(r"[\s_-]", "", name).lower()


_NEAR_MISSES: dict[str, str] = {
    **{_squeezed(alias): "userId" for alias in USER_ID_ALIASES},
    "email": "email",
    "phone": "phone",
    **{_squeezed(name): f"traits.{name}" for name in KNOWN_TRAITS if name != "phone"},
}


def _warn_near_misses(
    top: Mapping[str, Hashable | None],
    traits: Mapping[str, Hashable],
    mapped: Mapping[str, Hashable],
) -> None:
    """Warn when a custom trait column is named like a field nothing else feeds."""
    fed = {k for k, v in top.items() if v is not None} | {f"traits.{t}" for t in traits}
    for name, column in traits.items():
        if name in mapped or name in KNOWN_TRAITS or not isinstance(column, str):
            continue
        field_key = _NEAR_MISSES.get(_squeezed(column))
        if field_key is None or field_key in fed:
            continue
        warnings.warn(
            f"column {column!r} is sent as a custom trait named {name!r}, though it looks "
            f"like the field {field_key.removeprefix('traits.')!r}: to send it as that field, "
            f"pass mapping={{{field_key!r}: {column!r}}}",
            FieldNameWarning,
            stacklevel=2,
        )


def _custom_columns(
    columns: list[Hashable],
    used: list[Hashable],
    traits: Sequence[Hashable] | None,
    excluded: list[Hashable],
) -> list[Hashable]:
    if traits is not None:
        for column in traits:
            _require(columns, column, "traits")
        candidates = list(traits)
    else:
        candidates = [c for c in columns if not (isinstance(c, str) and c in RESULT_COLUMNS)]
    out: list[Hashable] = []
    for column in candidates:
        if column in used or column in excluded or column in out:
            continue
        if traits is None and isinstance(column, str) and column in USER_ID_ALIASES:
            # a second userId alias (say user_id next to userId) is not a trait by surprise
            raise MappingError(
                f"column {column!r} looks like a userId but another column feeds userId; map "
                f"it as mapping={{'traits.{column}': {column!r}}} or drop it with "
                f"exclude=[{column!r}]"
            )
        out.append(column)
    return out


def _user_id_string(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | np.bool_):
        return value
    exact_float = (
        isinstance(value, float | np.floating)
        and np.isfinite(value)
        and float(value).is_integer()
        and abs(float(value)) < _EXACT_FLOAT_LIMIT
    )
    return str(int(value)) if isinstance(value, numbers.Integral) or exact_float else value


def normalize_user_ids(series: pd.Series) -> pd.Series:
    """Integers (and exact integral floats) as decimal strings; everything else unchanged.

    >>> normalize_user_ids(pd.Series([7, None, 2.0, 2.5, "a"], dtype=object)).tolist()
    ['7', None, '2', 2.5, 'a']
    """
    series = category_values(series)  # pandas' and Arrow's categoricals alike
    dtype = series.dtype
    is_string = pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype)
    if is_string or pd.api.types.is_bool_dtype(dtype):
        return series
    if pd.api.types.is_integer_dtype(dtype):
        if series.hasnans:
            return series.astype(object).where(series.notna(), None).map(_user_id_string)
        return pd.Series(series.to_numpy().astype(str).astype(object), index=series.index)
    if pd.api.types.is_float_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        values = series.to_numpy(dtype=object)
        return pd.Series([_user_id_string(v) for v in values], index=series.index, dtype=object)
    return series


def canonical_frame(df: pd.DataFrame, fieldmap: FieldMap) -> pd.DataFrame:
    """The frame with canonical column names over positional row numbers.

    Columns are not copied (pandas' copy-on-write shares them) except ``userId``, whose
    integers become strings (see the module docstring).

    >>> df = pd.DataFrame({"customer_no": [7, 8], "tier": ["pro", "free"]}, index=["a", "b"])
    >>> fm = resolve_mapping(df.columns, {"userId": "customer_no"})
    >>> canonical_frame(df, fm)
      userId  tier
    0      7   pro
    1      8  free
    """
    data: dict[str, pd.Series] = {}
    for canonical, source in fieldmap._pairs():
        # one position each: resolve_mapping refuses a source label the frame repeats
        column = df.iloc[:, cast(int, df.columns.get_loc(source))].reset_index(drop=True)
        data[canonical] = normalize_user_ids(column) if canonical == "userId" else column
    if not data:
        return pd.DataFrame(index=pd.RangeIndex(len(df)))
    return pd.DataFrame(data, copy=False)
