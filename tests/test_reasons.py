"""Why rows need attention: top reasons, grouped, with counts and example rows, everywhere a
summary shows (the CLI, a notebook's summary(), to_dict(), the Airflow callable)."""

from __future__ import annotations

import json

import pandas as pd
import polars as pl

import flameup_pandas
from flameup_pandas._run.result import Reason, ReasonTally, reason_key
from flameup_pandas.airflow import upsert_file_task
from flameup_pandas.cli import main
from flameup_pandas.testing import FlameupServer

from .conftest import target
from .test_upsert import customers

PLAUSIBLE = "email: not a plausible email address"


def spoiled(n: int = 2_000) -> pd.DataFrame:
    """``n`` customers: 4 with bad emails (rows 17, 256, 1024, 1500), 2 with no identity."""
    df = customers(n)
    df.loc[[17, 256, 1024, 1500], "email"] = ["nope", "still nope", "x@", "@y"]
    df.loc[[5, 6], ["user_id", "email"]] = None
    return df


def test_a_reason_line_reads_status_count_reason_and_example_rows():
    assert Reason("invalid", PLAUSIBLE, 3, (17, 256, 1024)).line() == (
        f"invalid  3  {PLAUSIBLE} (rows 17, 256, 1024)"
    )
    assert Reason("failed", "x", 1, ("r1",)).line(3) == "failed     1  x (row r1)"
    assert Reason("rejected", "y", 12, (1, 2, 3)).line().endswith("(rows 1, 2, 3, …)")


def test_reasons_are_grouped_without_values_and_retry_figures_most_rows_first():
    tally = ReasonTally()
    tally.add(
        ["invalid", "created", "failed", "invalid", "failed", "invalid", "invalid"],
        [
            f"{PLAUSIBLE} (value 'a')",
            None,
            "HTTP 503: down; gave up after 9 attempts over 3.2 s (9 errors, 0 rate-limited)",
            f"{PLAUSIBLE} (value 'b')",
            "HTTP 503: down; gave up after 9 attempts over 7.9 s (9 errors, 0 rate-limited)",
            f"{PLAUSIBLE} (value 'c')",
            f"{PLAUSIBLE} (value 'd')",
        ],
        ["r0", "r1", "r2", "r3", "r4", "r5", "r6"],
    )
    assert tally.top() == (
        Reason("invalid", PLAUSIBLE, 4, ("r0", "r3", "r5")),
        Reason("failed", "HTTP 503: down; gave up after 9 attempts", 2, ("r2", "r4")),
    )
    assert reason_key(None) == "(no reason given)"


def test_frame_summary_shows_the_reasons_and_to_dict_carries_them(flameup_server):
    result = spoiled().flameup.upsert(**target(flameup_server))
    summary = result.flameup.summary()
    assert summary.reasons == (
        Reason("invalid", PLAUSIBLE, 4, (17, 256, 1024)),
        Reason("invalid", "no userId or email (one of them is required)", 2, (5, 6)),
    )
    assert f"invalid  4  {PLAUSIBLE} (rows 17, 256, 1024, …)" in str(summary)
    reasons = summary.to_dict()["reasons"]
    assert json.loads(json.dumps(reasons)) == reasons
    assert reasons[0] == {
        "status": "invalid",
        "reason": PLAUSIBLE,
        "count": 4,
        "examples": [17, 256, 1024],
    }
    page = summary._repr_html_()
    assert "Why rows need attention" in page and "not a plausible email address" in page


def test_polars_summary_names_rows_by_position(flameup_server):
    result = pl.from_pandas(spoiled()).flameup.upsert(**target(flameup_server))
    reasons = result.flameup.summary().reasons
    assert reasons[0] == Reason("invalid", PLAUSIBLE, 4, (17, 256, 1024))


def test_cli_prints_the_top_reasons_after_the_counts(flameup_server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)
    path = tmp_path / "c.parquet"
    spoiled().to_parquet(path)
    assert main(["upsert", str(path), "--no-progress", "--rate-limit", "60000"]) == 1
    out = capsys.readouterr().out
    counts, _, why = out.partition("why rows need attention:")
    assert "invalid" in counts
    assert f"invalid  4  {PLAUSIBLE} (rows 17, 256, 1024, …)" in why
    assert "invalid  2  no userId or email (one of them is required) (rows 5, 6)" in why


def test_file_summaries_count_reasons_for_failed_rows_too(tmp_path):
    path = tmp_path / "c.parquet"
    customers(300).to_parquet(path)
    with FlameupServer(rate_limit=None) as server:
        server.set_faults(flameup_pandas.testing.Faults(maintenance_rate=1.0))
        summary = flameup_pandas.upsert_file(
            path,
            **target(server),
            retry=flameup_pandas.RetryPolicy(total=1, backoff_factor=0.001),
        )
    [reason] = summary.reasons
    assert reason.status == "failed" and reason.count == 300 and reason.examples == (0, 1, 2)
    assert reason.reason.startswith("an answer that is not Flameup's: HTTP 200 (text/html")
    assert reason.reason.endswith("; gave up after 2 attempts")


def test_airflow_summary_carries_the_reasons_as_plain_data(flameup_server, tmp_path, monkeypatch):
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)
    path = tmp_path / "c.parquet"
    spoiled().to_parquet(path)
    out = upsert_file_task(path, max_failed=6, rate_limit=None, progress=False)
    assert json.loads(json.dumps(out)) == out
    assert out["reasons"][0] == {
        "status": "invalid",
        "reason": PLAUSIBLE,
        "count": 4,
        "examples": [17, 256, 1024],
    }


def test_rows_sharing_an_email_under_different_userids_are_sent_with_a_warning(flameup_server):
    df = pd.DataFrame(
        {
            "userId": [f"u{i}" for i in range(12)],
            "email": [f"p{i}@example.com" for i in range(12)],
        },
        index=[f"r{i}" for i in range(12)],
    )
    df.loc[["r4", "r9"], "email"] = ["x@y.com", "X@Y.com"]  # one email, case aside
    df.loc["r7", "email"] = "p3@example.com"
    df.loc["r11", ["userId", "email"]] = ["u3", "p3@example.com"]  # u3 again: a duplicate
    result = df.flameup.upsert(**target(flameup_server))
    assert (result["flameup_status"] != "failed").all()
    assert (result.loc[["r4", "r9", "r7"], "flameup_status"] == "created").all()  # still sent
    summary = result.flameup.summary()
    assert summary.warnings == (
        Reason("warning", "2 people share the email p3@example.com", 2, ("r7", "r11")),
        Reason("warning", "2 people share the email x@y.com", 2, ("r4", "r9")),
    ) or summary.warnings == (
        Reason("warning", "2 people share the email x@y.com", 2, ("r4", "r9")),
        Reason("warning", "2 people share the email p3@example.com", 2, ("r7", "r11")),
    )
    assert "warning  2  2 people share the email x@y.com (rows r4, r9)" in str(summary)
    assert summary.to_dict()["warnings"][0]["status"] == "warning"
    assert summary.problems == 0
    assert (
        "share the email"
        in pl.from_pandas(df)
        .flameup.upsert(**target(flameup_server))
        .flameup.summary()
        .reason_lines()[0]
    )


def test_a_file_with_rows_sharing_an_email_says_so_too(flameup_server, tmp_path):
    path = tmp_path / "people.parquet"
    people = {"userId": ["u1", "u2", "u3"], "email": ["a@x.io", "b@x.io", "A@x.io"]}
    pd.DataFrame(people).to_parquet(path)
    summary = flameup_pandas.upsert_file(path, **target(flameup_server))
    assert summary.counts["created"] == 3
    assert [w.line() for w in summary.warnings] == [
        "warning  2  2 people share the email a@x.io (rows 0, 2)"
    ]


def test_a_rerun_warns_of_shared_emails_among_the_people_it_sends(flameup_server, tmp_path):
    state = tmp_path / "s.parquet"
    people = {"userId": ["u1", "u2", "u3", "u4"], "email": ["a@x.io", "b@x.io", "A@x.io", "c@x.io"]}
    df = pd.DataFrame(people)
    first = df.flameup.upsert(state=state, **target(flameup_server)).flameup.summary()
    assert [w.reason for w in first.warnings] == ["2 people share the email a@x.io"]
    # unchanged, skipped: warned of once, when they were sent
    again = df.flameup.upsert(state=state, **target(flameup_server)).flameup.summary()
    assert again.counts["skipped"] == 4 and again.warnings == ()
    # a changed person sharing an email with another sent along
    df.loc[3, "email"] = "B@x.io"
    df.loc[1, "email"] = "b@X.io"
    third = df.flameup.upsert(state=state, **target(flameup_server)).flameup.summary()
    assert third.counts["updated"] == 2
    assert [w.reason for w in third.warnings] == ["2 people share the email b@X.io"]
