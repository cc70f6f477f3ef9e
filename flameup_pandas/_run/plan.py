"""Plans one chunk of a run: validate, encode, de-duplicate, diff; a decision per row.

Data flows one way: frame -> canonical frame -> validation -> people bytes -> a status or a
place in a batch per row. The same :class:`Rules` and :class:`Plan` serve every path: the
engine (:mod:`flameup_pandas._run.engine`, frames, files and Arrow streams) and the Spark
executors.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._people.encode import Identity, Payloads, encode_people
from .._people.identity import identity_hashes, identity_key_array
from .._people.mapping import FieldMap, canonical_frame, canonical_trait_column, resolve_mapping
from .._people.schema import clean_frame, row_reasons, validate_people
from .._people.wire import replaced
from .._send.client import FlameupClient
from .._send.delivery import Deliverer, PersonOutcome
from ..exceptions import DuplicateIdentityError
from .result import Reason, RunReport

if TYPE_CHECKING:
    import pandera.pandas as pandera

    from .state import Known, SyncState

__all__ = ["BATCH_SIZE", "DRY_RUN", "UNCHANGED", "Decisions", "Plan", "Rules", "Sender", "joined"]

logger = logging.getLogger("flameup_pandas")

BATCH_SIZE = 100
Labels = Sequence[Any] | pd.Index
UNCHANGED = "unchanged since last sync"
DRY_RUN = "dry run: would be sent"


@dataclass(frozen=True)
class Rules:
    """How rows become people: the mapping, the schema and the value options."""

    mapping: Mapping[str, Hashable] | None = None
    """Which column feeds which field: ``{"userId": "customer_no", "traits.tier": "plan"}``;
    None: the columns named ``userId`` (or ``user_id``, ``external_id``), ``email``, ``phone``."""
    traits: Sequence[Hashable] | None = None
    """The columns sent as custom traits; None: every column not mapped or excluded."""
    exclude: Sequence[Hashable] | None = None
    """Columns never sent."""
    schema: type[pandera.DataFrameModel] | pandera.DataFrameSchema | None = None
    """A pandera schema of your own, checked beside the package's rules."""
    send_nulls: bool = False
    """Send missing values as ``null`` (which clears the trait in Flameup); by default a
    missing value is left out of the person."""
    naive_timestamps: Literal["error", "utc"] = "error"
    """``"utc"``: datetimes without a time zone are read as UTC; ``"error"``: refused."""
    on_duplicate: Literal["last", "error"] = "last"
    """A repeated identity: ``"last"`` sends the last row and marks the others ``skipped``;
    ``"error"`` raises :class:`~flameup_pandas.DuplicateIdentityError`."""

    def __post_init__(self) -> None:
        if self.on_duplicate not in ("last", "error"):
            raise ValueError(f"on_duplicate must be 'last' or 'error', got {self.on_duplicate!r}")
        if self.naive_timestamps not in ("error", "utc"):
            raise ValueError(
                f"naive_timestamps must be 'error' or 'utc', got {self.naive_timestamps!r}"
            )

    def fieldmap(self, columns: Sequence[Hashable]) -> FieldMap:
        return resolve_mapping(columns, self.mapping, self.traits, self.exclude)

    def plan(self, df: pd.DataFrame, labels: Labels | None = None) -> Plan:
        """Validate and encode a frame; every row gets a person or a reason it has none."""
        fieldmap = self.fieldmap(list(df.columns))
        validation = validate_people(canonical_frame(df, fieldmap), self.schema)
        payloads = encode_people(
            validation.frame,
            skip=validation.invalid,
            send_nulls=self.send_nulls,
            naive_timestamps=self.naive_timestamps,
        )
        plan = Plan.start(payloads, list(df.index) if labels is None else labels)
        reasons = row_reasons(validation.report, len(df))
        for invalid in np.flatnonzero(validation.invalid).tolist():
            plan.mark(invalid, "invalid", reasons[invalid] or "failed validation")
        for position, problem in payloads.problems.items():
            # every rule a row breaks: validation's reasons, then the values JSON cannot hold
            shown = plan.error[position]
            plan.mark(position, "invalid", problem if shown is None else f"{shown}; {problem}")
        plan.report = source_report(validation.report, payloads.each_problem, fieldmap, plan.labels)
        plan.skip_duplicates(self.on_duplicate)
        return plan

    @property
    def source_key(self) -> tuple[Any, ...]:
        """What besides a row's own values makes its person (what source hashes are keyed by;
        a run with a custom schema, which cannot be told apart from another, makes none)."""
        given = (self.mapping and self.mapping.items(), self.traits, self.exclude)
        tuples = (None if names is None else tuple(names) for names in given)
        return (*tuples, self.send_nulls, self.naive_timestamps)

    def plan_known(
        self, df: pd.DataFrame, state: SyncState, sources: np.ndarray
    ) -> tuple[Plan, Known]:
        """:meth:`plan`, where a row whose person the state last sent from this very row (a
        source hash the state holds) is neither validated nor encoded: its identity is the
        state's; its identity fields and person are made only if asked for (results show
        them; a repeat is sent again).

        A known row whose identity another row of the frame has is planned with them (a
        repeated identity is settled among all its rows). Returns the plan (the known rows
        still pending) and the rows known.
        """
        known = state.sent_from(sources)
        if len(known.positions) == 0:
            return self.plan(df, labels=df.index), known
        others = np.setdiff1d(np.arange(len(df)), known.positions, assume_unique=True)
        plan = self.plan(df.iloc[others], labels=df.index[others].tolist())
        identities = pd.Index(known.identities)
        if not identities.is_unique or (identities.get_indexer(plan.identity_hashes) >= 0).any():
            return self.plan(df, labels=df.index), state.sent_from(np.zeros(0, np.int64))
        hashes = np.zeros(len(df), dtype=np.int64)
        hashes[known.positions] = known.identities
        hashes[others] = plan.identity_hashes
        whole = Plan.start(self._known_payloads(df, plan.payloads, others), df.index)
        whole.identity_hashes = hashes
        for name in ("status", "error"):
            getattr(whole, name)[others] = getattr(plan, name)
        whole.report = plan.report
        return whole, known

    def _known_payloads(self, df: pd.DataFrame, people: Payloads, others: np.ndarray) -> Payloads:
        """The frame's payloads, the ``others`` rows planned (``people``): what is asked of
        some rows is taken from ``people`` where every one is of the others, else from a plan
        of the whole frame, made only then; every row's identity fields, made when asked."""
        full = functools.cache(lambda: self.plan(df).payloads)

        @functools.cache
        def identity() -> Identity:
            canonical = canonical_frame(df, self.fieldmap(list(df.columns)))
            fields = canonical[[c for c in ("userId", "email") if c in canonical]]
            who = encode_people(clean_frame(fields), naive_timestamps=self.naive_timestamps)
            names = ("user_ids", "emails", "shown_user_ids", "shown_emails")
            return Identity(*(replaced(getattr(who, n), others, getattr(people, n)) for n in names))

        local = np.full(len(df), -1)
        local[others] = np.arange(len(others))

        def rows_of(get: Callable[[Payloads, np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
            def at(rows: np.ndarray) -> Any:
                mine = local[rows]
                return get(people, mine) if (mine >= 0).all() else get(full(), rows)

            return at

        present = np.ones(len(df), dtype=bool)
        present[others] = people.present
        return Payloads(
            present,
            identity,
            problems={int(others[i]): why for i, why in people.problems.items()},
            each_problem={int(others[i]): why for i, why in people.each_problem.items()},
            wire_by=lambda: full().wire,
            sorted_by=lambda: full().hashed,
            people_by=lambda: full().people,
            identity_at=rows_of(Payloads.identity_rows),  # (rows sent: their bytes too)
            fields_by=rows_of(Payloads.field_hashes),
            wire_at=rows_of(Payloads.wire_rows),
            sorted_at=rows_of(Payloads.hashed_rows),
        )


def source_report(
    report: pd.DataFrame, problems: Mapping[int, list[str]], fieldmap: FieldMap, labels: Labels
) -> pd.DataFrame:
    """The validation report in the user's terms (index labels and source column names), then
    one row per value JSON cannot carry (check ``json_value``)."""
    rows = report["row"].to_numpy(dtype=np.int64).tolist() if len(report) else []
    columns = [None if pd.isna(c) else _source_or_same(fieldmap, c) for c in report["column"]]
    checks = report["check"].tolist()
    values = report["value"].tolist()
    for position, listed in problems.items():
        for problem in listed:
            name, _, reason = problem.partition(": ")
            rows.append(position)
            columns.append(_source_or_same(fieldmap, _canonical(name)) if reason else None)
            checks.append("json_value")
            values.append(reason or problem)
    frame = {"index": [labels[r] for r in rows], "column": columns, "check": checks}
    return pd.DataFrame(frame | {"value": values}, dtype=object)


def _canonical(label: str) -> str:
    """The canonical column behind a problem's label (``traits.<name>`` or a top field)."""
    if label.startswith("traits."):
        return canonical_trait_column(label.removeprefix("traits."))
    return label


def _source_or_same(fieldmap: FieldMap, canonical: str) -> Hashable:
    try:
        return fieldmap.source_of(canonical)
    except (KeyError, ValueError):
        return canonical


class Decisions:
    """One chunk's decisions by position, whatever its kind: a status, an error and the id
    Flameup answered with per row (None until decided), and each row's label."""

    labels: Labels
    status: np.ndarray
    error: np.ndarray
    flameup_id: np.ndarray

    def mark(
        self,
        position: int | np.ndarray,
        status: str,
        error: str | None = None,
        flameup_id: str | np.ndarray | None = None,  # an array: one id (or None) per position
    ) -> None:
        self.status[position] = status
        self.error[position] = error
        if flameup_id is not None:
            self.written_ids()[position] = flameup_id

    def written_ids(self) -> np.ndarray:
        """The ids as :meth:`mark` writes them."""
        return self.flameup_id

    def pending(self) -> np.ndarray:
        """Positions still to send, in input order."""
        return np.flatnonzero(self.status == None)  # noqa: E711 (each status, not the array)


@dataclass
class Plan(Decisions):
    """Per-row decisions for one frame (or one chunk of a file), by position; the people are
    columns (:class:`Payloads`), ``key_array`` their identity keys (null where none)."""

    payloads: Payloads
    labels: Labels
    status: np.ndarray
    error: np.ndarray
    ids: np.ndarray  # (read as flameup_id: the ids known from the state are filled first)
    report: pd.DataFrame = field(default_factory=pd.DataFrame)
    known_ids: list[tuple[np.ndarray, Callable[[], np.ndarray]]] = field(default_factory=list)

    @property
    def flameup_id(self) -> np.ndarray:
        """Each row's Flameup id (None until known); a known row's, from the state, when read."""
        while self.known_ids:
            positions, ids = self.known_ids.pop(0)
            self.ids[positions] = ids()
        return self.ids

    @flameup_id.setter
    def flameup_id(self, ids: np.ndarray) -> None:
        self.ids, self.known_ids = ids, []

    def written_ids(self) -> np.ndarray:  # (known rows are settled as planned, never marked)
        return self.ids

    @classmethod
    def start(cls, payloads: Payloads, labels: Labels) -> Plan:
        """Every row pending."""
        status, error, ids = (np.full(len(payloads), None, dtype=object) for _ in range(3))
        return cls(payloads=payloads, labels=labels, status=status, error=error, ids=ids)

    @functools.cached_property
    def key_array(self) -> pa.Array:
        """Each row's identity key (null where none), made once."""
        return self.payloads.keys()

    @functools.cached_property
    def identity_hashes(self) -> np.ndarray:
        """The 64-bit hash of each row's identity key (0 where none), made once: the sync
        state and the repeat finder both look people up by it."""
        return identity_hashes(self.key_array)

    def keys_at(self, positions: Sequence[int] | np.ndarray) -> list[str | None]:
        """The identity keys at ``positions`` as Python strings."""
        rows = np.asarray(positions, np.int64)  # (of a rerun's chunk, made for these alone)
        keys: list[str | None] = identity_key_array(*self.payloads.identity_rows(rows)).to_pylist()
        return keys

    def skip_duplicates(self, on_duplicate: str) -> None:
        """Send each identity once: the last row wins; the others are skipped, naming it."""
        pending = self.pending()
        keys = self.key_array.take(pa.array(pending))
        if len(pc.unique(keys)) == len(keys):  # the usual case, in half the time of codes
            return
        codes, last = _last_of_each(keys)
        dupes = np.flatnonzero(last[codes] != np.arange(len(codes)))
        if len(dupes) == 0:
            return
        if on_duplicate == "error":
            shown = ", ".join(map(str, sorted({str(k) for k in self.keys_at(pending[dupes])})[:5]))
            raise DuplicateIdentityError(
                f"{len(dupes)} rows repeat an identity already in the frame ({shown}); "
                "pass on_duplicate='last' to keep the last row of each"
            )
        kept = pending[last[codes[dupes]]]
        for position, winner in zip(pending[dupes].tolist(), kept.tolist(), strict=True):
            label = self.labels[winner]
            if isinstance(label, np.generic):  # shown as the plain number it is
                label = label.item()
            why = f"duplicate identity: row {label!r} with the same identity was sent instead"
            self.mark(position, "skipped", why)

    def skip_unchanged(self, state: SyncState) -> np.ndarray:
        """Skip people whose payload matches what the state says was last sent; their hashes."""
        pending = self.pending()
        hashes = self.payloads.content_hashes(pending)
        unchanged, known_ids = state.lookup(self.identity_hashes[pending], hashes)
        self.mark(pending[unchanged], "skipped", UNCHANGED, known_ids[unchanged])
        full = np.zeros(len(self.status), dtype=np.int64)
        full[pending] = hashes
        return full

    def apply(self, positions: Sequence[int], outcomes: Sequence[PersonOutcome]) -> None:
        for position, outcome in zip(positions, outcomes, strict=True):
            self.mark(position, outcome.status, outcome.error, outcome.flameup_id)


@dataclass
class Sender:
    """A client, its shared rate budget and a deliverer: what one run sends through (made by
    :meth:`Delivery.open <flameup_pandas._run.options.Delivery.open>`)."""

    client: FlameupClient
    deliverer: Deliverer
    owns_client: bool

    def close(self) -> None:
        if self.owns_client:
            self.client.close()

    def requests(self) -> int:
        """Requests sent so far in this run (for progress lines)."""
        return self.deliverer.stats.requests

    def in_flight(self) -> int:
        """The most requests this run has had in flight at once (for progress lines)."""
        return self.deliverer.stats.in_flight

    def report(self, elapsed: float, *, warnings: tuple[Reason, ...] = ()) -> RunReport:
        return RunReport(
            elapsed=elapsed,
            dry_run=False,
            stopped=self.deliverer.breaker.reason,
            warnings=warnings,
            **self.deliverer.stats.as_dict(),
        )


def joined(parts: list[np.ndarray], n: int) -> np.ndarray:
    """The chunks' parts of a column as one; ``n`` Nones when no chunk was read."""
    return np.concatenate(parts) if parts else np.full(n, None, dtype=object)


def _last_of_each(keys: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Each key's code (dense, from 0), and per code the position of its last occurrence
    (every key is set: rows still to send always have an identity)."""
    codes = pc.dictionary_encode(keys).indices.to_numpy(zero_copy_only=False)
    codes = np.asarray(codes, dtype=np.int64)
    uniques, reversed_first = np.unique(codes[::-1], return_index=True)
    last = np.empty(len(uniques), dtype=np.int64)
    last[uniques] = len(codes) - 1 - reversed_first
    return codes, last
