"""The state keeper: the lock, the journal and the folding of one state, for every state.

A local path has an ``fcntl`` lock file (``<state>.lock``) and a journal file appended line by
line (:class:`LocalKeeper`); a URI has a lease under ``<state>.lock/`` renewed by a thread and
journal objects under ``<state>.journal/`` flushed every few records or seconds
(:class:`ObjectKeeper`), and a store failing past its retries stops the run with
:class:`~flameup_pandas.StateError` at the next record.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..exceptions import ConfigurationError, StateError
from .journal import JournalObjects, run_name
from .lease import LEASE_SECONDS, Lease
from .location import Location, resolve
from .objects import Store, StoreRetry

__all__ = ["LocalKeeper", "ObjectKeeper", "drop_torn_tail", "locate"]

logger = logging.getLogger("flameup_pandas")


def locate(path: str | os.PathLike[str] | Location, filesystem: Any, what: str) -> Location:
    """Where a state lives; a pyarrow filesystem is refused (it cannot create an object only
    if absent, so no lease could be taken safely)."""
    where = path if isinstance(path, Location) else resolve(os.fspath(path), filesystem)
    if not where.local and type(where.fs).__name__ == "ArrowFSWrapper":
        raise ConfigurationError(
            f"a {what} needs a filesystem that can create an object only if absent "
            "(its lock): pass a URI or an fsspec filesystem, not a pyarrow one"
        )
    return where


class LocalKeeper:
    """A local state's lock (``fcntl`` on ``<path>.lock``) and its journal file, appended."""

    def __init__(self, path: Path, journal: Path, what: str) -> None:
        self.path = path
        self.journal = journal
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock: IO[bytes] | None = Path(f"{path}.lock").open("ab")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise StateError(
                f"the {what} {path} is in use by another run (lock {path}.lock)"
            ) from None
        self._file: IO[bytes] | None = None

    def append(self, lines: bytes) -> None:
        if self._file is None:
            self._file = self.journal.open("ab")
        self._file.write(lines)
        self._file.flush()

    def sync(self) -> None:
        """Make every line appended so far durable (an fsync)."""
        if self._file is not None:
            os.fsync(self._file.fileno())

    def close_journal(self) -> bool:
        """Close the journal file (synced); whether this run appended to it."""
        if self._file is None:
            return False
        self.sync()
        self._file.close()
        self._file = None
        return True

    def release(self) -> None:
        """Close the journal and unlock (safe to call twice)."""
        try:
            self.close_journal()
        finally:
            if self._lock is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()
                self._lock = None


class ObjectKeeper:
    """A state on object storage: its lease, its journal objects and the keeper thread that
    renews the one and flushes the other on time.

    ``lost`` says what a store failure costs (it ends the error a record raises then).
    """

    def __init__(
        self,
        where: Location,
        what: str,
        lost: str,
        *,
        lease: float = LEASE_SECONDS,
        flush_batches: int = 20,
        flush_seconds: float = 5.0,
        retry: StoreRetry | None = None,
    ) -> None:
        self.where = where
        self.what = what
        self.lost = lost
        self.store = Store(where.fs, retry)
        self.journal = JournalObjects(
            self.store, where.path + ".journal", run_name(), flush_batches, flush_seconds
        )
        self.lease = Lease.take(self.store, where.path + ".lock", str(where), lease)
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def leftovers(self) -> list[tuple[str, bytes]]:
        """Journal objects a killed run left (path and bytes), in the order written."""
        found = JournalObjects.existing(self.store, self.journal.folder)
        return [(path, self.store.read(path) or b"") for path in found]

    def start(self) -> None:
        """Start keeping: the lease renewed, waiting lines flushed on time."""
        self._thread = threading.Thread(target=self._keep, name="flameup-state", daemon=True)
        self._thread.start()

    def append(self, lines: bytes) -> None:
        if self.failure is None:
            try:
                self.journal.add(lines)
                return
            except StateError as exc:
                self.failure = exc
        raise StateError(
            f"the {self.what} {self.where} cannot be kept: {self.failure}; the run stopped, "
            f"and {self.lost}"
        ) from self.failure

    def sync(self) -> None:
        self.journal.flush()

    def close(self, fold: Callable[[list[tuple[str, bytes]]], None]) -> None:
        """Stop keeping, flush, ``fold`` this run's journal objects (path and bytes) into the
        state when there are any, delete them and release the lease."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.journal.flush()
            written = self.journal.written
            if written:
                self.lease.check()
                fold(list(zip(written, self.journal.flushed, strict=True)))
                self.store.delete(written)
        finally:
            self.release()

    def release(self) -> None:
        with contextlib.suppress(Exception):
            self.lease.release()

    def _keep(self) -> None:
        """Flush the journal on time and renew the lease, until close (or a failure)."""
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
                logger.error("%s %s: %s", self.what, self.where, exc)
                self.failure = exc
                return


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
            raise StateError(f"the journal {path} ends in an overlong torn line")
        logger.warning("ignoring a torn line at the end of %s (a run was killed mid-write)", path)
        handle.truncate(tail_start + cut + 1 if cut >= 0 else 0)
