"""df.flameup.upsert(): every input row ends created, updated, or explained."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import flameup_pandas
from flameup_pandas import AuthenticationError, DuplicateIdentityError, MappingError

from .conftest import both_shapes, target


def customers(n: int, start: int = 0) -> pd.DataFrame:
    ids = np.arange(start, start + n)
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in ids],
            "email": [f"person{i}@example.com" for i in ids],
            "first_name": [f"Name{i}" for i in ids],
            "plan": np.where(ids % 2 == 0, "pro", "free"),
            "score": ids.astype(float) / 10,
        }
    )


@both_shapes
def test_result_keeps_input_shape_and_adds_three_columns(flameup_server, to_server):
    df = customers(250)
    result = df.flameup.upsert(**to_server)
    assert list(result.columns) == [*df.columns, "flameup_id", "flameup_status", "flameup_error"]
    assert result.index.equals(df.index)
    pd.testing.assert_frame_equal(result[df.columns], df)
    assert (result["flameup_status"] == "created").all()
    assert result["flameup_error"].isna().all()
    stored = flameup_server.people().set_index("external_id")
    assert list(result["flameup_id"]) == list(stored.loc[df["user_id"], "id"])


def test_values_arrive_as_sent(flameup_server, to_server):
    df = customers(3)
    df.flameup.upsert(**to_server)
    person = flameup_server.person("u1")
    assert person["email"] == "person1@example.com"
    assert person["first_name"] == "Name1"
    assert person["attributes"] == {"plan": "free", "score": 0.1}


@both_shapes
def test_second_run_reports_updated_with_the_same_ids(to_server):
    df = customers(120)
    first = df.flameup.upsert(**to_server)
    second = df.flameup.upsert(**to_server)
    assert (second["flameup_status"] == "updated").all()
    assert list(second["flameup_id"]) == list(first["flameup_id"])


@both_shapes
def test_people_without_email_are_matched_by_user_id_in_either_answer_shape(
    flameup_server, to_server
):
    """Issue 16: an overview-shaped answer (``userId``) was matched by email only."""
    df = pd.DataFrame({"userId": ["u1", "u2", "u3"], "email": [None, "u2@example.com", None]})
    first = df.flameup.upsert(**to_server)
    assert list(first["flameup_status"]) == ["created"] * 3
    stored = flameup_server.people().set_index("external_id")["id"]
    assert list(first["flameup_id"]) == list(stored.loc[["u1", "u2", "u3"]])
    second = df.flameup.upsert(**to_server)
    assert list(second["flameup_status"]) == ["updated"] * 3
    assert list(second["flameup_id"]) == list(first["flameup_id"])


def test_batches_are_full_except_the_last(flameup_server, to_server):
    customers(250).flameup.upsert(**to_server)
    sizes = [r.people_count for r in flameup_server.requests if r.path.endswith("/people/batch")]
    # concurrent requests may arrive in any order; only the run's last batch is short
    assert sorted(sizes, reverse=True) == [100, 100, 50]


def test_invalid_rows_are_reported_and_never_sent(flameup_server, to_server):
    df = customers(5)
    df.loc[1, "email"] = "not-an-email"
    df.loc[3, ["user_id", "email"]] = [None, None]
    result = df.flameup.upsert(**to_server)
    assert list(result["flameup_status"]) == ["created", "invalid", "created", "invalid", "created"]
    assert "email" in result.loc[1, "flameup_error"]
    assert result.loc[3, "flameup_error"]
    assert sorted(flameup_server.people()["external_id"]) == ["u0", "u2", "u4"]


def test_duplicate_identity_last_row_wins_and_others_name_it(flameup_server, to_server):
    df = pd.DataFrame(
        {"userId": ["a", "b", "a"], "plan": ["old", "x", "new"]}, index=["r1", "r2", "r3"]
    )
    result = df.flameup.upsert(**to_server)
    assert list(result["flameup_status"]) == ["skipped", "created", "created"]
    assert "'r3'" in result.loc["r1", "flameup_error"]
    assert flameup_server.person("a")["attributes"] == {"plan": "new"}


def test_duplicates_can_be_an_error_before_anything_is_sent(flameup_server, to_server):
    df = pd.DataFrame({"userId": ["a", "a"]})
    with pytest.raises(DuplicateIdentityError, match="on_duplicate='last'"):
        df.flameup.upsert(on_duplicate="error", **to_server)
    assert flameup_server.requests == []


def test_mapping_renames_and_selects_columns(flameup_server, to_server):
    df = pd.DataFrame(
        {
            "customer_no": ["c1"],
            "Email": ["c1@example.com"],
            "tier": ["gold"],
            "internal": ["secret"],
        }
    )
    df.flameup.upsert(
        mapping={"userId": "customer_no", "email": "Email", "traits.plan": "tier"},
        exclude=["internal"],
        **to_server,
    )
    person = flameup_server.person("c1")
    assert person["email"] == "c1@example.com"
    assert person["attributes"] == {"plan": "gold"}


def test_mapping_to_a_missing_column_fails_before_sending(flameup_server, to_server):
    with pytest.raises(MappingError, match="nope"):
        customers(2).flameup.upsert(mapping={"userId": "nope"}, **to_server)
    assert flameup_server.requests == []


def test_frame_without_identity_column_is_a_clear_error(to_server):
    with pytest.raises(MappingError, match="userId"):
        pd.DataFrame({"plan": ["a"]}).flameup.upsert(**to_server)


def test_empty_frame_sends_nothing(flameup_server, to_server):
    result = customers(0).flameup.upsert(**to_server)
    assert len(result) == 0
    assert "flameup_status" in result.columns
    assert flameup_server.requests == []


def test_duplicate_index_and_multiindex_keep_their_labels(to_server):
    df = customers(4)
    df.index = [7, 7, 8, 8]
    result = df.flameup.upsert(**to_server)
    assert list(result.index) == [7, 7, 8, 8]
    assert (result["flameup_status"] == "created").all()
    df.index = pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1), ("b", 2)])
    result = df.flameup.upsert(**to_server)
    assert result.index.equals(df.index)
    assert (result["flameup_status"] == "updated").all()


def test_bad_key_stops_the_run_after_the_first_request(flameup_server):
    with pytest.raises(AuthenticationError, match="FLAMEUP_API_KEY") as info:
        customers(500).flameup.upsert(
            **target(flameup_server, api_key="ws_test_x_y." + "0" * 64, concurrency=8)
        )
    assert flameup_server.request_count() == 1
    assert "0" * 64 not in str(info.value)


def test_key_never_appears_in_results_logs_or_errors(flameup_server, caplog):
    caplog.set_level(logging.DEBUG)
    df = customers(150)
    df.loc[0, "email"] = "broken"
    result = df.flameup.upsert(**target(flameup_server))
    key = flameup_server.api_key
    secret = key.split(".")[-1]
    assert secret not in result.to_string()
    assert secret not in caplog.text
    assert secret not in repr(
        flameup_pandas.FlameupClient(api_key=key, base_url=flameup_server.base_url)
    )


def test_summary_counts_statuses_and_requests(to_server):
    df = customers(210)
    df.loc[5, "email"] = "broken"
    summary = df.flameup.upsert(**to_server).flameup.summary()
    data = summary.to_dict()
    assert data["created"] == 209 and data["invalid"] == 1 and data["rows"] == 210
    assert data["requests"] == 3
    assert "<table>" in summary._repr_html_()
    assert "created" in str(summary)


def test_dry_run_sends_nothing(flameup_server, to_server):
    result = customers(3).flameup.upsert(dry_run=True, **to_server)
    assert set(result["flameup_status"]) == {"skipped"}
    assert flameup_server.requests == []


def test_to_people_matches_what_is_sent(flameup_server, to_server):
    df = customers(3)
    people = df.flameup.to_people()
    assert people[0] == {
        "userId": "u0",
        "email": "person0@example.com",
        "traits": {"first_name": "Name0", "plan": "pro", "score": 0.0},
    }
    df.flameup.upsert(**to_server)
    assert flameup_server.person("u0")["attributes"] == {"plan": "pro", "score": 0.0}


def test_result_frame_can_be_upserted_again(to_server):
    result = customers(3).flameup.upsert(**to_server)
    again = result.flameup.upsert(**to_server)
    assert list(again.columns) == list(result.columns)
    assert (again["flameup_status"] == "updated").all()


def test_plain_http_to_a_remote_host_is_refused():
    with pytest.raises(flameup_pandas.ConfigurationError, match="https"):
        customers(1).flameup.upsert(api_key="k", base_url="http://example.com/api/v1")


def test_missing_key_is_a_configuration_error(monkeypatch, flameup_server):
    monkeypatch.delenv("FLAMEUP_API_KEY", raising=False)
    with pytest.raises(flameup_pandas.ConfigurationError, match="FLAMEUP_API_KEY"):
        customers(1).flameup.upsert(base_url=flameup_server.base_url)


def test_key_and_url_come_from_the_environment(monkeypatch, flameup_server):
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)
    result = customers(2).flameup.upsert(rate_limit=None, progress=False)
    assert (result["flameup_status"] == "created").all()
