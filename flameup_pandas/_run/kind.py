"""What the engine needs to know of a kind of record: people and events are two kinds.

The engine (:mod:`flameup_pandas._run.engine`) does everything the kinds share; a
:class:`Kind`, made for one run, says how a chunk is judged, keyed and diffed, what a request
carries and how it is sent and settled, and what a result row and a summary hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from .options import Run
from .plan import Decisions, Sender
from .result import Reason, Summary

__all__ = ["Chunk", "Kind"]


@dataclass
class Chunk:
    """One chunk of rows in flight: its decisions, what the kind keeps of each row for its state
    (``kept``), and for a chunk of repeats set aside, each row's ``origin``: the decisions and
    position it was read at, where its outcome is also recorded."""

    plan: Any  # the kind's Decisions
    kept: Any = None
    origin: list[tuple[Decisions, int]] | None = None


Work = Callable[[Sequence[Any]], list[Any]]
"""What a sending thread does with one request's items: an outcome per item."""


class Kind(Protocol):
    """A kind of record the engine runs (see the module docstring)."""

    name: str
    """What the run is called in progress lines and errors: ``upsert``, ``track``."""
    rows: str
    """What its rows are called in messages: ``people``, ``events``."""
    batch_size: int
    """Rows one request carries: 100 people, or one event."""
    statuses: tuple[str, ...]
    """Every status a row of this kind can end with, in the order a summary counts them."""
    id_column: str
    """The result column of the id Flameup answers with."""
    results_schema: pa.Schema
    """The results file's columns between ``row`` and the id (what identifies the row)."""
    later: bool
    """How a repeat of a row met in an earlier chunk ends: True, set aside and sent after
    every earlier request is answered (the last row wins: people); False, skipped naming the
    row met first (events)."""
    again: str
    """The reason of rows the state skipped that still count as met (their identity is
    Flameup's now): a later repeat of one is a repeat."""

    def open_state(self, run: Run) -> Any: ...

    def plan(self, frame: pd.DataFrame, state: Any) -> Chunk: ...

    def ahead(self, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        """The planned chunks as they will be sent (a kind may read them all first)."""

    def items(self, chunk: Chunk, positions: np.ndarray) -> list[Any]: ...

    def sample(self, chunk: Chunk, positions: np.ndarray) -> list[Any]:
        """What a dry run shows of the rows at ``positions``, as they would be sent."""

    def worker(self, sender: Sender, state: Any) -> tuple[Work, Callable[[str], Any]]:
        """How a request is sent, and the outcome of an item that was not (or may not have
        been) delivered, given the reason."""

    def settle(self, chunk: Chunk, positions: list[int], outcomes: list[Any], state: Any) -> None:
        """Answers into the chunk's decisions and the state."""

    def shown(self, plan: Any, take: pa.Array) -> dict[str, pa.Array]: ...

    def subset(self, chunk: Chunk, positions: np.ndarray) -> Chunk: ...

    def joined(self, chunks: list[Chunk]) -> Chunk: ...

    def summary(self, summary: Summary) -> Summary:
        """The engine's summary as this kind shows it."""

    def warnings(self) -> tuple[Reason, ...]: ...
