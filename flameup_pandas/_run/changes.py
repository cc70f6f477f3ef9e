"""Plans: what a run would do to each row (create, update, unchanged, invalid, skipped), and
to which fields, without sending anything (``docs/guides/plan.md`` tells each action).

A plan is the engine in a dry run with one more sink: :class:`PlanRecorder` records, for each
chunk, what the run would do with every row before anything is sent. Which fields change is
known from the state alone: it keeps a 32-bit hash of each field a person was sent with (its
name and JSON value), so no request is needed; where it cannot tell (a state written before it
kept fields, or none), an update's ``flameup_changes`` is None. The change guard
(``max_changes=``, ``max_creates=``) plans first and refuses, with
:class:`~flameup_pandas.ChangeGuardError`, before any request.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .._people.encode import FieldHashes
from .._people.identity import HashRuns, identity_hashes, identity_key_array
from .._people.person import TOP_LEVEL
from .._people.values import read_back
from ..exceptions import ChangeGuardError
from .plan import UNCHANGED, Plan, joined
from .result import EXAMPLES, html_table, plain_label, some, told
from .state import SyncState

__all__ = [
    "ACTIONS",
    "PLAN_COLUMNS",
    "ChangeGuard",
    "FieldChange",
    "Gone",
    "Limit",
    "PlanRecorder",
    "PlanSummary",
    "parse_limit",
    "refuse_over",
    "summarize_plan",
    "value_pair",
]

ACTIONS = ("create", "update", "unchanged", "invalid", "skipped")
PLAN_COLUMNS = ("flameup_action", "flameup_changes", "flameup_error")
VALUE_COLUMNS = ("flameup_before", "flameup_after")
TOP_FIELDS = 10  # changed fields a summary shows

Limit = int | float | str
"""A number of people (``500``), a fraction of the source's people (``0.05``) or a
percentage (``"5%"``)."""


class PlanRecorder:
    """The planner sink (:data:`flameup_pandas._run.people.Planner`): each chunk's action,
    changed fields and error, in input order; :meth:`frame` joins them with the input rows."""

    def __init__(
        self, complete_source: bool = False, keep_people: int = 0, values: bool = False
    ) -> None:
        self.keep_people = keep_people  # people a run would send, kept as sent (up to this)
        self.values = values  # the before and after values too, from the state (state_values)
        names = PLAN_COLUMNS + (VALUE_COLUMNS if values else ())
        self.parts: dict[str, list[np.ndarray]] = {name: [] for name in names}  # by chunk
        self.sent: list[tuple[Hashable, dict[str, Any]]] = []
        self.frames: list[pd.DataFrame] = []
        self.seen: HashRuns | None = HashRuns() if complete_source else None
        self.sync: SyncState | None = None

    def __call__(
        self, frame: pd.DataFrame, plan: Plan, sync: SyncState | None, fields: FieldHashes | None
    ) -> None:
        actions, changes = decide(plan, sync, fields)
        self.sync = sync
        parts = [actions, changes, plan.error.copy()]
        if self.values:
            parts += before_after(plan, sync, actions, changes)
        for column, part in zip(self.parts.values(), parts, strict=True):
            column.append(part)
        wanted = self.keep_people - len(self.sent)
        if wanted > 0:
            taken = plan.pending()[:wanted]
            people = plan.payloads.take(taken).people
            labels = [plan.labels[p] for p in taken.tolist()]
            self.sent += [(lb, p) for lb, p in zip(labels, people, strict=True) if p is not None]
        if self.seen is not None:  # every identity given, invalid rows' too: they are here
            given = identity_key_array(plan.payloads.shown_user_ids, plan.payloads.shown_emails)
            hashes = identity_hashes(given)
            self.seen.add(np.unique(hashes[hashes != 0]))
        self.frames.append(frame)

    def frame(self, source: pd.DataFrame | None = None) -> pd.DataFrame:
        """The input rows (``source``, else the chunks read) with the plan's columns."""
        if source is None:
            frames = self.frames or [pd.DataFrame()]
            source = pd.concat(frames) if len(frames) > 1 else frames[0]
        result = source.copy(deep=False)
        for key, column in self.columns(source.index).items():
            result[key] = column
        return result

    def columns(self, index: pd.Index | None = None) -> pd.DataFrame:
        """The plan's columns alone (a summary's input), labelled by ``index`` or the chunks'."""
        if index is None:
            labels = [frame.index for frame in self.frames]
            index = labels[0].append(labels[1:]) if labels else pd.RangeIndex(0)
        columns = {name: joined(parts, len(index)) for name, parts in self.parts.items()}
        return pd.DataFrame(columns, index=index, dtype=object)

    def gone(self, sync: SyncState | None = None) -> Gone:
        """The people of the state (``sync``, else the chunks') whose identity no row gave."""
        sync = sync or self.sync
        if sync is None or self.seen is None:
            return Gone(0)
        table = sync.frame()
        hashes = table["identity_hash"].to_numpy()
        absent = ~self.seen.contains(hashes) if len(hashes) else np.zeros(0, bool)
        examples = table["identity"].to_numpy()[absent][:EXAMPLES].tolist()
        return Gone(int(absent.sum()), tuple(str(e).partition(":")[2] for e in examples))


@dataclass(frozen=True)
class Gone:
    """People in the state but not in a complete source: how many, and a few identities."""

    count: int
    examples: tuple[str, ...] = ()


def decide(
    plan: Plan, sync: SyncState | None, fields: FieldHashes | None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's action and its changed fields (a list, or None where unknown or moot)."""
    n = len(plan.status)
    actions = np.full(n, "update", dtype=object)
    changes = np.full(n, None, dtype=object)
    actions[plan.status == "invalid"] = "invalid"
    skipped = plan.status == "skipped"
    actions[skipped] = "skipped"
    actions[skipped & (plan.error == UNCHANGED)] = "unchanged"
    pending = plan.pending()
    if sync is None or fields is None or len(pending) == 0:
        return actions, changes  # no state: an update whose changes are unknown
    found, old = sync.known_fields(plan.identity_hashes[pending])
    actions[pending[~found]] = "create"
    known = found & np.asarray(old.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    differs = _differing(fields, old, known)
    names = np.asarray(fields.names, dtype=object)
    for i in np.flatnonzero(~found | known).tolist():
        mask = differs[:, i] if found[i] else fields.present[:, i]
        changes[pending[i]] = names[mask].tolist()
    return actions, changes


def before_after(
    plan: Plan, sync: SyncState | None, actions: np.ndarray, changes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's changed fields as dicts: ``before`` as last sent (an update's, where the
    state kept values; None for each field a create sets) and ``after``; None where unknown."""
    before, after = np.full((2, len(actions)), None, dtype=object)
    wanted = np.flatnonzero(
        np.isin(actions, ("update", "create")) & np.asarray(pd.notna(changes), dtype=bool)
    )
    if sync is None or len(wanted) == 0:
        return before, after
    olds = sync.column_at("sent", plan.identity_hashes[wanted]).to_pylist()
    news = plan.payloads.hashed.take(pa.array(wanted)).to_pylist()
    for position, old, new in zip(wanted.tolist(), olds, news, strict=True):
        pair = value_pair(actions[position] == "create", changes[position], old, new)
        before[position], after[position] = pair
    return before, after


def value_pair(
    created: bool, names: list[str], old: str | bytes | None, new: str | bytes
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(before, after) of the fields ``names``, from a person's JSON as last sent (``old``;
    None where not kept) and as it would be sent (``new``); (None, None) for an update whose
    values were not kept.

    >>> value_pair(False, ["plan"], '{"traits":{"plan":"pro"}}', '{"traits":{"plan":"free"}}')
    ({'plan': 'pro'}, {'plan': 'free'})
    """
    if old is None and not created:
        return None, None
    was = {} if old is None else read_back(old)
    now = read_back(new)
    before = {f: None if created else field_value(was, f) for f in names}
    return before, {f: field_value(now, f) for f in names}


def field_value(person: dict[str, Any], name: str) -> Any:
    """The value of a plan's field (a top-level field, a trait, or ``traits.<name>`` for a
    trait named like a top-level field) in a person as sent; None where it is not sent.

    >>> field_value({"email": "a@x.io", "traits": {"plan": "pro", "email": "b@x.io"}}, "plan")
    'pro'
    >>> field_value({"email": "a@x.io", "traits": {"email": "b@x.io"}}, "traits.email")
    'b@x.io'
    """
    traits = person.get("traits") or {}
    if name.startswith("traits.") and name.removeprefix("traits.") in TOP_LEVEL:
        return traits.get(name.removeprefix("traits."))
    if name in TOP_LEVEL:
        return person.get(name)
    return traits.get(name)


def _differing(fields: FieldHashes, old: pa.Array, known: np.ndarray) -> np.ndarray:
    """(fields x rows): sent now, and not with this value last time (rows ``known``)."""
    m = fields.hashes.shape[1]
    if m == 0 or not known.any():
        return np.zeros(fields.hashes.shape, dtype=bool)
    parents = np.asarray(old.value_parent_indices().to_numpy(), dtype=np.uint64)
    values = np.asarray(old.flatten().to_numpy(), dtype=np.uint64)
    before = (parents << np.uint64(32)) | values
    rows = np.broadcast_to(np.arange(m, dtype=np.uint64), fields.hashes.shape)
    now = (rows << np.uint64(32)) | fields.hashes.astype(np.uint64)
    kept = np.isin(now, before)
    differs: np.ndarray = fields.compared() & ~kept & known[np.newaxis, :]
    return differs


@dataclass(frozen=True)
class FieldChange:
    """A field that some updates change: how many people, and a few of them (row labels)."""

    field: str
    count: int
    examples: tuple[Hashable, ...] = ()
    values: tuple[tuple[str, str, int], ...] = ()
    """The commonest changes of value (``before``, ``after`` as shown, and how many people),
    where the plan knows them (``state_values=True``, or ``against="flameup"``)."""

    def to_dict(self) -> dict[str, Any]:
        examples = [plain_label(label) for label in self.examples]
        return {**asdict(self), "examples": examples, "values": [list(v) for v in self.values]}

    def line(self, width: int = 0) -> str:
        shown = some(self.examples, self.count)
        return f"{self.field:<{width}}  {self.count:>9,} {_people(self.count)}  (rows {shown})"

    def value_lines(self) -> list[str]:
        """One line a change of value: ``plan: 'pro' -> 'free'  9,812 people``."""
        return [f"{self.field}: {o} -> {n}  {c:,} {_people(c)}" for o, n, c in self.values]


def _people(count: int) -> str:
    return "person" if count == 1 else "people"


@dataclass(frozen=True)
class PlanSummary:
    """What a plan says a run would do: people per action, and the fields updates change.

    ``unknown`` counts updates whose changed fields the state cannot tell (written before
    it kept fields, or no state at all). Shown as text by ``str()`` and as a table in a
    notebook.
    """

    actions: dict[str, int]
    fields: tuple[FieldChange, ...] = ()
    unknown: int = 0
    gone: int | None = None
    """With ``complete_source=True``: people in the state that the source no longer holds
    (None when the plan was not told the source is complete). Nothing is deleted."""
    gone_examples: tuple[str, ...] = ()

    @property
    def would_send(self) -> int:
        """People a run would send: creates and updates."""
        return self.actions.get("create", 0) + self.actions.get("update", 0)

    @property
    def people(self) -> int:
        """People in the source: those a run would send, and those unchanged."""
        return self.would_send + self.actions.get("unchanged", 0)

    def to_dict(self) -> dict[str, Any]:
        fields = [f.to_dict() for f in self.fields]
        return {**asdict(self), "fields": fields, "gone_examples": list(self.gone_examples)}

    def __str__(self) -> str:
        lines = ["  ".join(f"{a} {self.actions.get(a, 0):,}" for a in ACTIONS)]
        if self.gone is not None:
            shown = f" ({some(self.gone_examples, self.gone)})" if self.gone_examples else ""
            lines.append(
                f"gone {self.gone:,}: in the state, not in this source{shown}; nothing is deleted"
            )
        lines += _field_lines(self.fields)
        values = [line for f in self.fields for line in f.value_lines()]
        if values:
            lines.append("values that change most:")
            lines += ["  " + line for line in values]
        if self.unknown:
            lines.append(
                f"{self.unknown:,} updates with changes unknown (the state has no fields for "
                "them: written before it kept them, or no state)"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        counts = [(a, self.actions.get(a, 0)) for a in ACTIONS]
        if self.gone is not None:
            counts.append(("gone", self.gone))
        page = html_table(counts, ("action", "people"))
        if self.fields:
            rows = []
            for f in self.fields:
                values = "; ".join(f"{o} -> {n} ({c:,})" for o, n, c in f.values)
                rows.append((f.field, f.count, ", ".join(map(str, f.examples)), values))
            page += html_table(rows, ("field", "updates", "examples", "before -> after"))
        return page


def _field_lines(fields: tuple[FieldChange, ...]) -> list[str]:
    width = max((len(f.field) for f in fields), default=0)
    return ["fields that change most:", *("  " + f.line(width) for f in fields)] if fields else []


def summarize_plan(plan: pd.DataFrame) -> PlanSummary:
    """The summary of a plan frame (one with ``flameup_action`` and ``flameup_changes``)."""
    actions = plan["flameup_action"].to_numpy(dtype=object)
    found = pd.Series(actions, dtype=object, copy=False).value_counts()  # one pass
    counts = {a: int(found.get(a, 0)) for a in ACTIONS}
    is_update = actions == "update"
    updates = plan.loc[is_update, "flameup_changes"]
    unknown = int(updates.isna().sum())
    tally: Counter[str] = Counter()
    examples: defaultdict[str, list[Hashable]] = defaultdict(list)
    for label, changed in updates.dropna().items():
        tally.update(changed)
        for name in changed:
            if len(examples[name]) < EXAMPLES:
                examples[name].append(label)
    values = _value_changes(plan, is_update)
    top = tuple(
        FieldChange(name, count, tuple(examples[name]), values.get(name, ()))
        for name, count in tally.most_common(TOP_FIELDS)
    )
    gone: Gone | None = told(plan, "gone")  # recorded when the source is complete
    gone_fields = () if gone is None else (gone.count, gone.examples)
    return PlanSummary(counts, top, unknown, *gone_fields)


def _value_changes(
    plan: pd.DataFrame, updates: np.ndarray
) -> dict[str, tuple[tuple[str, str, int], ...]]:
    """Per field, its commonest changes of value (as literals) among the updates' before/after."""
    if "flameup_before" not in plan.columns:
        return {}
    tally: Counter[tuple[str, str, str]] = Counter()
    befores = plan.loc[updates, "flameup_before"]
    afters = plan.loc[updates, "flameup_after"]
    for before, after in zip(befores, afters, strict=True):
        if isinstance(before, dict) and isinstance(after, dict):
            for name, new in after.items():
                tally[(name, repr(before.get(name)), repr(new))] += 1
    out: defaultdict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for (name, old, new), count in tally.most_common():
        if len(out[name]) < EXAMPLES:
            out[name].append((old, new, count))
    return {name: tuple(shown) for name, shown in out.items()}


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_limit(limit: Limit, name: str = "max_changes") -> Limit:
    """A checked limit: a count (int, at least 0), a fraction (float in [0, 1]) or ``"5%"``.

    >>> parse_limit("5%")
    0.05
    >>> parse_limit(500)
    500
    """
    if isinstance(limit, str):
        match = _PERCENT.match(limit)
        if match is None or float(match[1]) > 100:
            raise ValueError(f"{name} must be a percentage like '5%', got {limit!r}")
        return float(match[1]) / 100
    if isinstance(limit, int) and not isinstance(limit, bool):
        if limit < 0:
            raise ValueError(f"{name} must be at least 0, got {limit}")
        return limit
    if isinstance(limit, float):
        if not 0.0 <= limit <= 1.0:
            raise ValueError(
                f"{name} as a float is a fraction of the source's people, from 0 to 1; "
                f"got {limit} (pass an int for a number of people)"
            )
        return limit
    raise TypeError(f"{name} must be a number of people, a fraction or 'N%', got {limit!r}")


class ChangeGuard(PlanRecorder):
    """A run's change guard: a planner sink, then one check of all its chunks; the engine keeps
    the planned chunks to send once :meth:`check` lets them through (read and encoded once)."""

    def __init__(self, max_changes: Limit | None, max_creates: Limit | None) -> None:
        super().__init__()
        self.max_changes = max_changes
        self.max_creates = max_creates

    def check(self) -> PlanSummary:
        """The plan's summary; :class:`ChangeGuardError` when it changes more than allowed."""
        summary = summarize_plan(self.columns())
        refuse_over(summary, self.max_changes, self.max_creates, self.frame)
        PlanRecorder.__init__(self)  # let through: the rows read are not needed to send
        return summary


def refuse_over(
    summary: PlanSummary,
    max_changes: Limit | None,
    max_creates: Limit | None,
    whole: Callable[[], Any],
) -> None:
    """:class:`ChangeGuardError` (its plan ``whole()``) when ``summary`` is over a limit."""
    people = summary.people
    over = []
    limits = (("update", "max_changes", max_changes), ("create", "max_creates", max_creates))
    for action, name, limit in limits:
        if limit is None:
            continue
        allowed = limit if isinstance(limit, int) else int(float(limit) * people)
        shown = f"{limit:,}" if isinstance(limit, int) else f"{float(limit):.4g} of them"
        if summary.actions[action] > allowed:
            over.append(
                f"it would {action} {summary.actions[action]:,} of {people:,} people "
                f"({name}={shown}: at most {allowed:,})"
            )
    if not over:
        return
    lines = [f"the change guard stopped this run before sending anything: {'; '.join(over)}."]
    lines += _field_lines(summary.fields[:5])
    if summary.unknown:
        lines.append(
            f"{summary.unknown:,} of the updates have changes unknown (the state has no "
            "fields for them yet)"
        )
    lines.append(
        "Look at the whole plan (the error's .plan, or df.flameup.plan(...)); if the "
        "changes are meant, raise the limit or run without it."
    )
    raise ChangeGuardError("\n".join(lines), plan=whole(), summary=summary)
