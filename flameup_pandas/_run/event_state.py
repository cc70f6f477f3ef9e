"""The events' sync state: which events Flameup holds, so no event is sent twice.

A local file of JSON lines, one per change, appended and fsynced before the run goes on::

    {"key": "h:3f2a...", "status": "pending"}                 about to be sent
    {"key": "h:3f2a...", "status": "sent", "event_id": "evt_..."}
    {"key": "h:3f2a...", "status": "uncertain"}               the answer was lost, the
                                                              listing could not tell
    {"key": "h:3f2a...", "status": "clear"}                   not stored (rejected, failed)

The last line of a key wins. ``pending`` is written and made durable *before* each request,
so a run killed at any point (kill -9 included) leaves every event it may have sent marked:
the next run looks ``pending`` and ``uncertain`` events up in the listing before it sends
them. An outcome is written at once but not synced on its own: lost in a crash, its key is
still ``pending`` and the listing settles it (it costs a lookup, never a duplicate); the next
``pending`` sync, or closing the state, makes it durable too. Several senders record at once
(events go out from several threads): their ``pending`` lines share one ``fsync`` when they
arrive together (a group commit). A torn last line (a kill mid-write) is ignored. A lock file
(``fcntl``) beside the state stops two runs from sharing it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from typing import IO, Any

import orjson

from ..exceptions import StateError

__all__ = ["EventState"]

OPEN_STATUSES = frozenset({"pending", "uncertain"})


class EventState:
    """The keys of the events a run has sent, may have sent, or is about to send."""

    def __init__(self, path: Path, entries: dict[str, dict[str, Any]], lock: IO[bytes]) -> None:
        self.path = path
        self.entries = entries
        self._lock = lock
        self._file: IO[bytes] | None = path.open("ab")
        self._writing = threading.Lock()
        self._syncing = threading.Lock()
        self._written = 0  # lines written so far
        self._synced = 0  # lines known to be on disk

    @classmethod
    def open(cls, path: str | os.PathLike[str], filesystem: Any = None) -> EventState:
        """Read the state at ``path`` (empty when there is none) and lock it for this run."""
        where = Path(path)
        lock = Path(f"{where}.lock").open("ab")  # noqa: SIM115 (held until close())
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise StateError(
                f"the events state {where} is in use by another run (lock {where}.lock)"
            ) from None
        return cls(where, _read(where), lock)

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
        """Append one change; a ``pending`` one is on disk (fsynced) when this returns."""
        entry: dict[str, Any] = {"key": key, "status": status}
        if event_id is not None:
            entry["event_id"] = event_id
        with self._writing:
            if self._file is None:
                raise StateError(f"the events state {self.path} is closed")
            self._file.write(orjson.dumps(entry) + b"\n")
            self._file.flush()
            self._written += 1
            mine = self._written
            self.entries[key] = entry
        if status == "pending":
            self._sync(mine)

    def _sync(self, line: int) -> None:
        """Make every line up to ``line`` durable; one fsync covers all written before it."""
        with self._syncing:
            if self._synced >= line:
                return  # another sender's fsync covered this line
            with self._writing:
                if self._file is None:
                    raise StateError(f"the events state {self.path} is closed")
                upto = self._written
                fileno = self._file.fileno()
            os.fsync(fileno)
            self._synced = upto

    def close(self) -> None:
        with self._syncing, self._writing:
            if self._file is not None:
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()


def _read(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with path.open("r+b") as f:  # a torn last line: drop it so appends start clean
            f.truncate(len(complete))
    entries: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(complete.splitlines(), 1):
        try:
            entry = orjson.loads(line)
            entries[str(entry["key"])] = entry
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise StateError(f"{path}: line {number} is not an events state entry") from exc
    return entries
