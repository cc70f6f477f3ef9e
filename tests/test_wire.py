"""People encoded column by column: the very bytes and hashes the dict path gave.

The reference here builds each person the plain way (a dict per row from the per-value
conversion, missing values left out) and encodes it with ``orjson.dumps``; the column-built
bytes, content hashes, identity keys and problems must equal it exactly. A state file written
before the column encoder must still find every person unchanged.
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flameup_pandas._people.column_encoders import python_values
from flameup_pandas._people.encode import encode_people
from flameup_pandas._people.mapping import trait_name
from flameup_pandas._people.person import TOP_LEVEL
from flameup_pandas._people.values import Unsendable, scalar
from flameup_pandas._people.wire import number_texts, string_texts
from flameup_pandas._run.state import SyncState

from .fixtures.legacy_state import STATE_NAME, legacy_people
from .reference import content_hashes, identity_keys

FIXTURES = Path(__file__).parent / "fixtures"


def exact(value: Any) -> Any:
    """A converted value as to_people shows it: a decimal's digits as a Decimal."""
    if isinstance(value, orjson.Fragment):
        return Decimal(orjson.dumps(value).decode())
    if isinstance(value, list):
        return [exact(v) for v in value]
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    return value


class Converted:
    """One column converted value by value, by the registry's per-value encoders alone."""

    def __init__(self, series: pd.Series, label: str, top: bool) -> None:
        self.values: list[Any] = []
        self.problems: set[int] = set()
        for row, value in enumerate(python_values(series).tolist()):
            try:
                converted = scalar(value, "utc", label)
            except Unsendable:
                converted = None
                self.problems.add(row)
            if top and converted is not None and type(converted) is not str:
                self.problems.add(row)
            self.values.append(converted)
        self.missing = [v is None for v in self.values]


def reference(frame: pd.DataFrame, send_nulls: bool = False) -> list[dict[str, Any] | None]:
    """Each row's person built as a dict, one value at a time (None for a problem row):
    the registry's per-value encoders, against which its column encoders are held."""
    columns = []
    for position, name in enumerate(frame.columns):
        top = name in TOP_LEVEL
        label = name if top else f"traits.{trait_name(name)}"
        converted = Converted(frame.iloc[:, position], label, top)
        columns.append((name if top else trait_name(name), top, converted))
    people: list[dict[str, Any] | None] = []
    for row in range(len(frame)):
        if any(row in c.problems for _, _, c in columns):
            people.append(None)
            continue
        person: dict[str, Any] = {}
        traits: dict[str, Any] = {}
        for key, top, converted in columns:
            missing = bool(converted.missing[row])
            if missing and (not send_nulls or key == "userId"):
                continue
            (person if top else traits)[key] = None if missing else exact(converted.values[row])
        if traits or (send_nulls and any(not top for _, top, _ in columns)):
            person["traits"] = traits
        identified = any(key in ("userId", "email") and not c.missing[row] for key, _, c in columns)
        people.append(person if identified else None)
    return people


def check(frame: pd.DataFrame, send_nulls: bool = False) -> None:
    expected = reference(frame, send_nulls)
    payloads = encode_people(frame, send_nulls=send_nulls, naive_timestamps="utc")
    wire = payloads.wire.to_pylist()
    digits = functools.partial(orjson.dumps, default=lambda d: orjson.Fragment(str(d)))
    assert wire == [None if p is None else digits(p) for p in expected]
    assert payloads.people == expected
    assert payloads.content_hashes().tolist() == content_hashes(expected).tolist()
    known = [p if p and (p.get("userId") or p.get("email")) else None for p in expected]
    assert payloads.keys().to_pylist() == identity_keys(known)


texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
columns = {
    "userId": st.one_of(st.none(), texts, st.sampled_from(["u1", "u2", "ü"])),
    "email": st.one_of(st.none(), texts, st.sampled_from(["A@B.io", "Ä@ß.io", "İ@x.io"])),
    "plan": st.one_of(st.none(), texts),
    "score": st.one_of(st.floats(allow_nan=True, allow_infinity=False), st.none()),
    "logins": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "active": st.booleans(),
    "seen": st.datetimes(
        min_value=dt.datetime(1900, 1, 1),
        max_value=dt.datetime(2200, 1, 1),
        timezones=st.just(dt.UTC),
    ),
    "tags": st.one_of(st.none(), st.lists(st.integers(0, 9), max_size=2)),
    "prefs": st.dictionaries(st.sampled_from(["b", "a", "é"]), st.integers(0, 9), max_size=3),
}


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(min_value=0, max_value=12))
    names = draw(st.lists(st.sampled_from(sorted(columns)), unique=True, min_size=1))
    data = {name: draw(st.lists(columns[name], min_size=n, max_size=n)) for name in names}
    frame = pd.DataFrame(data, index=range(n))
    for name in ("logins", "active"):
        if name in frame and n:
            frame[name] = frame[name].astype("int64" if name == "logins" else "bool")
    if "seen" in frame and n:
        frame["seen"] = pd.to_datetime(frame["seen"], utc=True)
    if "plan" in frame and draw(st.booleans()):
        frame["plan"] = frame["plan"].astype("category")
    return frame


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frames(), send_nulls=st.booleans())
def test_column_bytes_hashes_and_keys_equal_the_dict_path(frame, send_nulls):
    check(frame, send_nulls)


def test_the_legacy_frame_in_every_dtype_equals_the_dict_path():
    frame = legacy_people()
    check(frame)
    check(frame, send_nulls=True)
    check(frame.convert_dtypes(dtype_backend="pyarrow").iloc[:, :10])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=20))
def test_numbers_are_written_as_orjson_writes_each_one(values):
    assert number_texts(np.array(values, dtype=np.float64)).to_pylist() == [
        orjson.dumps(v) for v in values
    ]


def test_every_float_bit_pattern_sampled_is_written_as_orjson_writes_it():
    bits = np.random.default_rng(17).integers(0, 2**63, 200_000, dtype=np.int64)
    values = np.concatenate([bits.view(np.float64), -bits.view(np.float64)])
    values = values[np.isfinite(values)]
    assert number_texts(values).to_pylist() == [orjson.dumps(v) for v in values.tolist()]


def test_integers_at_the_edges():
    values = np.array([-(2**63), -1, 0, 2**63 - 1], dtype=np.int64)
    assert number_texts(values).to_pylist() == [orjson.dumps(v) for v in values.tolist()]
    assert number_texts(np.array([2**64 - 1], dtype=np.uint64)).to_pylist() == [
        b"18446744073709551615"
    ]


def test_strings_are_escaped_as_orjson_escapes_them():
    values = ['"', "\\", "\x00\x01\x1f\x7f", "\t\n\r\b\f", "é 🚀 \u2028", "plain", None]
    assert string_texts(pa.array(values)).to_pylist() == [
        None if v is None else orjson.dumps(v) for v in values
    ]


def test_a_state_written_before_column_encoding_finds_everyone_sent_right_unchanged(
    flameup_server, to_server, tmp_path
):
    """Every person whose values were sent right is unchanged; those whose decimal was sent
    through a float (``Decimal("1")`` as ``1.0``, where its digits say ``1``) are resent once
    with the decimal's own digits, and then they too are unchanged."""
    state = tmp_path / STATE_NAME
    shutil.copy(FIXTURES / STATE_NAME, state)
    before = pd.read_parquet(state)
    people = legacy_people()
    through_float = [str(d) != orjson.dumps(float(d)).decode() for d in people["balance"]]
    result = people.flameup.upsert(state=state, **to_server)
    resent = result["flameup_status"] != "skipped"
    assert resent.tolist() == through_float and any(through_float)
    assert (result.loc[~resent, "flameup_error"] == "unchanged since last sync").all()
    assert set(result.loc[~resent, "flameup_id"]) <= set(before["flameup_id"])
    again = people.flameup.upsert(state=state, **to_server)
    assert (again["flameup_error"] == "unchanged since last sync").all()
    with SyncState.open(state) as sync:
        after = sync.frame().set_index("identity")["content_hash"]
    old = before.set_index("identity")["content_hash"]
    assert (after != old.loc[after.index]).sum() == resent.sum()
