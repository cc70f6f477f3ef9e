"""Reference implementations the tests hold the column-wise code to: a person dict's content
hash and identity key, written the plain way, one person at a time; and a Spark executor's
planned rows as a frame of Python values, for a look."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from flameup_pandas._people.wire import blake2b_hashes, text_array
from flameup_pandas._run.plan import Rules
from flameup_pandas.spark._executors import planned_batch


def content_hashes(people: Sequence[Mapping[str, Any] | None]) -> np.ndarray:
    """A stable int64 fingerprint per person (0 for None), to tell changed people apart.

    blake2b (8 bytes) of the person's JSON with sorted keys, read little-endian: the same on
    every machine, process and version. :meth:`Payloads.content_hashes` gives the same from
    the column-built bytes.

    >>> content_hashes([{"userId": "u1"}, None]).tolist()
    [7249378761026338362, 0]
    """
    dumps, option = orjson.dumps, orjson.OPT_SORT_KEYS
    return blake2b_hashes(
        text_array(
            [None if p is None else dumps(p, default=_digits, option=option) for p in people]
        )
    )


def _digits(value: Any) -> Any:
    """A ``Decimal`` of a person dict as the JSON number of its digits (as it was sent)."""
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def identity_key(person: Mapping[str, Any]) -> str:
    """The key two rows share when they are the same person.

    >>> identity_key({"userId": "u1", "email": "A@x.io"}), identity_key({"email": "A@x.io"})
    ('u:u1', 'e:a@x.io')
    """
    user_id = person.get("userId")
    if user_id:
        return f"u:{user_id}"
    email = person.get("email")
    if email:
        return f"e:{str(email).lower()}"
    raise ValueError("a person without userId or email has no identity")


def identity_keys(people: Sequence[Mapping[str, Any] | None]) -> list[str | None]:
    """identity_key per position (None for None)."""
    return [None if p is None else identity_key(p) for p in people]


def planned_rows(rules: Rules, frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """:func:`planned_batch` as a frame of Python values (None where missing), for a look."""
    batch = planned_batch(rules, frame, rows)
    return pd.DataFrame(
        {
            name: column.to_numpy(zero_copy_only=False)
            if pa.types.is_integer(column.type)
            else pd.Series(column.to_numpy(zero_copy_only=False), dtype=object)
            for name, column in zip(batch.schema.names, batch.columns, strict=True)
        }
    )
