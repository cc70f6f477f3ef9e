"""People as a kind of record the engine runs (:mod:`flameup_pandas._run.kind`).

A chunk is validated, encoded, de-duplicated (the last row of an identity wins) and diffed
against the sync state (:class:`~flameup_pandas._run.plan.Rules`,
:class:`~flameup_pandas._run.plan.Plan`); one request carries up to 100 people; an answer
records each person Flameup created or updated in the state (:class:`SyncState`), with the
hashes of the fields sent and, with ``state_values=True``, the person as sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from .._people.encode import FieldHashes, Payloads
from .._people.fingerprint import source_hashes
from .._people.identity import HashRuns
from .._people.wire import scattered
from .._send.delivery import PersonOutcome
from .changes import ChangeGuard
from .kind import Chunk, Work
from .options import Run
from .plan import BATCH_SIZE, UNCHANGED, Plan, Rules, Sender
from .result import STATUSES, Reason, SharedEmails, Summary
from .state import SyncState

__all__ = ["People", "Planner"]

Planner = Callable[[pd.DataFrame, Plan, SyncState | None, FieldHashes | None], None]
"""A sink of decisions: called with each chunk's frame and plan (rows still pending are the
ones a run would send) before anything is sent, the state, and the field hashes of the
pending rows (None without a state)."""

SHOWN = pa.schema([("userId", pa.string()), ("email", pa.string())])


@dataclass
class Kept:
    """What a chunk keeps of each row for the state, by position."""

    hashes: np.ndarray | None  # each row's content hash (None without a state)
    fields: pa.Array | None = None  # each row's field hashes (list<uint32>)
    sent: pa.Array | None = None  # each row's JSON (keys sorted), kept with state_values=True
    wire: pa.Array | None = None  # the bytes of the rows to send alone (null elsewhere)
    sources: np.ndarray | None = None  # each row's source hash (None where not known)

    def take(self, positions: np.ndarray) -> Kept:
        """These rows' part (their bytes are their payloads')."""
        at = pa.array(positions)
        return Kept(
            None if self.hashes is None else self.hashes[positions],
            None if self.fields is None else self.fields.take(at),
            None if self.sent is None else self.sent.take(at),
            sources=None if self.sources is None else self.sources[positions],
        )

    @staticmethod
    def concat(kept: list[Kept]) -> Kept:
        def joined(name: str, join: Callable[[list[Any]], Any]) -> Any:
            parts = [getattr(k, name) for k in kept]
            return join(parts) if all(p is not None for p in parts) else None

        return Kept(
            joined("hashes", np.concatenate),
            joined("fields", pa.concat_arrays),
            joined("sent", pa.concat_arrays),
            sources=joined("sources", np.concatenate),
        )


class People:
    """People, for one run: ``rules`` make them, ``run`` says what is kept; a ``planner``
    (dry runs only) records each chunk's decisions; a change guard of ``run`` reads every
    chunk before anything is sent."""

    name = "upsert"
    rows = "people"
    batch_size = BATCH_SIZE
    statuses: tuple[str, ...] = STATUSES
    id_column = "flameup_id"
    results_schema = SHOWN
    later = True
    again = UNCHANGED

    def __init__(self, rules: Rules, run: Run, planner: Planner | None = None) -> None:
        self.rules = rules
        self.run = run
        self.guard = ChangeGuard(run.max_changes, run.max_creates) if run.guarded else None
        if planner is not None and (self.guard is not None or not run.dry_run):
            raise ValueError("a planner records what a dry run would send: pass dry_run=True")
        self.planner = planner or self.guard
        self.shared = SharedEmails()

    def open_state(self, run: Run) -> SyncState | None:
        return None if run.state is None else SyncState.open(run.state, filesystem=run.storage)

    def plan(self, frame: pd.DataFrame, state: SyncState | None) -> Chunk:
        run = self.run
        sources = known = None
        # (a plan shows every row; a state that knows nobody knows no row)
        knows = self.planner is self.guard and not run.full_refresh and bool(state)
        if state is not None and self.rules.schema is None and (knows or not run.dry_run):
            sources = source_hashes(frame, self.rules.source_key)
        if knows and state is not None and sources is not None:
            plan, known = self.rules.plan_known(frame, state, sources)
        else:
            plan = self.rules.plan(frame, labels=frame.index)
        kept = Kept(None, sources=sources)
        fields = None
        if state is not None:
            if known is not None:  # sent before from these very rows: skipped unread
                plan.mark(known.positions, "skipped", UNCHANGED)
                plan.known_ids.append((known.positions, known.ids))
            before = plan.pending()
            if run.full_refresh:
                kept.hashes = plan.payloads.content_hashes()
            else:
                kept.hashes = plan.skip_unchanged(state)
                if known is not None:
                    kept.hashes[known.positions] = known.contents
            pending = plan.pending()
            if sources is not None and not run.dry_run:
                same = np.setdiff1d(before, pending, assume_unique=True)
                state.note_sources(plan.identity_hashes[same], sources[same])
            fields = plan.payloads.field_hashes(pending)
            if fields is not None:
                kept.fields = scattered(fields.lists(), pending, len(plan.status))
            if run.state_values and not run.dry_run:
                texts = plan.payloads.hashed_rows(pending).cast(pa.large_string())
                kept.sent = scattered(texts, pending, len(plan.status))
            if self.guard is None and not run.dry_run and len(pending) < len(plan.status):
                # a rerun sends few of a chunk's people: only their bytes are assembled (a
                # repeat the engine sends again takes its own from the payloads)
                kept.wire = plan.payloads.wire_of(pending)
        sent = plan.pending() if state is None else pending  # warned of emails they share
        self.shared.add(*plan.payloads.identity_rows(sent), sent, plan.labels)
        if self.planner is not None:
            self.planner(frame, plan, state, fields)
        return Chunk(plan, kept)

    def ahead(self, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        """With a change guard, every chunk planned and kept as it will be sent, once the
        guard let the run through (it raises before anything is sent otherwise)."""
        if self.guard is None:
            return chunks
        kept, sent = [], HashRuns()
        for chunk in chunks:
            plan = chunk.plan
            pending = plan.pending()
            # an unchanged person sent from an earlier chunk goes again after it (the engine's
            # repeats): its bytes are kept too
            unchanged = np.flatnonzero((plan.status == "skipped") & (plan.error == UNCHANGED))
            again = unchanged[sent.contains(plan.identity_hashes[unchanged])]
            shown = self.run.results is not None
            plan.payloads = plan.payloads.for_sending(np.union1d(pending, again), shown)
            sent.add(plan.identity_hashes[pending])
            kept.append(chunk)
        self.guard.check()
        return iter(kept)

    def items(self, chunk: Chunk, positions: np.ndarray) -> list[Any]:
        return list(chunk.plan.payloads.outgoing(positions, chunk.kept.wire))

    def sample(self, chunk: Chunk, positions: np.ndarray) -> list[Any]:
        # only these rows' bytes: a dry run never makes the whole chunk's
        return [orjson.loads(body) for body in chunk.plan.payloads.wire_rows(positions).to_pylist()]

    def worker(self, sender: Sender, state: Any) -> tuple[Work, Callable[[str], Any]]:
        return sender.deliverer.send, _failed

    def settle(
        self, chunk: Chunk, positions: list[int], outcomes: list[Any], state: SyncState | None
    ) -> None:
        chunk.plan.apply(positions, outcomes)
        kept = chunk.kept
        if state is not None and kept.hashes is not None:
            at = pa.array(positions, pa.int64())
            fields = None if kept.fields is None else kept.fields.take(at).to_pylist()
            sent = None if kept.sent is None else kept.sent.take(at).to_pylist()
            keys = chunk.plan.keys_at(positions)
            sources = None if kept.sources is None else kept.sources[positions]
            state.record_outcomes(keys, kept.hashes[positions], outcomes, fields, sent, sources)

    def shown(self, plan: Plan, take: pa.Array) -> dict[str, pa.Array]:
        return {
            "userId": plan.payloads.shown_user_ids.take(take).cast(pa.string()),
            "email": plan.payloads.shown_emails.take(take).cast(pa.string()),
        }

    def subset(self, chunk: Chunk, positions: np.ndarray) -> Chunk:
        """The rows at ``positions`` of a chunk, as a chunk of their own (labels kept)."""
        labels = [chunk.plan.labels[p] for p in positions]
        plan = Plan.start(chunk.plan.payloads.take(positions), labels)
        origin = [(chunk.plan, p) for p in positions.tolist()]
        return Chunk(plan, chunk.kept.take(positions), origin)

    def joined(self, chunks: list[Chunk]) -> Chunk:
        """All set-aside repeats as one chunk; among them, too, the last row of an identity
        wins."""
        labels = [label for c in chunks for label in c.plan.labels]
        plan = Plan.start(Payloads.concat([c.plan.payloads for c in chunks]), labels)
        plan.skip_duplicates("last")
        origins = [origin for c in chunks for origin in c.origin or []]
        return Chunk(plan, Kept.concat([c.kept for c in chunks]), origins)

    def summary(self, summary: Summary) -> Summary:
        return summary

    def warnings(self) -> tuple[Reason, ...]:
        return self.shared.top()


def _failed(error: str) -> PersonOutcome:
    return PersonOutcome("failed", error=error)
