"""Incremental sync state: what was last sent for each identity, so a rerun sends only changes.

The state at ``PATH`` is a parquet file with one row per identity::

    identity       string   "u:<userId>" or "e:<email, lower-cased>"
    identity_hash  int64    a 64-bit hash of identity (what lookups use, in memory)
    content_hash   int64    blake2b of exactly the person dict that was sent
    flameup_id     string   the id Flameup answered with
    synced_at      timestamp[us, UTC]
    fields         list<uint32>  a hash of each field sent (name and value), so a plan knows
                                 which fields change; null in older states
    sent           large_string  the person as last sent (JSON, keys sorted), kept only with
                                 ``state_values=True``; null otherwise
    source_hash    int64    a hash of the row it was sent from, so a rerun skips that row,
                            unchanged, unread (null when unknown: older states, Spark)

Acknowledged batches go to a journal, folded into the file when the run ends (written whole,
moved over the old one); the journal and lock are the keeper's
(:mod:`flameup_pandas._storage.keeper`). ``docs/behaviour/sync-state.md`` tells the rest.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from .._people.identity import find_sorted, identity_hashes
from .._people.wire import scattered, taken
from .._send.delivery import PersonOutcome
from .._storage import LEASE_SECONDS, Location, Store, StoreRetry, break_lock, resolve
from .._storage.keeper import Content, Journals, LocalKeeper, ObjectKeeper, keep, load
from ..exceptions import StateError
from .result import DELIVERED

__all__ = ["Known", "SyncState", "break_state_lock"]

STATE_SCHEMA = pa.schema(
    [
        ("identity", pa.string()),
        ("identity_hash", pa.int64()),
        ("content_hash", pa.int64()),
        ("flameup_id", pa.string()),
        ("synced_at", pa.timestamp("us", tz="UTC")),
        ("fields", pa.list_(pa.uint32())),
        ("sent", pa.large_string()),
        ("source_hash", pa.int64()),
    ]
)
OPTIONAL = ("fields", "sent", "source_hash")  # columns an earlier version may not have written
WRITE_OPTIONS: dict[str, Any] = {
    # Hashes are random bits that no codec shrinks, and ids near enough (zstd halved a UUID's
    # hex and took 0.3 s a million to write and read back): stored plain. Identities, hashes
    # and ids are all distinct: a dictionary of them is built only to be dropped, and the
    # bounds of random values help no reader. Only the times repeat.
    "compression": {
        name: "zstd" if name in ("identity", "synced_at", "sent") else "none"
        for name in STATE_SCHEMA.names
    },
    "use_dictionary": ["synced_at"],
    "write_statistics": ["synced_at"],
}


@dataclass
class Known:
    """Rows of a chunk the state knows (positions), and of their people: the identity hashes
    and content hashes, and (taken only if asked for) the ids."""

    positions: np.ndarray
    identities: np.ndarray
    contents: np.ndarray
    ids: Callable[[], np.ndarray]


class SyncState:
    """The sync state of one target (a file path or URI): look up, record, and fold on close."""

    def __init__(
        self, path: Path | Location, table: pa.Table, keeper: LocalKeeper | ObjectKeeper
    ) -> None:
        self.path = path
        self._keeper = keeper
        self.table = table  # as read when opened, any journal a killed run left folded in
        self._hashes = hashes = table["identity_hash"].to_numpy()
        self._contents = table["content_hash"].to_numpy()
        self._sources = table["source_hash"].fill_null(0).to_numpy().copy()  # noted ones too
        # each identity is there once (every write merges), unless a file written elsewhere
        # repeats one: the first row of it is then found
        self._by_identity = _rows_by(hashes, keep="first")
        self._noted = False  # source hashes noted, to be written on closing

    @classmethod
    def open(
        cls,
        path: str | Path | Location,
        *,
        filesystem: Any = None,
        lease: float = LEASE_SECONDS,
        flush_batches: int = 20,
        flush_seconds: float = 5.0,
        retry: StoreRetry | None = None,
    ) -> SyncState:
        """Open (lock, and fold any journal a killed run left) the state at ``path``, a local
        path or a URI (on ``filesystem`` if given). The other keywords matter on object storage
        only: the lock's lease in seconds, journal flushes, how store faults are retried."""
        lost = "people acknowledged since the last journal flush are sent again next run"
        keeper = keep(
            path,
            filesystem,
            "sync state",
            lost,
            lease=lease,
            flush_batches=flush_batches,
            flush_seconds=flush_seconds,
            retry=retry,
        )
        shown = str(keeper)

        def read(data: bytes | Path | None) -> pa.Table:
            return STATE_SCHEMA.empty_table() if data is None else state_table(data, shown)

        table = load(keeper, read, merge_journals, parquet_writer)
        return cls(keeper.path if isinstance(keeper, LocalKeeper) else keeper.where, table, keeper)

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def __enter__(self) -> SyncState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frame(self) -> pd.DataFrame:
        """The state as a DataFrame (one row per identity); hashes stay exact 64-bit integers
        (``source_hash`` has nulls, which would make plain int64 floats)."""
        frame: pd.DataFrame = self.table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        return frame

    def lookup(self, wanted: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each person, by its identity hash (:func:`identity_hashes` of its key): was
        exactly this payload (content hash) last sent? And its known flameup_id."""
        unchanged = np.zeros(len(wanted), dtype=bool)
        ids = np.full(len(wanted), None, dtype=object)
        rows, hit = self._find(wanted)
        unchanged[hit] = self._contents[rows] == np.asarray(hashes)[hit]
        if len(rows):
            ids[hit] = taken(self.table["flameup_id"], rows).to_numpy(zero_copy_only=False)
        return unchanged, ids

    def sent_from(self, sources: np.ndarray) -> Known:
        """The rows of a chunk (by source hash) whose person the state last sent from this
        very row, and what the state knows of them. (A source hash stands for the row's bytes
        under the same rules: the identity, too, is the one the row made then.)"""
        rows, hit = _found(self._by_source, sources)
        ids = self.table["flameup_id"]  # (as read: closing merges a new table)
        return Known(
            np.flatnonzero(hit),
            self._hashes[rows],
            self._contents[rows],
            lambda: taken(ids, rows).to_numpy(zero_copy_only=False),
        )

    @functools.cached_property
    def _by_source(self) -> tuple[pd.Index, np.ndarray]:
        """The rows by their source hashes as read (those noted since count from the next
        run); a hash two rows share (a 64-bit collision) finds neither."""
        return _rows_by(self.table["source_hash"].fill_null(0).to_numpy(), keep=False)

    def note_sources(self, identity: np.ndarray, sources: np.ndarray) -> None:
        """Keep the source hashes of people found unchanged by their content (their rows
        changed as their people did not, or the state predates them) for the next run."""
        rows, hit = self._find(identity)
        self._sources[rows] = sources[hit]
        self._noted |= bool(hit.any())

    def known_fields(self, wanted: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        """For each identity hash: is the person in the state, and its ``fields``."""
        return self._find(wanted)[1], self.column_at("fields", wanted)

    def _find(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the identity hashes in the state, and whether each is there."""
        return _found(self._by_identity, wanted)

    def column_at(self, column: str, wanted: np.ndarray) -> pa.Array:
        """``column`` at the rows of the identity hashes found, null elsewhere (and where the
        state did not keep it). Only those rows are taken, each from its chunk as read: the
        whole column (the values kept are most of the state) is never copied."""
        rows, hit = self._find(wanted)
        return scattered(taken(self.table[column], rows), np.flatnonzero(hit), len(wanted))

    def record_outcomes(
        self,
        keys: Sequence[str | None],
        hashes: np.ndarray,
        outcomes: Sequence[PersonOutcome],
        fields: Sequence[list[int] | None] | None = None,
        sent: Sequence[str | None] | None = None,
        sources: np.ndarray | None = None,
    ) -> None:
        """Append the people Flameup acknowledged (created/updated) to the journal, durably,
        with the hashes of the fields each was sent with (when known), with
        ``state_values=True`` the person as sent (``sent``: JSON text, keys sorted), and the
        source hash of the row it was sent from (when known)."""
        now = datetime.now(UTC).isoformat()
        each = fields if fields is not None else [None] * len(keys)
        texts = sent if sent is not None else [None] * len(keys)
        rows = sources.tolist() if sources is not None else [0] * len(keys)
        lines = [
            orjson.dumps(
                {"i": key, "h": int(h), "id": o.flameup_id, "t": now, "f": f}
                | ({} if v is None else {"v": v})
                | ({"s": s} if s else {})
            )
            for key, h, o, f, v, s in zip(keys, hashes, outcomes, each, texts, rows, strict=True)
            if o.status in DELIVERED and key is not None
        ]
        if lines:
            self._keeper.append(b"\n".join(lines) + b"\n")

    def close(self) -> None:
        """Fold the journal into the state (written whole) and release the lock. The file is
        merged as it is written: a closed state's ``table`` is the one it was opened with."""

        def fold(journals: Journals) -> Content:
            if self._noted:  # before the journal, whose records are newer
                at = self.table.schema.get_field_index("source_hash")
                noted = pa.array(self._sources, mask=self._sources == 0)
                self.table = self.table.set_column(at, "source_hash", noted)
            return parquet_writer(self.table, journals)

        self._keeper.close(fold, force=self._noted)


def _rows_by(values: np.ndarray, keep: Literal["first", False]) -> tuple[pd.Index, np.ndarray]:
    """A hash index of the nonzero ``values`` and the row of each; a value that repeats
    finds its first row (``keep="first"``) or none (False)."""
    rows = np.flatnonzero(values)
    index = pd.Index(values[rows])
    if not index.is_unique:
        kept = ~index.duplicated(keep=keep)
        index, rows = index[kept], rows[kept]
    return index, rows


def _found(by: tuple[pd.Index, np.ndarray], wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the ``wanted`` values found (:func:`_rows_by`), and whether each was."""
    index, rows = by
    at = index.get_indexer(pd.Index(wanted, copy=False))
    hit = at >= 0
    return rows[at[hit]], hit


def merge_journals(table: pa.Table, journals: Journals) -> pa.Table:
    """``table`` with the records of ``journals`` (in order) merged in, in one pass over it."""
    return merge(table, _records(journals)) if journals else table


def parquet_writer(table: pa.Table, journals: Journals | None = None) -> Content:
    """What writes ``table`` as a state file, ``journals`` merged in (:func:`merged`)."""
    parts = merged(table, _records(journals)) if journals else iter([table])

    def write(stream: IO[bytes]) -> None:
        with pq.ParquetWriter(stream, table.schema, **WRITE_OPTIONS) as writer:
            for part in parts:
                writer.write_table(part)

    return write


def _records(journals: Journals) -> pa.Table:
    return pa.concat_tables([journal_table(data, shown) for shown, data in journals])


_SLICE = 1 << 18


def break_state_lock(path: str | Path, *, filesystem: Any = None) -> str:
    """Release the current lease of a state on object storage; what was done, as a sentence."""
    where = resolve(path, filesystem)
    if where.local:
        return f"{where} is a local state: its lock is released when its run's process ends"
    broken = break_lock(Store(where.fs), where.path + ".lock")
    if broken is None:
        return f"the sync state {where} was not locked"
    return (
        f"broke the lock of the sync state {where}, held by {broken.get('holder', '?')} "
        f"since {broken.get('acquired', '?')}"
    )


def state_table(source: Any, shown: str) -> pa.Table:
    """A state parquet file (a path or its bytes) in today's schema."""
    try:
        # a local file is mapped, not read: copying it in costs more than decoding it (and a
        # state is replaced by a renamed file, never written over)
        mapped = isinstance(source, Path)
        table = pq.read_table(source if mapped else pa.BufferReader(source), memory_map=mapped)
        for name in OPTIONAL:  # written before these were kept
            if name not in table.column_names:
                kind = STATE_SCHEMA.field(name).type
                table = table.append_column(name, pa.nulls(table.num_rows, kind))
        return table.select(STATE_SCHEMA.names).cast(STATE_SCHEMA)
    except (OSError, pa.ArrowException, KeyError, ValueError) as exc:
        raise StateError(f"cannot read the sync state {shown}: {exc}") from exc


JOURNAL_SCHEMA = pa.schema(
    [
        ("i", pa.string()),
        ("h", pa.int64()),
        ("id", pa.string()),
        ("t", pa.string()),
        ("f", pa.list_(pa.uint32())),
        ("v", pa.large_string()),
        ("s", pa.int64()),
    ]
)


def journal_table(source: Any, shown: str) -> pa.Table:
    """Complete journal lines (a path or bytes) as rows of the state."""
    if (source.stat().st_size if isinstance(source, Path) else len(source)) == 0:
        return STATE_SCHEMA.empty_table()
    if isinstance(source, bytes):
        source = pa.BufferReader(source)
    options = pajson.ParseOptions(
        explicit_schema=JOURNAL_SCHEMA, unexpected_field_behavior="ignore"
    )
    try:
        lines = pajson.read_json(source, parse_options=options)
    except pa.ArrowInvalid as exc:
        raise StateError(f"cannot read the sync state journal {shown}: {exc}") from exc
    keys = lines["i"].to_numpy(zero_copy_only=False)
    return pa.table(
        {
            "identity": lines["i"],
            "identity_hash": pa.array(identity_hashes(keys), pa.int64()),
            "content_hash": lines["h"],
            "flameup_id": lines["id"],
            "synced_at": pc.cast(lines["t"], STATE_SCHEMA.field("synced_at").type),
            "fields": lines["f"],
            "sent": lines["v"],
            "source_hash": lines["s"],
        },
        schema=STATE_SCHEMA,
    )


def merge(base: pa.Table, newer: pa.Table) -> pa.Table:
    """``base`` updated with ``newer``: for each identity the latest record wins."""
    return base if newer.num_rows == 0 else pa.concat_tables(merged(base, newer))


def merged(base: pa.Table, newer: pa.Table) -> Iterator[pa.Table]:
    """:func:`merge`'s table in pieces, slices of ``base`` then ``newer``: written piece by
    piece, the merged state is never one more copy in memory (a million people are 100 MB)."""
    # base (a merge: each identity once) less the identities recorded again, then the last
    # record of each in newer: only newer (a run's few records) is sorted, base is filtered
    hashes = newer["identity_hash"].to_numpy()
    uniques, reversed_first = np.unique(hashes[::-1], return_index=True)
    if len(uniques) < len(hashes):
        newer = newer.take(pa.array(np.sort(len(hashes) - 1 - reversed_first)))
    again = find_sorted(uniques, base["identity_hash"].to_numpy())[1]
    for start in range(0, base.num_rows, _SLICE):
        part, kept = base.slice(start, _SLICE), ~again[start : start + _SLICE]
        yield part if kept.all() else part.filter(pa.array(kept))
    yield newer
