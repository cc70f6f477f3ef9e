"""The executor's planning, column-wise, against a straightforward per-row reference.

:func:`flameup_pandas.spark._executors.planned_batch` builds its rows from Arrow arrays; the
reference below is the per-row code it replaced (Python lists zipped a row at a time). Both must
give the same values for every column, on frames with missing values, non-string ids, invalid
rows and duplicates; and what :func:`~flameup_pandas.spark._executors.plan_batches` hands to
``mapInPandas`` must turn into the same Arrow columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from flameup_pandas._people.identity import identity_hashes
from flameup_pandas._people.mapping import canonical_frame
from flameup_pandas._run.plan import Rules
from flameup_pandas.spark._executors import PLANNED_SCHEMA, Needs, plan_batches, planned_batch

from .reference import planned_rows

NAMES = ["row", "userId", "email", "identity", "identity_hash", "content_hash"]
NAMES += ["flameup_status", "flameup_error", "payload"]


def reference(rules: Rules, frame: pd.DataFrame, rows: np.ndarray) -> dict[str, list[Any]]:
    """The executor's rows as the per-row code built them (before issue 17's Spark part)."""
    plan = rules.plan(frame, labels=rows.tolist())
    pending = plan.pending()
    hashes = np.zeros(len(frame), dtype=np.int64)
    payloads = np.full(len(frame), None, dtype=object)
    hashes[pending] = plan.payloads.content_hashes(pending)
    wire = plan.payloads.wire.take(pa.array(pending)).cast(pa.large_string())
    payloads[pending] = wire.to_pylist()
    canonical = canonical_frame(frame, rules.fieldmap(list(frame.columns)))
    shown = {}
    for name, sent in (("userId", plan.payloads.user_ids), ("email", plan.payloads.emails)):
        given = canonical[name].tolist() if name in canonical else [None] * len(frame)
        shown[name] = [
            value if person else _text(original)
            for person, value, original in zip(
                plan.payloads.present.tolist(), sent.to_pylist(), given, strict=True
            )
        ]
    return {
        "row": rows.tolist(),
        "userId": shown["userId"],
        "email": shown["email"],
        "identity": plan.key_array.to_pylist(),
        "identity_hash": identity_hashes(plan.key_array).tolist(),
        "content_hash": hashes.tolist(),
        "flameup_status": plan.status.tolist(),
        "flameup_error": plan.error.tolist(),
        "payload": payloads.tolist(),
    }


def _text(value: Any) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def odd_frames() -> dict[str, pd.DataFrame]:
    when = pd.Timestamp("2024-05-01 12:30", tz="UTC")
    return {
        "object ids, missing and broken values": pd.DataFrame(
            {
                "userId": pd.Series(
                    [7, None, 2.0, 2.5, "a", np.nan, "a", None, True, "", "ü"], dtype=object
                ),
                "email": pd.Series(
                    [
                        None,
                        "x@example.com",
                        5,
                        "bad",
                        np.nan,
                        "Y@Example.com",
                        "z@example.com",
                        None,
                        "t@example.com",
                        "É@Example.com",
                        pd.NA,
                    ],
                    dtype=object,
                ),
                "plan": ["pro", None, "free", "pro", np.nan, "x", "y", "z", "w", "v", "u"],
                "score": [1.5, np.nan, 3.0, 1e16, -0.0, 2.0, 7.0, 8.0, 9.0, 1.0, 0.5],
            }
        ),
        "integer ids, no email column": pd.DataFrame(
            {"userId": np.array([3, 1, 3, 9], dtype=np.int64), "seen": [when] * 4}
        ),
        "float ids with NaN": pd.DataFrame(
            {
                "userId": [1.0, np.nan, 2.5, 1.0],
                "email": ["a@example.com", None, "c@example.com", "bad email"],
            }
        ),
        "emails only, repeated in other cases": pd.DataFrame(
            {"email": ["A@example.com", "a@example.com", "nope", None, "b@example.com"]}
        ),
        "Arrow-backed strings": pd.DataFrame(
            {
                "userId": pd.array(["s1", None, "s3", "s1"], dtype="string[pyarrow]"),
                "email": pd.Series(
                    ["a@example.com", "b@example.com", "broken", None],
                    dtype=pd.ArrowDtype(pa.string()),
                ),
            }
        ),
    }


@pytest.mark.parametrize("name", list(odd_frames()))
def test_planned_rows_match_the_per_row_reference(name):
    frame = odd_frames()[name]
    rows = np.arange(40, 40 + len(frame), dtype=np.int64)
    expected = reference(Rules(), frame.copy(), rows)
    assert None in expected["flameup_status"]  # somebody to send
    planned = planned_rows(Rules(), frame.copy(), rows)
    assert list(planned.columns) == NAMES
    assert {c: planned[c].tolist() for c in NAMES} == expected
    batch = planned_batch(Rules(), frame.copy(), rows)
    assert batch.schema == PLANNED_SCHEMA
    assert batch.to_pydict() == expected


def test_every_row_invalid_is_planned_as_the_reference():
    frame = pd.DataFrame({"userId": [None, None, np.nan], "email": ["bad", 12, None]})
    rows = np.arange(3, dtype=np.int64)
    expected = reference(Rules(), frame.copy(), rows)
    assert set(expected["flameup_status"]) == {"invalid"}
    assert planned_batch(Rules(), frame.copy(), rows).to_pydict() == expected


def test_what_map_in_arrow_gets_back_is_the_reference_in_spark_types():
    """plan_batches takes Spark's Arrow batches (``row`` among the columns), gathers them
    into pieces, and hands back batches in Spark's types with the reference's values."""
    frame = odd_frames()["Arrow-backed strings"]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.append_column("row", pa.array(np.arange(len(frame), dtype=np.int64)))
    batches = table.to_batches(max_chunksize=2)
    out = list(plan_batches(batches, rules=Rules()))
    assert len(out) == 1
    assert out[0].schema.field("userId").type == pa.string()
    expected = reference(Rules(), frame.copy(), np.arange(len(frame), dtype=np.int64))
    assert {name: out[0].column(name).to_pylist() for name in NAMES} == expected


def test_timestamps_from_spark_are_instants():
    micros = pd.Timestamp("2024-01-01 09:00", tz="UTC").value // 1000  # 10:00 in Paris
    stamp = pa.array([micros], pa.timestamp("us", tz="Europe/Paris"))
    batch = pa.record_batch({"userId": ["t1"], "seen": stamp, "row": pa.array([5])})
    (out,) = plan_batches([batch], rules=Rules())
    payload = out.column("payload").to_pylist()[0]
    assert '"seen":"2024-01-01T09:00:00Z"' in payload


def test_without_payloads_or_hashes_the_rest_is_the_same():
    """A dry run builds no JSON; a run without a state takes no content hashes."""
    frame = odd_frames()["object ids, missing and broken values"]
    rows = np.arange(len(frame), dtype=np.int64)
    expected = reference(Rules(), frame.copy(), rows)
    bare = planned_batch(
        Rules(), frame.copy(), rows, needs=Needs(payloads=False, hashes=False)
    ).to_pydict()
    assert bare["payload"] == [None] * len(frame)
    assert bare["content_hash"] == [0] * len(frame)
    for name in NAMES:
        if name not in ("payload", "content_hash"):
            assert bare[name] == expected[name], name
    hashed = planned_batch(Rules(), frame.copy(), rows, needs=Needs(payloads=False))
    assert hashed.column("content_hash").to_pylist() == expected["content_hash"]
