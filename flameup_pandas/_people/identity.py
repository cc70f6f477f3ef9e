"""Who a row is: identity keys (``u:<userId>``, else ``e:<email lower-cased>``), their 64-bit
hashes, and a compact set of such hashes.

Two rows are the same person when their keys are equal; the sync state, the repeat finder of
a streaming run and the people reader look people up by the key's hash.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .wire import bools, replaced

__all__ = ["HashRuns", "find_sorted", "identity_hashes", "identity_key_array", "lowered_emails"]


def identity_key_array(user_ids: pa.Array, emails: pa.Array) -> pa.Array:
    """Each row's identity key over columns of userIds and emails: ``u:<userId>``, else
    ``e:<email lower-cased>``; null where neither is set.

    >>> identity_key_array(pa.array(["u1", None, None]), pa.array(["A@x.io", "B@Y.io", None])
    ... ).to_pylist()
    ['u:u1', 'e:b@y.io', None]
    """
    user_ids = user_ids.cast(pa.large_string())
    text, empty = pa.large_string(), pa.scalar("", pa.large_string())
    has_user = pc.fill_null(pc.greater(pc.binary_length(user_ids), 0), False)
    by_user = pc.binary_join_element_wise(pa.scalar("u:", text), user_ids, empty)
    if pc.all(has_user).as_py() is not False:
        return by_user  # everyone has a userId (or there is nobody): no email is looked at
    lowered = lowered_emails(emails)
    has_email = pc.fill_null(pc.greater(pc.binary_length(emails), 0), False)
    by_email = pc.binary_join_element_wise(pa.scalar("e:", text), lowered, empty)
    by_email = pc.if_else(has_email, by_email, pa.scalar(None, text))
    return pc.if_else(has_user, by_user, by_email)


def lowered_emails(emails: pa.Array) -> pa.Array:
    """Emails lower-cased as Python does (``str.lower``): ASCII ones in Arrow, the others one
    by one, since Unicode lower-casing rules differ between libraries."""
    emails = emails.cast(pa.large_string())
    lowered = pc.ascii_lower(emails)
    unusual = np.flatnonzero(bools(pc.invert(pc.string_is_ascii(emails))))
    if len(unusual) == 0:
        return lowered
    python = [email.lower() for email in emails.take(pa.array(unusual)).to_pylist()]
    return replaced(lowered, unusual, pa.array(python, pa.large_string()))


def identity_hashes(keys: Sequence[str | None] | pa.Array) -> np.ndarray:
    """64-bit hashes of identity keys, a list or an Arrow string array (stable across
    processes and machines); 0 for None."""
    if not isinstance(keys, pa.Array | pa.ChunkedArray):
        keys = pa.array(keys, pa.large_string())
    # as UTF-8 bytes, which hash as the strings do (hash_array encodes strings to UTF-8) but
    # with no string made or encoded per key
    values = pc.fill_null(keys.cast(pa.large_binary()), b"").to_numpy(zero_copy_only=False)
    hashed = pd.util.hash_array(values, categorize=False).view(np.int64)
    hashed[bools(pc.equal(pc.binary_length(keys), 0), missing=True)] = 0
    return hashed


def find_sorted(sorted_values: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each wanted value is in a sorted array, and where (meaningful where it is)."""
    found = np.zeros(len(wanted), dtype=np.int64)
    present = np.zeros(len(wanted), dtype=bool)
    if len(sorted_values) == 0 or len(wanted) == 0:
        return found, present
    searched = None
    if len(wanted) > 4 * len(sorted_values):
        # Few values, many wanted (a run's records against the whole state): a table of the
        # values' low bits rules out most wanted ones in one pass, and only the rest are
        # searched for (a binary search per value over the whole lot is several times slower).
        size = 1 << max(10, (8 * len(sorted_values)).bit_length())
        seen = np.zeros(size, dtype=bool)
        seen[sorted_values & (size - 1)] = True
        searched = np.flatnonzero(seen[wanted & (size - 1)])
        wanted = wanted[searched]
    # Searched in sorted order, each search starts where the last ended: several times
    # faster over a large array than searching in the callers' order (fewer cache misses).
    order = np.argsort(wanted)
    at = np.empty(len(wanted), dtype=np.int64)
    at[order] = np.searchsorted(sorted_values, wanted[order])
    np.minimum(at, len(sorted_values) - 1, out=at)
    hit = sorted_values[at] == wanted
    if searched is None:
        return at, hit
    found[searched], present[searched] = at, hit
    return found, present


class HashRuns:
    """A set of 64-bit hashes kept as a few sorted arrays, merged like a binary counter.

    8 bytes a member, never a set of Python objects: what a run uses to find identities (or
    event keys) met earlier, and the people reader to drop people already read. Each member
    may carry a label (the row that brought it: 8 more bytes for a file's row numbers).
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray | None]] = []

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        found = np.zeros(len(hashes), dtype=bool)
        for run, _ in self._runs:
            found |= find_sorted(run, hashes)[1]
        return found

    def labels_of(self, hashes: np.ndarray) -> list[object]:
        """For each hash, the label it was added with (None: not a member, or no label)."""
        found: list[object] = [None] * len(hashes)
        for run, labels in self._runs:
            where, present = find_sorted(run, hashes)
            for i in np.flatnonzero(present).tolist():
                label = None if labels is None else labels[where[i]]
                found[i] = label.item() if isinstance(label, np.generic) else label
        return found

    def add(self, hashes: np.ndarray, labels: list[object] | None = None) -> None:
        if len(hashes) == 0:
            return
        order = np.argsort(hashes, kind="stable")
        self._runs.append((hashes[order], None if labels is None else _packed(labels)[order]))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (last, last_labels), (into, into_labels) = self._runs.pop(), self._runs[-1]
            both = np.concatenate([into, last])
            order = np.argsort(both, kind="stable")
            carried = None
            if into_labels is not None and last_labels is not None:
                carried = np.concatenate([into_labels, last_labels])[order]
            self._runs[-1] = (both[order], carried)


def _packed(labels: list[object]) -> np.ndarray:
    """Labels as an array: a file's row numbers as 8-byte ints, anything else as objects."""
    if all(isinstance(x, int) for x in labels):
        return np.array(labels, dtype=np.int64)
    carried = np.empty(len(labels), dtype=object)
    carried[:] = labels
    return carried
