"""Incremental sync state: what was last sent for each identity, so a rerun sends only changes.

The state at ``PATH`` is a parquet file with one row per identity::

    identity       string   "u:<userId>" or "e:<email, lower-cased>"
    identity_hash  int64    a 64-bit hash of identity (what lookups use, in memory)
    content_hash   int64    blake2b of exactly the person dict that was sent
    flameup_id     string   the id Flameup answered with
    synced_at      timestamp[us, UTC]

A run appends each acknowledged batch to a journal beside it (``PATH.journal``, one JSON line
per person, flushed after every batch) and, when it ends, folds the journal into a new parquet
file written beside the old one and moved over it with an atomic rename. A run killed at any
point therefore leaves a readable parquet file plus a journal whose complete lines are replayed
by the next run (a torn last line is ignored): only batches in flight at the kill are resent.
The journal is flushed to the operating system, not fsynced per batch, so it survives a killed
process; after a power loss the last batches may be resent, which is safe (upserts are
idempotent). A lock file stops two runs from sharing one state.

People are recorded only after Flameup acknowledged the batch that carried them, and only
when it created or updated them: a rejected or failed person is tried again next time.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from .._people.identity import find_sorted, identity_hashes
from .._send.delivery import PersonOutcome
from ..exceptions import StateError
from .result import DELIVERED

__all__ = ["SyncState"]

logger = logging.getLogger("flameup_pandas")

STATE_SCHEMA = pa.schema(
    [
        ("identity", pa.string()),
        ("identity_hash", pa.int64()),
        ("content_hash", pa.int64()),
        ("flameup_id", pa.string()),
        ("synced_at", pa.timestamp("us", tz="UTC")),
    ]
)


class SyncState:
    """The sync state of one target (a file path): look up, record, and fold on close."""

    def __init__(self, path: Path, table: pa.Table, lock: IO[bytes]) -> None:
        self.path = path
        self._lock = lock
        self._table = table
        hashes = table["identity_hash"].to_numpy()
        self._order = np.argsort(hashes, kind="stable")
        self._sorted_hashes = hashes[self._order]
        # what each lookup reads, in the order of the sorted hashes, made once per run
        self._sorted_contents = table["content_hash"].to_numpy()[self._order]
        self._sorted_ids = table["flameup_id"].combine_chunks().take(pa.array(self._order))
        self._journal: IO[bytes] | None = None

    @classmethod
    def open(cls, path: str | Path) -> SyncState:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_name(path.name + ".lock"), "ab")  # noqa: SIM115 - held until close
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise StateError(f"the sync state {path} is in use by another run") from None
        try:
            table = merge(read_base(path), read_journal(journal_path(path)))
        except BaseException:
            lock.close()
            raise
        if journal_path(path).exists():
            write_atomically(table, path)
            journal_path(path).unlink()
        return cls(path, table, lock)

    def __len__(self) -> int:
        return int(self._table.num_rows)

    def __enter__(self) -> SyncState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frame(self) -> pd.DataFrame:
        """The state as a DataFrame (one row per identity)."""
        frame: pd.DataFrame = self._table.to_pandas()
        return frame

    def lookup(self, wanted: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each person, by its identity hash (:func:`identity_hashes` of its key): was
        exactly this payload (content hash) last sent? And its known flameup_id."""
        unchanged = np.zeros(len(wanted), dtype=bool)
        ids = np.full(len(wanted), None, dtype=object)
        found, hit = find_sorted(self._sorted_hashes, wanted)
        hit &= wanted != 0
        at = found[hit]
        unchanged[hit] = self._sorted_contents[at] == np.asarray(hashes)[hit]
        if len(at):
            ids[hit] = self._sorted_ids.take(pa.array(at)).to_pylist()
        return unchanged, ids

    def record_outcomes(
        self, keys: Sequence[str | None], hashes: np.ndarray, outcomes: Sequence[PersonOutcome]
    ) -> None:
        """Append the people Flameup acknowledged (created/updated) to the journal, durably."""
        now = datetime.now(UTC).isoformat()
        lines = [
            orjson.dumps({"i": key, "h": int(h), "id": o.flameup_id, "t": now})
            for key, h, o in zip(keys, hashes, outcomes, strict=True)
            if o.status in DELIVERED and key is not None
        ]
        if not lines:
            return
        if self._journal is None:
            self._journal = open(journal_path(self.path), "ab")  # noqa: SIM115 - closed in close()
        self._journal.write(b"\n".join(lines) + b"\n")
        self._journal.flush()

    def close(self) -> None:
        """Fold the journal into the parquet file (atomic rename) and release the lock."""
        try:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
                table = merge(self._table, read_journal(journal_path(self.path)))
                write_atomically(table, self.path)
                journal_path(self.path).unlink()
                self._table = table
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def read_base(path: Path) -> pa.Table:
    if not path.exists():
        return STATE_SCHEMA.empty_table()
    try:
        table = pq.read_table(path)
        return table.select(STATE_SCHEMA.names).cast(STATE_SCHEMA)
    except (OSError, pa.ArrowException, KeyError, ValueError) as exc:
        raise StateError(f"cannot read the sync state {path}: {exc}") from exc


JOURNAL_SCHEMA = pa.schema(
    [
        ("i", pa.string()),
        ("h", pa.int64()),
        ("id", pa.string()),
        ("t", pa.string()),
    ]
)


def read_journal(path: Path) -> pa.Table:
    """The journal's complete lines as a table; a torn last line (from a kill) is cut off.

    Read by Arrow's JSON reader, so a journal of millions of people never becomes millions of
    Python dicts.
    """
    if not path.exists():
        return STATE_SCHEMA.empty_table()
    drop_torn_tail(path)
    if path.stat().st_size == 0:
        return STATE_SCHEMA.empty_table()
    options = pajson.ParseOptions(
        explicit_schema=JOURNAL_SCHEMA, unexpected_field_behavior="ignore"
    )
    try:
        lines = pajson.read_json(path, parse_options=options)
    except pa.ArrowInvalid as exc:
        raise StateError(f"cannot read the sync state journal {path}: {exc}") from exc
    keys = lines["i"].to_numpy(zero_copy_only=False)
    return pa.table(
        {
            "identity": lines["i"],
            "identity_hash": pa.array(identity_hashes(keys), pa.int64()),
            "content_hash": lines["h"],
            "flameup_id": lines["id"],
            "synced_at": pc.cast(lines["t"], STATE_SCHEMA.field("synced_at").type),
        },
        schema=STATE_SCHEMA,
    )


def drop_torn_tail(path: Path) -> None:
    """Cut a journal back to its last complete line (a write cut short by a kill)."""
    size = path.stat().st_size
    with open(path, "rb+") as handle:
        tail_start = max(size - 65536, 0)
        handle.seek(tail_start)
        tail = handle.read()
        if not tail or tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        if cut < 0 and tail_start > 0:
            raise StateError(f"the sync state journal {path} ends in an overlong torn line")
        logger.warning("ignoring a torn line at the end of %s (a run was killed mid-write)", path)
        handle.truncate(tail_start + cut + 1 if cut >= 0 else 0)


def merge(base: pa.Table, newer: pa.Table) -> pa.Table:
    """``base`` updated with ``newer``: for each identity the latest record wins."""
    if newer.num_rows == 0:
        return base
    both = pa.concat_tables([base, newer])
    hashes = both["identity_hash"].to_numpy()
    # keep the last occurrence of each identity hash
    reversed_first = np.unique(hashes[::-1], return_index=True)[1]
    keep = np.sort(len(hashes) - 1 - reversed_first)
    return both.take(pa.array(keep))


def write_atomically(table: pa.Table, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, temporary, compression="zstd")
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise StateError(f"cannot write the sync state {path}: {exc}") from exc
