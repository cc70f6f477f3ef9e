"""People back to columns: any trait values become one typed column, and pages agree."""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from flameup_pandas._people.columns import (
    conform,
    people_table,
    to_frame,
    trait_array,
    unified_schema,
)

JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=5)
JSON_VALUES = (
    JSON_SCALARS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.lists(JSON_SCALARS, max_size=3)
)


@given(st.lists(JSON_VALUES, max_size=12))
def test_any_trait_values_make_one_column_and_keep_every_value(values):
    column = trait_array(values)
    assert len(column) == len(values)
    for value, read in zip(values, column.to_pylist(), strict=True):
        if value is None:
            assert read is None
        elif isinstance(read, str) and not isinstance(value, str):
            assert json.loads(read) == value or str(value) == read  # kept as JSON text
        else:
            assert read == value  # typed: the same value (ints widened to floats compare equal)


@given(st.lists(st.lists(JSON_VALUES, min_size=1, max_size=5), min_size=1, max_size=4))
def test_pages_read_apart_conform_to_one_schema(pages):
    tables = [
        people_table([{"id": f"p{i}", "attributes": {"t": v}} for i, v in enumerate(values)])
        for values in pages
    ]
    schema = unified_schema(t.schema for t in tables)
    whole = pa.concat_tables([conform(t, schema) for t in tables])
    assert whole.num_rows == sum(len(p) for p in pages)
    assert len(to_frame(whole)) == whole.num_rows


def test_a_trait_first_seen_on_a_later_page_is_missing_before_it():
    first = people_table([{"id": "a", "attributes": {"plan": "pro"}}])
    later = people_table([{"id": "b", "attributes": {"plan": "free", "seats": 3}}])
    schema = unified_schema([first.schema, later.schema])
    frame = to_frame(pa.concat_tables([conform(first, schema), conform(later, schema)]))
    assert frame["seats"].isna().tolist() == [True, False] and frame["seats"].dtype == "Int64"


def test_integers_a_float_cannot_hold_become_text_beside_floats_on_another_page():
    big = people_table([{"id": "a", "attributes": {"n": 2**53 + 1}}])
    small = people_table([{"id": "b", "attributes": {"n": 2.5}}])
    schema = unified_schema([big.schema, small.schema])
    values = pa.concat_tables([conform(big, schema), conform(small, schema)])["n"].to_pylist()
    assert values == [str(2**53 + 1), "2.5"]
