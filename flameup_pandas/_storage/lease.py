"""The lock of a sync state on object storage: numbered leases under ``<state>.lock/``.

Only the highest number (``000000000001.json``, ...) counts. Taking one creates the next number
by conditional create, so of two runs exactly one wins; breaking one (``flameup-pandas unlock``)
creates the next number already released. Expiry is judged by the runs' UTC clocks, so the lease
(120 s) should be long beside the clock skew between workers.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ..exceptions import StateError
from .objects import Store

__all__ = ["LEASE_SECONDS", "Lease", "LockedError", "break_lock"]

LEASE_SECONDS = 120.0


class LockedError(StateError):
    """Another run holds the sync state's lock (its holder and times are in the message)."""


@dataclass
class Lease:
    """A lease this run holds on ``folder`` (the lock of one state)."""

    store: Store
    folder: str
    number: int
    record: dict[str, Any]
    seconds: float
    shown: str

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.number:012d}.json"

    @classmethod
    def take(cls, store: Store, folder: str, shown: str, seconds: float = LEASE_SECONDS) -> Lease:
        """Take the lock of the state ``shown``, or raise :class:`LockedError` naming its holder."""
        for _ in range(3):
            paths = store.list(folder)
            number, current = _highest(store, paths)
            if current is not None and _live(current):
                raise _locked(shown, current)
            record = _record(seconds, run=uuid.uuid4().hex, released=False)
            lease = cls(store, folder, number + 1, record, seconds, shown)
            if store.create(lease.path, orjson.dumps(record)):
                store.delete([p for p in paths if _number(p) <= number])  # stale leases
                return lease
        number, current = _highest(store, store.list(folder))
        raise _locked(shown, current or {"holder": "another run", "acquired": "just now"})

    def renew(self) -> None:
        """Push ``expires`` forward (only this run ever writes its own lease)."""
        self.check()
        self.record["expires"] = _record(self.seconds)["expires"]
        self.store.write(self.path, orjson.dumps(self.record))

    def check(self) -> None:
        """Raise :class:`LockedError` when a later lease exists or this run's is gone: its
        lock was broken (the leases before a new one are deleted when it is taken)."""
        paths = self.store.list(self.folder)
        if max(map(_number, paths), default=0) > self.number or self.path not in paths:
            taker = _highest(self.store, paths)[1] or {"holder": "a break by hand"}
            raise LockedError(
                f"the lock of the sync state {self.shown} was taken over by "
                f"{taker.get('holder', '?')} at {taker.get('acquired', '?')} (this run's lease "
                f"ran until {self.record['expires']}); this run writes nothing more to the state"
            )

    def release(self) -> None:
        self.store.delete([self.path])


def break_lock(store: Store, folder: str) -> dict[str, Any] | None:
    """Release whatever lease is current (a dead run's, by hand): the lease broken, or None."""
    number, current = _highest(store, store.list(folder))
    if current is None or current.get("released"):
        return None
    record = _record(0, released=True)
    if not store.create(f"{folder}/{number + 1:012d}.json", orjson.dumps(record)):
        raise LockedError(f"the lock of {folder} changed while it was being broken; try again")
    return current


def _record(seconds: float, **more: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    expires = (now + timedelta(seconds=seconds)).isoformat()
    holder = f"{socket.gethostname()} pid {os.getpid()}"
    return {"holder": holder, "acquired": now.isoformat(), "expires": expires, **more}


def _number(path: str) -> int:
    stem = path.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]
    return int(stem) if stem.isdigit() else -1


def _highest(store: Store, paths: list[str]) -> tuple[int, dict[str, Any] | None]:
    numbered = [(n, p) for p in paths if (n := _number(p)) >= 0]
    if not numbered:
        return 0, None
    number, path = max(numbered)
    data = store.read(path)
    if data is None:  # released (deleted) between the listing and the read
        return number, {"released": True}
    try:
        record: dict[str, Any] = orjson.loads(data)
    except orjson.JSONDecodeError:
        record = {"holder": "unreadable lease", "acquired": "?", "expires": "1970-01-01T00:00Z"}
    return number, record


def _live(record: dict[str, Any]) -> bool:
    if record.get("released"):
        return False
    try:
        return datetime.fromisoformat(str(record.get("expires"))) > datetime.now(UTC)
    except ValueError:
        return False


def _locked(state: str, record: dict[str, Any]) -> LockedError:
    return LockedError(
        f"the sync state {state} is in use by another run: {record.get('holder', '?')} took "
        f"its lock at {record.get('acquired', '?')} (lease until {record.get('expires', '?')}). "
        "If that run is dead, its lease expires then; to break it now: "
        f"flameup-pandas unlock {state}"
    )
