"""``spark.plan``: what a Spark run would do, decided in Spark; only its changes reach the
driver. The change guard of ``spark.upsert`` reads the same plan before anything is sent."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Unpack

import pandas as pd

from .._api import planned_run
from .._run.changes import ACTIONS, PLAN_COLUMNS, Gone, PlanSummary, summarize_plan, value_pair
from .._run.options import Options, split_options
from .._run.result import EXAMPLES, tell
from ._decide import ACTION, SENDING, checkpoint, decide, functions, state_of
from ._executors import ROW, Needs, check_columns, planned

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["SparkPlan", "plan", "plan_of"]

PLAN_COLUMNS_SPARK = (ROW, "userId", "email", "identity", *PLAN_COLUMNS)


@dataclass(frozen=True)
class SparkPlan:
    """What a Spark run would do, sending nothing.

    ``summary`` is the :class:`~flameup_pandas.PlanSummary` (people per action, counted in
    Spark; the fields that change most). ``changes`` is a pandas frame, indexed by ``row``, of
    the only rows that reached the driver: those a run would send (``create``/``update``),
    with ``userId``, ``email``, ``flameup_action``, ``flameup_changes`` and, with
    ``state_values=True``, ``flameup_before``/``flameup_after``. ``plan`` is every row's
    decision as a Spark DataFrame (row, userId, email, identity and the three plan columns),
    resting on a local checkpoint.
    """

    summary: PlanSummary
    changes: pd.DataFrame
    plan: DataFrame


def plan(sdf: DataFrame, **options: Unpack[Options]) -> SparkPlan:
    """What :func:`upsert` would do to each row of a Spark DataFrame, sending nothing.

    Planned on the executors by the same rules (each field a row sends is hashed as the sync
    state keeps it), diffed against ``state=`` in Spark, field by field, with Spark's own
    array functions; only the rows a run would send reach the driver
    (``len(result.changes)``). With ``state_values=True`` (and a state kept with it), those
    rows carry each changed field's value before and after. With ``complete_source=True``
    the summary counts the people of the state that no row gave as ``gone`` (found in
    Spark; nothing is deleted). The keywords are :func:`upsert`'s; the state is read, never
    written, and a plan guards nothing (``max_changes``/``max_creates`` are for a run).
    """
    rules, _, run = split_options("spark.plan", {"progress": False, **options})
    run = planned_run(run, "spark.plan returns its rows: results= is for spark.upsert")
    check_columns(sdf, rules)
    needs = Needs(payloads=False, fields=True, sent=run.state_values, given=run.complete_source)
    with state_of(sdf, run) as (sync, known):
        decided = checkpoint(decide(planned(sdf, rules, needs), known, with_state=sync is not None))
    gone = _gone(decided, known) if run.complete_source else None
    return plan_of(decided, values=run.state_values and sync is not None, gone=gone)


def plan_of(decided: DataFrame, *, values: bool, gone: Gone | None = None) -> SparkPlan:
    """The plan of decided rows: actions counted in Spark, the rows to send on the driver."""
    actions = counted(decided, ACTION, ACTIONS)
    changes = _changes_frame(decided.where(functions().col(ACTION).isin(*SENDING)), values=values)
    if gone is not None:
        tell(changes, "gone", gone)
    summary = dataclasses.replace(summarize_plan(changes), actions=actions)
    return SparkPlan(summary, changes, decided.select(*PLAN_COLUMNS_SPARK))


def counted(decided: DataFrame, column: str, names: tuple[str, ...]) -> dict[str, int]:
    """Rows per value of ``column`` (each of ``names``), counted in Spark: the rows stay lazy."""
    found = {r[column]: int(r["count"]) for r in decided.groupBy(column).count().collect()}
    return {name: found.get(name, 0) for name in names}


def _gone(decided: DataFrame, known: DataFrame | None) -> Gone:
    """People of the state whose identity no row gave (invalid rows count: they were given)."""
    if known is None:
        return Gone(0)
    given = decided.select("given_hash").distinct()
    absent = known.join(given, known["_known_hash"] == given["given_hash"], "left_anti")
    shown = [r["_known_identity"] for r in absent.select("_known_identity").take(EXAMPLES)]
    return Gone(absent.count(), tuple(str(e).partition(":")[2] for e in shown))


def _changes_frame(wanted: DataFrame, *, values: bool) -> pd.DataFrame:
    columns = [ROW, "userId", "email", ACTION, "flameup_changes", "sent", "_known_sent"]
    table = wanted.select(*columns[:5], *(columns[5:] if values else [])).toArrow().sort_by(ROW)
    frame = pd.DataFrame(
        {name: table[name].to_pylist() for name in columns[1:5]},
        index=pd.Index(table[ROW].to_pylist(), name=ROW, dtype="int64"),
        dtype=object,
    )
    if values:
        olds, news = table["_known_sent"].to_pylist(), table["sent"].to_pylist()
        decided = zip(frame[ACTION], frame["flameup_changes"], olds, news, strict=True)
        pairs = [
            (None, None) if names is None else value_pair(action == "create", names, old, new)
            for action, names, old, new in decided
        ]
        for name, at in (("flameup_before", 0), ("flameup_after", 1)):
            frame[name] = pd.Series([pair[at] for pair in pairs], index=frame.index, dtype=object)
    return frame
