"""``df.flameup``: a thin front that stores the frame and hands off to plain functions."""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import _api
from ._events import api as _events_api
from ._run.changes import PlanSummary, summarize_plan
from ._run.result import Summary, summarize

__all__ = ["FlameupAccessor"]


@pd.api.extensions.register_dataframe_accessor("flameup")
class FlameupAccessor:
    """Flameup on any DataFrame: ``validate()``, ``to_people()``, ``plan()``, ``upsert()``,
    ``summary()``.

    >>> import pandas as pd, flameup_pandas
    >>> df = pd.DataFrame({"userId": ["u1", "u2"], "email": ["a@example.com", "not-an-email"]})
    >>> df.flameup.validate()[["index", "column", "check"]]
       index column            check
    0      1  email  email_plausible
    >>> df.flameup.to_people()
    [{'userId': 'u1', 'email': 'a@example.com'}]
    """

    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    def validate(self, **options: Any) -> pd.DataFrame:
        """Every problem, one row each (see :func:`flameup_pandas.validate`)."""
        return _api.validate(self._df, **options)

    def to_people(self, **options: Any) -> list[dict[str, Any]]:
        """The people dicts exactly as they will be sent (see :func:`flameup_pandas.to_people`)."""
        return _api.to_people(self._df, **options)

    def plan(self, **options: Any) -> pd.DataFrame:
        """What upsert() would do to each row, sending nothing (see :func:`flameup_pandas.plan`)."""
        return _api.plan(self._df, **options)

    def upsert(self, **options: Any) -> pd.DataFrame:
        """Send the rows; the result frame (see :func:`flameup_pandas.upsert`)."""
        return _api.upsert(self._df, **options)

    def track(self, **options: Any) -> pd.DataFrame:
        """Send the rows as events; the result frame (see :func:`flameup_pandas.track`)."""
        return _events_api.track(self._df, **options)

    def validate_events(self, **options: Any) -> pd.DataFrame:
        """Every problem of the rows as events (see :func:`flameup_pandas.validate_events`)."""
        return _events_api.validate_events(self._df, **options)

    def summary(self) -> Summary | PlanSummary:
        """Counts per status and the run's figures, for a frame that upsert() returned; for a
        frame that plan() returned, people per action and the fields that change most."""
        if "flameup_action" in self._df.columns:
            return summarize_plan(self._df)
        return summarize(self._df)
