"""The events' sync state: which events Flameup holds, so no event is sent twice.

JSON lines, one per change::

    {"key": "h:3f2a...", "status": "pending"}                 about to be sent
    {"key": "h:3f2a...", "status": "sent", "event_id": "evt_..."}
    {"key": "h:3f2a...", "status": "uncertain"}               the answer was lost, the
                                                              listing could not tell
    {"key": "h:3f2a...", "status": "clear"}                   not stored (rejected, failed)

The last line of a key wins. ``pending`` is written and made durable *before* each request,
so a run killed at any point (kill -9 included) leaves every event it may have sent marked:
the next run looks ``pending`` and ``uncertain`` events up in the listing before it sends
them. An outcome is written at once but not made durable on its own: lost in a crash, its key
is still ``pending`` and the listing settles it (it costs a lookup, never a duplicate); the
next ``pending`` sync, or closing the state, makes it durable too. Several senders record at
once (events go out from several threads): ``pending`` lines that arrive together share one
sync (a group commit).

Where the lines are kept is decided by the state's location
(:mod:`flameup_pandas._storage`), as for the people state:

- **a local path**: one append-only file, a sync is an ``fsync``; a torn last line (a kill
  mid-write) is dropped; a lock file (``fcntl``) beside it stops two runs from sharing it;
- **a URI** (``s3://``, ``gs://``, ``az://``, or a path on ``filesystem=``): one object of the
  state's lines (the latest per key) and, while a run lives, journal objects under
  ``<state>.journal/``, a sync being the write of one (:class:`JournalObjects`); the lock is a
  lease under ``<state>.lock/`` (:class:`Lease`, renewed while the run lives, broken by hand
  with ``unlock_state``). The next run folds a killed run's journal objects in first.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import IO, Any

import orjson

from .._storage import LEASE_SECONDS, JournalObjects, Lease, Location, Store, resolve, run_name
from ..exceptions import ConfigurationError, StateError

__all__ = ["EventState"]

logger = logging.getLogger("flameup_pandas")

OPEN_STATUSES = frozenset({"pending", "uncertain"})
Entries = dict[str, dict[str, Any]]


class _Lines:
    """Where a state's lines are kept: read at open, appended, synced, folded at close."""

    shown: str

    def read(self) -> Entries:
        raise NotImplementedError

    def append(self, line: bytes) -> None:
        raise NotImplementedError

    def sync(self) -> None:
        """Make every line appended so far durable."""
        raise NotImplementedError

    def close(self, entries: Entries) -> None:
        raise NotImplementedError


class EventState:
    """The keys of the events a run has sent, may have sent, or is about to send.

    Safe to record from several threads at once.
    """

    def __init__(self, lines: _Lines) -> None:
        self._lines = lines
        self.path = lines.shown
        self.entries = lines.read()
        self._writing = threading.Lock()
        self._syncing = threading.Lock()
        self._open = True
        self._written = 0  # lines appended so far
        self._synced = 0  # lines known to be durable

    @classmethod
    def open(cls, path: str | os.PathLike[str], filesystem: Any = None) -> EventState:
        """Read the state at ``path`` (empty when there is none) and lock it for this run.

        ``path`` is a local path or a URI, on ``filesystem`` when one is given.
        """
        where = resolve(os.fspath(path), filesystem)
        if where.local:
            return cls(_LocalLines.open(where.local_path))
        if type(where.fs).__name__ == "ArrowFSWrapper":
            raise ConfigurationError(
                "an events state needs a filesystem that can create an object only if absent "
                "(its lock): pass a URI or an fsspec filesystem, not a pyarrow one"
            )
        return cls(_ObjectLines.open(where))

    def __enter__(self) -> EventState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self, key: str) -> str | None:
        entry = self.entries.get(key)
        return None if entry is None else str(entry["status"])

    def event_id(self, key: str) -> str | None:
        entry = self.entries.get(key)
        return None if entry is None else entry.get("event_id")

    def record(self, key: str, status: str, event_id: str | None = None) -> None:
        """Append one change; a ``pending`` one is durable when this returns."""
        entry: dict[str, Any] = {"key": key, "status": status}
        if event_id is not None:
            entry["event_id"] = event_id
        with self._writing:
            self._check_open()
            self._lines.append(orjson.dumps(entry) + b"\n")
            self._written += 1
            mine = self._written
            self.entries[key] = entry
        if status == "pending":
            self._sync(mine)

    def _sync(self, line: int) -> None:
        """Make every line up to ``line`` durable; one sync covers all appended before it."""
        with self._syncing:
            if self._synced >= line:
                return  # another sender's sync covered this line
            with self._writing:
                self._check_open()
                upto = self._written
            self._lines.sync()
            self._synced = upto

    def _check_open(self) -> None:
        if not self._open:
            raise StateError(f"the events state {self.path} is closed")

    def close(self) -> None:
        with self._syncing, self._writing:
            if self._open:
                self._open = False
                self._lines.close(self.entries)


class _LocalLines(_Lines):
    """A local file of lines, appended and fsynced; an ``fcntl`` lock file beside it."""

    def __init__(self, path: Path, lock: IO[bytes]) -> None:
        self.path = path
        self.shown = str(path)
        self._lock = lock
        self._file: IO[bytes] | None = None

    @classmethod
    def open(cls, path: Path) -> _LocalLines:
        lock = Path(f"{path}.lock").open("ab")  # noqa: SIM115 (held until close())
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise StateError(
                f"the events state {path} is in use by another run (lock {path}.lock)"
            ) from None
        return cls(path, lock)

    def read(self) -> Entries:
        path = self.path
        if not path.exists():
            return {}
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            with path.open("r+b") as f:  # a torn last line: drop it so appends start clean
                f.truncate(len(complete))
        return parse_lines(complete, self.shown)

    def append(self, line: bytes) -> None:
        if self._file is None:
            self._file = self.path.open("ab")
        self._file.write(line)
        self._file.flush()

    def sync(self) -> None:
        if self._file is not None:
            os.fsync(self._file.fileno())

    def close(self, entries: Entries) -> None:
        try:
            if self._file is not None:
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


class _ObjectLines(_Lines):
    """A state on object storage: one object of lines, journal objects, a lease for a lock.

    A keeper thread renews the lease every third of its length and writes outcome lines
    that waited ``flush_seconds``. When the store fails past its retries, the next record
    raises :class:`StateError` and the run stops: the events it marked pending are looked up
    by the next run, never resent blindly.
    """

    def __init__(self, where: Location, lease: Lease, flush_seconds: float) -> None:
        self.where = where
        self.shown = str(where)
        self.store = lease.store
        self.lease = lease
        # every pending line is flushed by its sender; outcome lines ride along, or wait
        self.journal = JournalObjects(
            self.store, where.path + ".journal", run_name(), 1_000_000, flush_seconds
        )
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def open(
        cls, where: Location, lease_seconds: float = LEASE_SECONDS, flush_seconds: float = 5.0
    ) -> _ObjectLines:
        store = Store(where.fs)
        lease = Lease.take(store, where.path + ".lock", str(where), lease_seconds)
        return cls(where, lease, flush_seconds)

    def read(self) -> Entries:
        try:
            data = self.store.read(self.where.path) or b""
            entries = parse_lines(data, self.shown)
            leftovers = JournalObjects.existing(self.store, self.journal.folder)
            for path in leftovers:
                entries.update(parse_lines(self.store.read(path) or b"", f"{self.shown}: {path}"))
            if leftovers:  # a killed run's journal: folded in before anything is sent
                self._write(entries)
                self.store.delete(leftovers)
        except BaseException:
            self.lease.release()
            raise
        self._thread = threading.Thread(target=self._keep, name="flameup-events", daemon=True)
        self._thread.start()
        return entries

    def append(self, line: bytes) -> None:
        if self.failure is not None:
            raise StateError(
                f"the events state {self.shown} cannot be kept: {self.failure}; the run "
                "stopped, and events it may have sent are looked up by the next run"
            ) from self.failure
        self.journal.add(line)

    def sync(self) -> None:
        self.journal.flush()

    def close(self, entries: Entries) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.journal.flush()
            if self.journal.written:
                self.lease.check()
                self._write(entries)
                self.store.delete(self.journal.written)
        finally:
            with contextlib.suppress(Exception):
                self.lease.release()

    def _write(self, entries: Entries) -> None:
        self.store.write(
            self.where.path, b"".join(orjson.dumps(e) + b"\n" for e in entries.values())
        )

    def _keep(self) -> None:
        """Renew the lease and flush waiting outcome lines, until close (or a failure)."""
        seconds = self.lease.seconds
        tick = min(self.journal.every_seconds, seconds / 3) / 2
        renewed = time.monotonic()
        while not self._stop.wait(tick):
            try:
                if self.journal.due():
                    self.journal.flush()
                if time.monotonic() - renewed >= seconds / 3:
                    self.lease.renew()
                    renewed = time.monotonic()
            except Exception as exc:
                logger.error("events state %s: %s", self.shown, exc)
                self.failure = exc
                return


def parse_lines(data: bytes, shown: str) -> Entries:
    """The entries of a state's lines (the last of each key); StateError naming a bad line."""
    entries: Entries = {}
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
            entries[str(entry["key"])] = entry
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise StateError(f"{shown}: line {number} is not an events state entry") from exc
    return entries
