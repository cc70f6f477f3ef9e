"""One definition of a run's options: every entry point builds Rules, Delivery and Run the same
way."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import flameup_pandas
from flameup_pandas import RetryPolicy
from flameup_pandas._run.options import (
    Delivery,
    DeliveryOptions,
    Options,
    RuleOptions,
    Run,
    RunOptions,
    split_options,
)
from flameup_pandas._run.plan import Rules
from flameup_pandas.airflow import upsert_file_task
from flameup_pandas.testing import FlameupServer

from .conftest import target

FRAME = pd.DataFrame({"userId": ["u1", "u2"], "email": ["a@example.com", "b@example.com"]})


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_typed_keywords_are_exactly_the_fields_of_rules_delivery_and_run() -> None:
    # on_duplicate is a rule only the frame path takes; it stays an explicit keyword there.
    assert set(RuleOptions.__annotations__) == _fields(Rules) - {"on_duplicate"}
    assert set(DeliveryOptions.__annotations__) == _fields(Delivery)
    assert set(RunOptions.__annotations__) == _fields(Run)
    assert set(Options.__annotations__) == (
        set(RuleOptions.__annotations__)
        | set(DeliveryOptions.__annotations__)
        | set(RunOptions.__annotations__)
    )


def test_the_run_keywords_are_written_in_no_public_signature() -> None:
    """state, full_refresh, dry_run, progress, results, filesystem: one value (Run), typed
    once (RunOptions); no entry point spells them out again."""
    import inspect

    from flameup_pandas import spark

    for function in (
        flameup_pandas.upsert,
        flameup_pandas.upsert_file,
        flameup_pandas.upsert_arrow,
        spark.upsert,
    ):
        named = set(inspect.signature(function).parameters)
        assert named & set(RunOptions.__annotations__) == set(), function.__qualname__


def test_typed_keywords_have_the_types_of_the_fields() -> None:
    # Both sides are the annotations as written: the same text means the same type.
    def annotations(cls: type) -> dict[str, str]:
        return {f.name: str(f.type) for f in dataclasses.fields(cls)}

    typed = {
        **RuleOptions.__annotations__,
        **DeliveryOptions.__annotations__,
        **RunOptions.__annotations__,
    }
    fields = {**annotations(Rules), **annotations(Delivery), **annotations(Run)}
    for name, hint in typed.items():
        written = hint.__forward_arg__ if isinstance(hint, typing.ForwardRef) else str(hint)
        assert written == fields[name], name


def test_split_options_sorts_keywords_into_rules_delivery_and_run() -> None:
    retry = RetryPolicy(total=1)
    rules, delivery, run = split_options(
        "upsert",
        {
            "mapping": {"userId": "id"},
            "send_nulls": True,
            "concurrency": 7,
            "retry": retry,
            "state": "s.parquet",
            "dry_run": True,
        },
        on_duplicate="error",
    )
    assert rules == Rules(mapping={"userId": "id"}, send_nulls=True, on_duplicate="error")
    assert delivery == Delivery(concurrency=7, retry=retry)
    assert run == Run(state="s.parquet", dry_run=True)


def test_a_frame_returns_its_results_instead_of_writing_a_file(tmp_path: Path) -> None:
    with pytest.raises(flameup_pandas.ConfigurationError, match="returns its results"):
        flameup_pandas.upsert(FRAME, results=tmp_path / "r.parquet", dry_run=True)


def test_delivery_defaults_are_the_documented_ones() -> None:
    delivery = Delivery()
    assert (delivery.concurrency, delivery.allow_http, delivery.retry) == (None, False, None)


def test_the_api_key_never_shows_in_a_delivery_repr() -> None:
    assert "ws_test_secret" not in repr(Delivery(api_key="ws_test_secret"))


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"concurrency": 2.5}, "concurrency must be an int or None"),
        ({"rate_limit": 0}, "rate_limit must be a positive number or None"),
        ({"rate_limit": float("inf")}, "rate_limit must be a positive number or None"),
        ({"rate_limit": "fast"}, "rate_limit must be a positive number or None"),
    ],
)
def test_bad_delivery_options_fail_when_built(options: dict[str, Any], error: str) -> None:
    with pytest.raises((ValueError, TypeError), match=error):
        Delivery(**options)


def _frame(**kw: Any) -> Any:
    return flameup_pandas.upsert(FRAME, **kw)


def _accessor(**kw: Any) -> Any:
    return FRAME.flameup.upsert(**kw)


def _polars(**kw: Any) -> Any:
    return pl.from_pandas(FRAME).flameup.upsert(**kw)


def _file(tmp: Path) -> Callable[..., Any]:
    path = tmp / "people.parquet"
    FRAME.to_parquet(path, index=False)
    return lambda **kw: flameup_pandas.upsert_file(path, **kw)


def _arrow(**kw: Any) -> Any:
    return flameup_pandas.upsert_arrow(pa.Table.from_pandas(FRAME, preserve_index=False), **kw)


def _airflow(tmp: Path) -> Callable[..., Any]:
    path = tmp / "people.parquet"
    FRAME.to_parquet(path, index=False)
    return lambda **kw: upsert_file_task(path, **kw)


def _entry_points(tmp: Path) -> dict[str, Callable[..., Any]]:
    return {
        "upsert": _frame,
        "accessor": _accessor,
        "polars": _polars,
        "upsert_file": _file(tmp),
        "upsert_arrow": _arrow,
        "airflow": _airflow(tmp),
    }


@pytest.mark.parametrize(
    "name", ["upsert", "accessor", "polars", "upsert_file", "upsert_arrow", "airflow"]
)
def test_every_entry_point_checks_options_the_same_way_before_sending(
    name: str, flameup_server: FlameupServer, tmp_path: Path
) -> None:
    send = _entry_points(tmp_path)[name]
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        send(**target(flameup_server, concurrency=0))
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'rate_limt'.*'rate_limit'"):
        send(**target(flameup_server, rate_limt=10))
    assert flameup_server.request_count() == 0


@pytest.mark.parametrize(
    "name", ["upsert", "accessor", "polars", "upsert_file", "upsert_arrow", "airflow"]
)
def test_every_entry_point_sends_through_the_delivery_it_was_given(
    name: str, flameup_server: FlameupServer, tmp_path: Path
) -> None:
    send = _entry_points(tmp_path)[name]
    send(**target(flameup_server, concurrency=2, retry=RetryPolicy(total=0)))
    assert flameup_server.request_count("/people/batch", status=200) == 1
    assert set(flameup_server.people()["external_id"]) == {"u1", "u2"}


def test_validate_and_to_people_take_the_rule_keywords_only() -> None:
    frame = pd.DataFrame({"id": ["u1"], "plan": ["pro"]})
    assert flameup_pandas.to_people(frame, mapping={"userId": "id"}, exclude=["plan"]) == [
        {"userId": "u1"}
    ]
    unknown = r"validate\(\) got an unexpected keyword argument 'concurrency'"
    with pytest.raises(TypeError, match=unknown):
        flameup_pandas.validate(frame, concurrency=2)  # type: ignore[call-arg]


def test_track_keywords_are_the_fields_of_event_rules_delivery_and_the_shared_run() -> None:
    """The track entry points share one definition of their keywords, as upsert's do, and
    the run keywords that mean the same for both kinds are one definition too."""
    import inspect

    from flameup_pandas._events.rules import EventRules
    from flameup_pandas._run.options import (
        EventRuleOptions,
        EventSending,
        EventSendingOptions,
        SharedRunOptions,
        TrackOptions,
        split_track_options,
    )

    assert set(EventRuleOptions.__annotations__) == _fields(EventRules) | {"mapping"}
    assert set(EventSendingOptions.__annotations__) == _fields(EventSending)
    assert set(SharedRunOptions.__annotations__) <= set(RunOptions.__annotations__)
    assert set(TrackOptions.__annotations__) == (
        set(EventRuleOptions.__annotations__)
        | set(DeliveryOptions.__annotations__)
        | set(SharedRunOptions.__annotations__)
        | set(EventSendingOptions.__annotations__)
    )
    shared = {"state", "dry_run", "progress", "results", "storage_options", "max_duration"}
    assert shared <= set(SharedRunOptions.__annotations__)
    for function in (flameup_pandas.track, flameup_pandas.track_file):
        named = set(inspect.signature(function).parameters)
        assert named & set(TrackOptions.__annotations__) == set(), function.__qualname__
    rules, delivery, run, sending = split_track_options(
        "track",
        {"event": "e", "exclude": ["x"], "concurrency": 3, "dry_run": True, "state": "s"},
    )
    assert (rules.event, rules.exclude, delivery.concurrency) == ("e", ("x",), 3)
    assert (run.dry_run, run.state, sending.max_resends) == (True, "s", 3)
    with pytest.raises(TypeError, match="did you mean 'dry_run'"):
        split_track_options("track", {"event": "e", "dryrun": True})
    with pytest.raises(TypeError, match="full_refresh"):
        split_track_options("track", {"event": "e", "full_refresh": True})
    with pytest.raises(ValueError, match="max_duration"):
        Run(max_duration=-1)
    with pytest.raises(ValueError, match="max_resends"):
        EventSending(max_resends=-1)
    rules, *_ = split_track_options("track", {"event": "e", "mapping": {"userId": "uid"}})
    assert rules.user_id == "uid"
