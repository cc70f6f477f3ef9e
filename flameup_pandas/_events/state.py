"""The events' sync state: which events Flameup holds, so no event is sent twice.

JSON lines, one per change, the last line of a key winning, after ``{"key": "keys", "status":
"registry"}`` (how keys are made; see :mod:`flameup_pandas._events.kind`)::

    {"key": "h:3f2a...", "status": "pending"}                 about to be sent
    {"key": "h:3f2a...", "status": "sent", "event_id": "evt_..."}
    {"key": "h:3f2a...", "status": "uncertain"}               answer lost, listing could not tell
    {"key": "h:3f2a...", "status": "clear"}                   not stored (rejected, failed)

``pending`` is made durable *before* each request (lines arriving together share one sync), so
after a kill the next run looks ``pending`` and ``uncertain`` events up before sending. An
outcome is durable at the next sync; lost in a crash, its key stays ``pending`` (a lookup, never
a duplicate).
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any

import orjson

from .._storage.keeper import Journals, LocalKeeper, ObjectKeeper, keep, load
from ..exceptions import StateError

__all__ = ["EventState"]

OPEN_STATUSES = frozenset({"pending", "uncertain"})
Entries = dict[str, dict[str, Any]]
WHAT = "events state"


class EventState:
    """The keys of events sent, maybe sent or about to be; thread-safe to record."""

    def __init__(self, keeper: LocalKeeper | ObjectKeeper, entries: Entries) -> None:
        self._keeper = keeper
        self.path = str(keeper)
        self.entries = entries
        self._writing = threading.Lock()
        self._syncing = threading.Lock()
        self._open = True
        self._written = 0  # lines appended so far
        self._synced = 0  # lines known to be durable

    @classmethod
    def open(cls, path: str | os.PathLike[str], filesystem: Any = None) -> EventState:
        """Read and lock the state at ``path`` (a path or URI, on ``filesystem``; or none yet)."""
        lost = "events it may have sent are looked up by the next run"
        # every pending line is flushed by its sender; outcome lines ride along, or wait
        keeper = keep(path, filesystem, WHAT, lost, separate_journal=False, flush_batches=10**6)

        def fold(entries: Entries, journals: Journals) -> Entries:
            for name, data in journals:
                entries.update(parse_lines(data, name))
            return entries

        read = functools.partial(parse_lines, shown=str(keeper))
        return cls(keeper, load(keeper, read, fold, _lines))

    def __enter__(self) -> EventState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self, key: str) -> str | None:
        return self.entries.get(key, {}).get("status")

    def event_id(self, key: str) -> str | None:
        return self.entries.get(key, {}).get("event_id")

    def record(self, key: str, status: str, event_id: str | None = None) -> None:
        """Append one change; a ``pending`` one is durable when this returns."""
        entry: dict[str, Any] = {"key": key, "status": status}
        if event_id is not None:
            entry["event_id"] = event_id
        with self._writing:
            self._check_open()
            self._keeper.append(orjson.dumps(entry) + b"\n")
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
            self._keeper.sync()
            self._synced = upto

    def _check_open(self) -> None:
        if not self._open:
            raise StateError(f"the events state {self.path} is closed")

    def close(self) -> None:
        with self._syncing, self._writing:
            if not self._open:
                return
            self._open = False
            self._keeper.close(lambda _: _lines(self.entries))


def _lines(entries: Entries) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in entries.values())


def parse_lines(data: bytes | Path | None, shown: str) -> Entries:
    """The entries of a state's lines (the last of each key); StateError naming a bad line."""
    entries: Entries = {}
    text = data.read_bytes() if isinstance(data, Path) else data or b""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
            entries[str(entry["key"])] = entry
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise StateError(f"{shown}: line {number} is not an events state entry") from exc
    return entries
