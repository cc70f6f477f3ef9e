"""The sync state's joins: a lookup and a merge give what a plain dict of identities gives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from flameup_pandas._people.identity import find_sorted
from flameup_pandas._run.state import STATE_SCHEMA, SyncState, merge

# a small pool, so that drawn hashes meet each other often (0 is "no identity")
hash_values = st.sampled_from([0, 1, -1, 7, 2**62, -(2**63), 2**63 - 1, *range(100, 140)])


def state_rows(hashes: list[int], tag: str) -> pa.Table:
    """One state row per hash: ids and contents tell which record a merge kept."""
    n = len(hashes)
    return pa.table(
        {
            "identity": [f"u:{h}" for h in hashes],
            "identity_hash": pa.array(hashes, pa.int64()),
            "content_hash": pa.array([h ^ 5 for h in hashes], pa.int64()),
            "flameup_id": [f"{tag}{i}" for i in range(n)],
            "synced_at": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * n, STATE_SCHEMA[4].type),
            "fields": pa.array([[i] for i in range(n)], pa.list_(pa.uint32())),
            "sent": pa.nulls(n, pa.large_string()),
            "source_hash": pa.array([h ^ 9 for h in hashes], pa.int64()),
        },
        schema=STATE_SCHEMA,
    )


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(hash_values, unique=True),
    wanted=st.lists(hash_values, max_size=300),
)
def test_find_sorted_finds_what_a_set_finds(values, wanted):
    """Both ways: many values and few wanted (a state lookup), few values and many wanted (a
    merge's records against the whole state)."""
    ordered = np.array(sorted(values), dtype=np.int64)
    asked = np.array(wanted, dtype=np.int64)
    found, present = find_sorted(ordered, asked)
    assert present.tolist() == [w in set(values) for w in wanted]
    assert (ordered[found[present]] == asked[present]).all()


@settings(max_examples=200, deadline=None)
@given(
    state=st.lists(hash_values.filter(bool), unique=True),
    wanted=st.lists(hash_values, max_size=60),
    changed=st.sets(hash_values),
)
def test_lookup_equals_a_dict_lookup(state, wanted, changed):
    table = state_rows(state, "id")
    sync = SyncState(Path("unused.parquet"), table, keeper=None)  # lookups never keep
    known = {row["identity_hash"]: row for row in table.to_pylist()}
    contents = np.array(
        [(known[h]["content_hash"] if h in known else 0) ^ (h in changed) for h in wanted],
        dtype=np.int64,
    )
    unchanged, ids = sync.lookup(np.array(wanted, dtype=np.int64), contents)
    expected = [
        h in known and h != 0 and known[h]["content_hash"] == c
        for h, c in zip(wanted, contents.tolist(), strict=True)
    ]
    assert unchanged.tolist() == expected
    assert ids.tolist() == [known[h]["flameup_id"] if h in known else None for h in wanted]


def naive_merge(base: pa.Table, newer: pa.Table) -> list[dict[str, object]]:
    """For each identity the last record, the survivors in the order of their last record."""
    rows = base.to_pylist() + newer.to_pylist()
    last = {row["identity_hash"]: i for i, row in enumerate(rows)}
    return [rows[i] for i in sorted(last.values())]


@settings(max_examples=200, deadline=None)
@given(base=st.lists(hash_values, unique=True), newer=st.lists(hash_values, max_size=80))
def test_merge_keeps_the_last_record_of_each_identity(base, newer):
    merged = merge(state_rows(base, "old"), state_rows(newer, "new"))
    assert merged.schema == STATE_SCHEMA
    assert merged.to_pylist() == naive_merge(state_rows(base, "old"), state_rows(newer, "new"))
