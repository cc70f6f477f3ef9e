"""People read back from Flameup -> columns: the mirror of :mod:`flameup_pandas._people.encode`.

A page of people in the canonical form of :func:`flameup_pandas._people.person.read_person` (person
fields, timestamps, and the custom traits apart under ``attributes``) becomes an Arrow table
with one row per person:

- the person fields as text: ``id``, ``external_id``, ``email``, ``phone``, ``first_name``,
  ``last_name``, ``avatar_url``, ``timezone``, ``locale``, ``status``;
- ``created_at``, ``updated_at``, ``first_seen_at``, ``last_seen_at`` as UTC timestamps;
- every custom trait as its own column named by the trait, or ``attributes.<name>`` where
  the name is also a person field. A trait a person lacks is missing (null).

A trait column is typed by its values: all booleans, all integers, numbers (integers and
floats), or all text. Values of mixed kinds, lists, objects and integers beyond 64 bits are
kept as JSON text, so nothing is dropped or rounded. Pages read one by one may disagree (a
trait first seen on page 40, integers on one page and floats on the next):
:func:`unified_schema` settles one schema by the same rule and :func:`conform` casts each page
to it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .person import PERSON_FIELDS

__all__ = [
    "PERSON_COLUMNS",
    "TIMESTAMP_COLUMNS",
    "conform",
    "people_table",
    "to_frame",
    "unified_schema",
]

logger = logging.getLogger("flameup_pandas")

TIMESTAMP_COLUMNS = tuple(name for name in PERSON_FIELDS if name.endswith("_at"))
"""The canonical person's timestamps, read as time-zone-aware datetime columns."""
PERSON_COLUMNS = tuple(
    name
    for name in PERSON_FIELDS
    if name not in TIMESTAMP_COLUMNS and name not in ("workspace_id", "attributes")
)
"""The canonical person's own fields, as text columns (the workspace is the key's own)."""
_FIXED = frozenset((*PERSON_COLUMNS, *TIMESTAMP_COLUMNS, "workspace_id", "attributes", "traits"))


def people_table(people: Sequence[Mapping[str, Any]]) -> pa.Table:
    """One page of canonical people as a table (see the module docstring for the columns).

    >>> table = people_table([
    ...     {"id": "p1", "external_id": "u1", "created_at": "2026-01-02T03:04:05.000006Z",
    ...      "attributes": {"plan": "pro", "seats": 3, "status": "vip"}},
    ...     {"id": "p2", "external_id": "u2", "attributes": {"seats": 2.5}},
    ... ])
    >>> table.column_names[-3:]
    ['plan', 'seats', 'attributes.status']
    >>> table["seats"].to_pylist(), table["plan"].to_pylist()
    ([3.0, 2.5], ['pro', None])
    """
    columns: dict[str, pa.Array] = {
        name: pa.array([_text(p.get(name)) for p in people], pa.string()) for name in PERSON_COLUMNS
    }
    for name in TIMESTAMP_COLUMNS:
        columns[name] = _timestamps(name, [p.get(name) for p in people])
    fields = [pa.field(name, column.type) for name, column in columns.items()]
    for trait in dict.fromkeys(name for p in people for name in p.get("attributes") or {}):
        column = trait_array([(p.get("attributes") or {}).get(trait) for p in people])
        name = f"attributes.{trait}" if trait in _FIXED else trait
        columns[name] = column
        fields.append(pa.field(name, column.type, metadata=_exactness(column)))
    return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))


INEXACT = {b"flameup.float": b"inexact"}
"""Field metadata of an integer column that a float could not hold exactly (beyond 2**53):
such a column becomes text, not numbers, when another page has floats."""


def _exactness(column: pa.Array) -> dict[bytes, bytes] | None:
    if column.type != pa.int64() or column.null_count == len(column):
        return None
    extremes = pc.min_max(column)
    largest = max(abs(extremes["min"].as_py()), abs(extremes["max"].as_py()))
    return INEXACT if largest > 2**53 else None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits: JSON has it, orjson does not
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _timestamps(name: str, values: list[Any]) -> pa.Array:
    parsed = pd.to_datetime(
        pd.Series(values, dtype=object), utc=True, format="ISO8601", errors="coerce"
    )
    unreadable = int((parsed.isna() & pd.Series([v is not None for v in values])).sum())
    if unreadable:
        logger.warning("%d %s values were not ISO 8601: read as missing", unreadable, name)
    return pa.array(parsed.dt.as_unit("us"), pa.timestamp("us", tz="UTC"))


def trait_array(values: Sequence[Any]) -> pa.Array:
    """A trait's values as one typed column (booleans, integers, numbers or text).

    >>> trait_array([1, None, 2]).type, trait_array([1, 2.5]).type, trait_array([True]).type
    (DataType(int64), DataType(double), DataType(bool))
    >>> trait_array(["a", 1, [1, 2]]).to_pylist()
    ['a', '1', '[1,2]']
    """
    kinds = {_kind(v) for v in values if v is not None}
    if kinds == {"bool"}:
        return pa.array(values, pa.bool_())
    if kinds == {"int"}:
        return pa.array(values, pa.int64())
    exact = all(not isinstance(v, int) or abs(v) <= 2**53 for v in values)  # as a float
    if kinds and kinds <= {"int", "float"} and exact:
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if not kinds:
        return pa.nulls(len(values), pa.string())
    return pa.array([_text(v) for v in values], pa.string())


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**63) <= value < 2**63 else "json"  # beyond int64: kept as text
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


def unified_schema(schemas: Iterable[pa.Schema]) -> pa.Schema:
    """One schema for pages read apart: every column in order of first sight, one type each
    (the same rule as :func:`trait_array`: integers and floats make numbers, other mixes text).
    """
    types: dict[str, set[pa.DataType]] = {}
    inexact: set[str] = set()
    for schema in schemas:
        for field in schema:
            types.setdefault(field.name, set()).add(field.type)
            if field.metadata == INEXACT:
                inexact.add(field.name)
    return pa.schema(
        [(name, _common_type(kinds, name in inexact)) for name, kinds in types.items()]
    )


def _common_type(kinds: set[pa.DataType], inexact: bool) -> pa.DataType:
    if len(kinds) == 1:
        return next(iter(kinds))
    if kinds == {pa.int64(), pa.float64()} and not inexact:
        return pa.float64()
    return pa.string()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns: missing ones null, others cast (to text at worst)."""
    columns = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


_PANDAS_TYPES = {
    pa.string(): pd.StringDtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.float64(): pd.Float64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def to_frame(table: pa.Table) -> pd.DataFrame:
    """The table as pandas with nullable columns, so a missing value is ``pd.NA`` (``NaT``
    for timestamps) and integers stay integers."""
    return cast(pd.DataFrame, table.to_pandas(types_mapper=_PANDAS_TYPES.get))
