"""Whole objects on a filesystem, read and written the way the state and results need:
retried when the store may answer differently a moment later, never shown half written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from ..exceptions import StateError
from .location import Location

__all__ = ["Store", "StoreRetry", "StoreUnavailableError", "atomic_output"]

logger = logging.getLogger("flameup_pandas")

T = TypeVar("T")

_FINAL = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    ValueError,
    TypeError,
)
_CLIENTS = ("botocore", "aiobotocore", "aiohttp", "google", "azure", "requests")


class StoreUnavailableError(StateError):
    """The store kept failing (timeouts, 5xx, throttling) until the retries were spent."""


@dataclass(frozen=True)
class StoreRetry:
    """How store faults are retried: up to ``attempts`` tries within ``deadline`` seconds,
    waiting ``backoff * 2**n`` (jittered, at most ``backoff_max``) between them."""

    attempts: int = 8
    backoff: float = 0.25
    backoff_max: float = 8.0
    deadline: float = 60.0

    def wait(self, attempt: int) -> float:
        return random.uniform(0, min(self.backoff_max, self.backoff * 2**attempt))


def transient(exc: BaseException) -> bool:
    """Whether the store may answer differently later: everything but a definite answer."""
    if isinstance(exc, _FINAL):
        return False
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in _CLIENTS


class Store:
    """Retried whole-object operations on the filesystem of one :class:`Location`."""

    def __init__(self, fs: Any, retry: StoreRetry | None = None) -> None:
        self.fs = fs
        self.retry = retry or StoreRetry()

    def call(self, what: str, operation: Callable[[], T]) -> T:
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return operation()
            except Exception as exc:
                attempt += 1
                spent = time.monotonic() - started
                if not transient(exc):
                    raise
                if attempt >= self.retry.attempts or spent >= self.retry.deadline:
                    raise StoreUnavailableError(
                        f"the store failed to {what} {attempt} times in {spent:.0f} s: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                pause = self.retry.wait(attempt - 1)
                logger.warning("store: %s failed (%s); retrying in %.1f s", what, exc, pause)
                time.sleep(pause)

    def read(self, path: str) -> bytes | None:
        with contextlib.suppress(FileNotFoundError):
            return cast(bytes, self.call(f"read {path}", lambda: self.fs.cat_file(path)))
        return None

    def write(self, path: str, data: bytes) -> None:
        """Put the whole object at once (one request: visible whole or not at all)."""
        self.call(f"write {path}", lambda: self.fs.pipe_file(path, data))

    def create(self, path: str, data: bytes) -> bool:
        """Put the object only if there is none (a conditional create); False when there was."""
        with contextlib.suppress(FileExistsError):
            self.call(f"create {path}", lambda: self.fs.pipe_file(path, data, mode="create"))
            return True
        return False

    def delete(self, paths: list[str]) -> None:
        if paths:
            with contextlib.suppress(FileNotFoundError):
                self.call(f"delete {paths[0]}", lambda: self.fs.rm(paths))

    def list(self, prefix: str) -> list[str]:
        """Paths of the objects under ``prefix/`` (a folder), sorted; [] when there are none."""

        def listing() -> list[str]:
            self.fs.invalidate_cache(prefix)
            try:
                names = self.fs.find(prefix)
            except FileNotFoundError:
                return []
            return sorted(str(n) for n in names if str(n).rstrip("/") != prefix.rstrip("/"))

        return self.call(f"list {prefix}", listing)


@contextlib.contextmanager
def atomic_output(where: Location) -> Iterator[Any]:
    """A writable binary stream whose content appears at ``where`` whole, on success only: a
    local file renamed over it, an object uploaded in parts and completed (or discarded)."""
    if where.local:
        path = where.local_path
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()
        return
    store = Store(where.fs)
    handle = store.call(f"open {where.path}", lambda: where.fs.open(where.path, "wb"))
    try:
        yield handle
    except BaseException:
        with contextlib.suppress(Exception):
            getattr(handle, "discard", lambda: None)()
        raise
    store.call(f"complete {where.path}", handle.close)
