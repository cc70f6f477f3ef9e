"""A journal kept as objects: what a run recorded, flushed every few batches or seconds.

An object store cannot append, so each flush writes one new object under
``<state>.journal/``, named ``<run>-<number>.jsonl`` where ``<run>`` starts with the time the
run began: listing the folder gives every run's flushes in the order they were written. The
objects are immutable; they are deleted once folded into the state.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from .objects import Store

__all__ = ["JournalObjects", "run_name"]


def run_name() -> str:
    """A name that sorts by start time (microseconds, UTC) and is unique per run."""
    import uuid

    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"


class JournalObjects:
    """Buffers recorded lines and writes them as one object per flush.

    A flush is due when ``every_batches`` records were added since the last one, or the
    oldest unflushed record is ``every_seconds`` old (:meth:`due`; the state's keeper thread
    asks). Thread-safe: records are added by the run, flushed by it or the keeper.
    """

    def __init__(
        self,
        store: Store,
        folder: str,
        run: str,
        every_batches: int = 20,
        every_seconds: float = 5.0,
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
            return self._oldest is not None and (
                time.monotonic() - self._oldest >= self.every_seconds
            )

    def flush(self) -> bytes:
        """Write what is buffered as one object; the bytes written (empty when none)."""
        with self._flushing:
            with self._lock:
                data, self._buffer, self._oldest = b"".join(self._buffer), [], None
            if not data:
                return b""
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
            return data

    @staticmethod
    def existing(store: Store, folder: str) -> list[str]:
        """Journal objects left in ``folder`` (by runs killed before folding), in order."""
        return [p for p in store.list(folder) if p.endswith(".jsonl")]
