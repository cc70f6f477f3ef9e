"""The state keeper: the lock, the journal and the folding of one state, for every state.

A local state has an ``fcntl`` lock file and a journal file (:class:`LocalKeeper`); one on
object storage a lease renewed by a thread and journal objects flushed every few records or
seconds (:class:`ObjectKeeper`); a store failing past its retries stops the run at the next
record. A state says how it reads, folds and writes itself; the keepers do the rest.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from ..exceptions import ConfigurationError, StateError
from .lease import LEASE_SECONDS, Lease
from .location import Location, resolve
from .objects import Store, StoreRetry, atomic_output

__all__ = ["JournalObjects", "LocalKeeper", "ObjectKeeper", "keep", "load"]

logger = logging.getLogger("flameup_pandas")

T = TypeVar("T")
Journals = list[tuple[str, "bytes | Path"]]
"""Journals to fold, in the order written: each named as shown in errors, as bytes or a file."""
Content = bytes | Callable[[IO[bytes]], None]
"""A state's new content: its bytes, or what writes them to a stream (a local state's file is
written as they are made, never held whole in memory first)."""


def keep(
    path: str | os.PathLike[str] | Location,
    filesystem: Any,
    what: str,
    lost: str,
    *,
    separate_journal: bool = True,
    **object_options: Any,
) -> LocalKeeper | ObjectKeeper:
    """Lock the state at ``path`` (``what`` in messages; ``lost``: what a store failure costs).
    A local state's journal is a file beside it, or (``separate_journal=False``) itself."""
    where = path if isinstance(path, Location) else resolve(os.fspath(path), filesystem)
    if where.local:
        local = where.local_path
        journal = local.with_name(local.name + ".journal") if separate_journal else local
        return LocalKeeper(local, journal, what, lost)
    if type(where.fs).__name__ == "ArrowFSWrapper":
        raise ConfigurationError(
            f"a {what} needs a filesystem that can create an object only if absent "
            "(its lock): pass a URI or an fsspec filesystem, not a pyarrow one"
        )
    return ObjectKeeper(where, what, lost, **object_options)


def load(
    keeper: LocalKeeper | ObjectKeeper,
    read: Callable[[bytes | Path | None], T],
    fold: Callable[[T, Journals], T],
    dump: Callable[[T], Content],
) -> T:
    """The state ``read`` from ``keeper`` (None: nothing yet), the journals a killed run left
    ``fold``-ed in and written back (``dump``) before anything is recorded; unlocked on failure."""
    try:
        value = read(keeper.base())
        leftovers = keeper.leftovers()
        if leftovers:
            value = fold(value, leftovers)
            keeper.write(dump(value))
            keeper.forget()
    except BaseException:
        keeper.release()
        raise
    keeper.start()
    return value


class LocalKeeper:
    """A local state's lock (``fcntl`` on ``<path>.lock``) and its journal file, appended."""

    def __init__(self, path: Path, journal: Path, what: str, lost: str) -> None:
        self.path = path
        self.journal = journal
        self.what = what
        self.lost = lost
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock: IO[bytes] | None = Path(f"{path}.lock").open("ab")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise StateError(
                f"the {what} {path} is in use by another run (lock {path}.lock)"
            ) from None
        self._file: IO[bytes] | None = None  # unbuffered: a failed append is cut back whole

    def __str__(self) -> str:
        return str(self.path)

    def base(self) -> bytes | Path | None:
        if not self.path.exists():
            return None
        if self.journal == self.path:  # appended to: cut a torn line, so appends start clean
            drop_torn_tail(self.path)
        return self.path

    def leftovers(self) -> Journals:
        if self.journal == self.path or not self.journal.exists():
            return []
        drop_torn_tail(self.journal)
        return [(str(self.journal), self.journal)]

    def write(self, data: Content) -> None:
        try:
            with atomic_output(Location(str(self.path))) as handle:
                handle.write(data) if isinstance(data, bytes) else data(handle)
        except OSError as exc:
            raise StateError(f"cannot write the {self.what} {self.path}: {exc}") from exc

    def forget(self) -> None:
        self.journal.unlink()

    def start(self) -> None:
        return None

    def append(self, lines: bytes) -> None:
        """Append whole lines, or none of them: a write that fails (a full disk) is cut back
        to where it began and stops the run, so no torn line is left before later ones."""
        if self._file is None:
            self._file = self.journal.open("ab", buffering=0)
        start = self._file.tell()
        try:
            view = memoryview(lines)
            while view:
                view = view[self._file.write(view) or 0 :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._file.fileno(), start)
            raise StateError(
                f"cannot append to the journal of the {self.what} {self.path}: {exc}; the run "
                f"stopped, and {self.lost}"
            ) from exc

    def sync(self) -> None:
        if self._file is not None:
            os.fsync(self._file.fileno())

    def close(self, fold: Callable[[Journals], Content], *, force: bool = False) -> None:
        """Fold this run's journal file (if apart; ``force``: even none) in, delete it, unlock."""
        try:
            if self._file is not None:
                self.sync()
                if self.journal != self.path:
                    self.write(fold([(str(self.journal), self.journal)]))
                    self.journal.unlink()
            elif force:
                self.write(fold([]))
        finally:
            self.release()

    def release(self) -> None:
        """Unlock (safe to call twice)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


class ObjectKeeper:
    """A state on object storage: its lease, its journal objects, and a thread keeping both."""

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
        run = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"  # sorts by start
        self.journal = JournalObjects(
            self.store, where.path + ".journal", run, flush_batches, flush_seconds
        )
        self.lease = Lease.take(self.store, where.path + ".lock", str(where), lease)
        self.failure: BaseException | None = None
        self._found: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __str__(self) -> str:
        return str(self.where)

    def base(self) -> bytes | Path | None:
        return self.store.read(self.where.path)

    def leftovers(self) -> Journals:
        self._found = JournalObjects.existing(self.store, self.journal.folder)
        return self._shown([(path, self.store.read(path) or b"") for path in self._found])

    def _shown(self, objects: list[tuple[str, bytes]]) -> Journals:
        return [(f"{self.where}.journal/{path.rsplit('/', 1)[-1]}", data) for path, data in objects]

    def write(self, data: Content) -> None:
        if not isinstance(data, bytes):  # (one request: the object is visible whole or not)
            buffer = io.BytesIO()
            data(buffer)
            data = buffer.getvalue()
        self.store.write(self.where.path, data)

    def forget(self) -> None:
        self.store.delete(self._found)

    def start(self) -> None:
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

    def close(self, fold: Callable[[Journals], Content], *, force: bool = False) -> None:
        """Stop keeping; ``fold`` this run's journal objects (``force``: even none) into the
        state, delete them, release."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.journal.flush()
            written = self.journal.written
            if written or force:
                self.lease.check()
                self.write(fold(self._shown(list(zip(written, self.journal.flushed, strict=True)))))
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


class JournalObjects:
    """A journal as objects (a store cannot append): a flush writes ``<folder>/<run>-<n>.jsonl``
    (``<run>`` starts with the run's start time: a listing is in order), due after
    ``every_batches`` records or ``every_seconds``. Thread-safe."""

    def __init__(
        self, store: Store, folder: str, run: str, every_batches: int, every_seconds: float
    ) -> None:
        self.store = store
        self.folder = folder
        self.run = run
        self.every_batches = every_batches
        self.every_seconds = every_seconds
        self.written: list[str] = []
        self.flushed: list[bytes] = []  # what was written, kept to fold without reading back
        self._buffer: list[bytes] = []
        self._oldest: float | None = None
        self._lock = threading.Lock()
        self._flushing = threading.Lock()

    def add(self, data: bytes) -> None:
        with self._lock:
            self._buffer.append(data)
            if self._oldest is None:
                self._oldest = time.monotonic()
            full = len(self._buffer) >= self.every_batches
        if full:
            self.flush()

    def due(self) -> bool:
        with self._lock:
            oldest = self._oldest
            return oldest is not None and time.monotonic() - oldest >= self.every_seconds

    def flush(self) -> None:
        with self._flushing:
            with self._lock:
                data, self._buffer, self._oldest = b"".join(self._buffer), [], None
            if not data:
                return
            path = f"{self.folder}/{self.run}-{len(self.written):06d}.jsonl"
            try:
                self.store.write(path, data)
            except BaseException:
                with self._lock:  # keep the lines for the next flush
                    self._buffer.insert(0, data)
                    self._oldest = self._oldest or time.monotonic()
                raise
            self.written.append(path)
            self.flushed.append(data)

    @staticmethod
    def existing(store: Store, folder: str) -> list[str]:
        """Journal objects left in ``folder`` (by runs killed before folding), in order."""
        return [p for p in store.list(folder) if p.endswith(".jsonl")]


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
