"""``df.flameup`` on polars DataFrames: the pandas engine, reached through Arrow at the edge.

:func:`register` (called by ``import flameup_pandas`` when polars is installed) adds the
namespace. The frame crosses to pandas once, through the crossing every source takes
(:func:`flameup_pandas._run.sources.polars_frame`); the result columns are added to the
original polars frame, otherwise untouched (``docs/guides/spark-and-polars.md``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import _api
from ._events import api as _events_api
from ._events.rules import RESULT_COLUMNS as EVENT_COLUMNS
from ._people.values import is_missing
from ._run.changes import PLAN_COLUMNS, VALUE_COLUMNS, PlanSummary, summarize_plan
from ._run.result import RESULT_COLUMNS, Summary, run_of, summarize, tell
from ._run.sources import polars_frame
from .exceptions import UpsertInterrupted

if TYPE_CHECKING:
    import polars as pl

__all__ = ["PolarsFlameup", "register"]


def register() -> None:
    """Register the ``flameup`` namespace on ``polars.DataFrame`` (once; raises ImportError
    when polars is not installed)."""
    import polars as pl

    if not hasattr(pl.DataFrame, "flameup"):
        pl.api.register_dataframe_namespace("flameup")(PolarsFlameup)


class PolarsFlameup:
    """Flameup on any polars DataFrame: ``validate()``, ``to_people()``, ``plan()``,
    ``upsert()``, ``summary()``; the keywords are those of :func:`flameup_pandas.upsert`
    and friends.

    >>> import polars as pl, flameup_pandas
    >>> df = pl.DataFrame({"userId": ["u1", "u2"], "email": ["a@example.com", "nope"]})
    >>> PolarsFlameup(df).to_people()
    [{'userId': 'u1', 'email': 'a@example.com'}]
    """

    def __init__(self, df: pl.DataFrame) -> None:
        self._df = df

    def _pandas(self) -> pd.DataFrame:
        return polars_frame(self._df)

    def validate(self, **options: Any) -> pl.DataFrame:
        """Every problem, one row each: ``row`` (position), ``column``, ``check``, ``value``.

        ``value`` is shown as text, since one column holds values of every type.
        """
        import polars as pl

        report = _api.validate(self._pandas(), **options)
        texts = {name: [_text(v) for v in report[name]] for name in ("column", "check", "value")}
        return pl.DataFrame(
            {"row": report["index"].tolist(), **texts},
            schema={"row": pl.Int64, "column": pl.String, "check": pl.String, "value": pl.String},
        )

    def to_people(self, **options: Any) -> list[dict[str, Any]]:
        """The people dicts exactly as they will be sent (see :func:`flameup_pandas.to_people`)."""
        return _api.to_people(self._pandas(), **options)

    def plan(self, **options: Any) -> pl.DataFrame:
        """What upsert() would do to each row (see :func:`flameup_pandas.plan`): the frame with
        ``flameup_action``, ``flameup_changes`` (list of names), ``flameup_error``, and any
        ``flameup_before``/``flameup_after`` as ``Object`` columns of dicts.
        """
        planned = _api.plan(self._pandas(), **options)
        shown = [n for n in (*PLAN_COLUMNS, *VALUE_COLUMNS) if n in planned.columns]
        return self._result(planned, shown)

    def upsert(self, **options: Any) -> pl.DataFrame:
        """Send the rows; the frame with flameup_id, flameup_status, flameup_error added.

        On Ctrl-C or SIGTERM raises :class:`~flameup_pandas.UpsertInterrupted` whose
        ``result`` is this polars frame with every row answered so far.
        """
        return self._sent(_api.upsert, RESULT_COLUMNS, options)

    def track(self, **options: Any) -> pl.DataFrame:
        """Send the rows as events; the frame with flameup_event_id, flameup_status and
        flameup_error added (see :func:`flameup_pandas.track`)."""
        return self._sent(_events_api.track, EVENT_COLUMNS, options)

    def _sent(
        self, send: Callable[..., pd.DataFrame], names: Sequence[str], options: dict[str, Any]
    ) -> pl.DataFrame:
        try:
            return self._result(send(self._pandas(), **options), names)
        except UpsertInterrupted as stop:
            result = self._result(stop.result, names)
            raise UpsertInterrupted(str(stop), result=result, signal=stop.signal) from None

    def _result(self, result: pd.DataFrame, names: Sequence[str]) -> pl.DataFrame:
        """The frame with ``result``'s columns ``names`` added: text, but a plan's lists of
        names and dicts of values."""
        import polars as pl

        kinds: dict[str, Any] = {"flameup_changes": pl.List(pl.String)}
        kinds |= dict.fromkeys(VALUE_COLUMNS, pl.Object)
        out = self._df.with_columns(
            pl.Series(name, result[name].tolist(), dtype=kinds.get(name, pl.String))
            for name in names
        )
        run = run_of(result)
        if run is not None:
            tell(out, "run", run)  # keyed by id, held weakly
        return out

    def summary(self) -> Summary | PlanSummary:
        """Counts per status and the run's figures, for a frame that upsert() returned; for a
        frame that plan() returned, people per action and the fields that change most."""
        planned = "flameup_action" in self._df.columns
        shown = (*PLAN_COLUMNS, *VALUE_COLUMNS) if planned else ("flameup_status", "flameup_error")
        names = [name for name in shown if name in self._df.columns]
        frame = pd.DataFrame({name: self._df[name].to_list() for name in names}, dtype=object)
        if planned:
            return summarize_plan(frame)
        return dataclasses.replace(summarize(frame), run=run_of(self._df))


def _text(value: Any) -> str | None:
    return None if is_missing(value) else str(value)
