"""read_people: GET /people paged into a DataFrame, against the local server over HTTP."""

from __future__ import annotations

import pandas as pd
import pytest

from flameup_pandas import APIError, AuthenticationError, RetryPolicy, read_people, upsert
from flameup_pandas._run.options import Delivery
from flameup_pandas._send.reader import PeopleReader
from flameup_pandas.testing import Faults

from .conftest import both_shapes, target

FAST_RETRY = RetryPolicy(backoff_factor=0.01, backoff_max=0.05)


def reading(server, **extra):
    """Keywords pointing read_people at ``server``, pacing off, no progress bar."""
    keywords = target(server, **extra)
    return {k: v for k, v in keywords.items() if k != "concurrency"}


def seed(server, n, start=0):
    people = pd.DataFrame({"user_id": [f"u{i:04d}" for i in range(start, start + n)]})
    upsert(people, **target(server, concurrency=1))  # one batch at a time: stored in order


@both_shapes
def test_one_row_per_person_with_typed_columns_and_missing_traits(
    flameup_server, flameup_person_shape
):
    sent = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3"],
            "email": ["ada@example.com", None, "grace@example.com"],
            "first_name": ["Ada", "Alan", None],
            "timezone": ["Europe/London", None, "America/New_York"],
            "plan": ["pro", None, "free"],
            "seats": pd.array([3, 5, None], dtype="Int64"),
            "ltv": [1.5, None, 2.0],
            "vip": [True, False, None],
            "status": ["gold", None, None],  # a trait named like a person field
        }
    )
    upsert(sent, **target(flameup_server))
    people = read_people(**reading(flameup_server))
    assert list(people.columns) == [
        "id",
        "external_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "avatar_url",
        "timezone",
        "locale",
        "status",
        "created_at",
        "updated_at",
        "first_seen_at",
        "last_seen_at",
        "plan",
        "seats",
        "ltv",
        "vip",
        "attributes.status",
    ]
    people = people.set_index("external_id")
    assert people.loc["u1", "first_name"] == "Ada" and people.loc["u2", "email"] is pd.NA
    assert people.loc["u1", "attributes.status"] == "gold"
    # the overview shape carries no status: missing, not made up
    status = people.loc["u3", "status"]
    assert (status == "active") if flameup_person_shape == "seed" else (status is pd.NA)
    assert people["seats"].dtype == "Int64" and people.loc["u3", "seats"] is pd.NA
    assert people["vip"].dtype == "boolean" and people.loc["u3", "vip"] is pd.NA
    assert people.loc["u2", "plan"] is pd.NA and people.loc["u1", "ltv"] == 1.5
    assert str(people["created_at"].dtype) == "datetime64[us, UTC]"
    stored = flameup_server.person("u1")
    assert people.loc["u1", "id"] == stored["id"]
    assert people.loc["u1", "updated_at"] == pd.Timestamp(stored["updated_at"])


def test_traits_of_mixed_kinds_are_kept_as_json_text(flameup_server):
    upsert(
        pd.DataFrame({"user_id": ["a", "b", "c"], "code": [7, "x7", None]}).astype(object),
        **target(flameup_server),
    )
    upsert(pd.DataFrame({"user_id": ["c"], "tags": [["a", "b"]]}), **target(flameup_server))
    people = read_people(**reading(flameup_server)).set_index("external_id")
    assert people.loc["a", "code"] == "7" and people.loc["b", "code"] == "x7"
    assert people.loc["c", "tags"] == '["a","b"]' and people.loc["a", "tags"] is pd.NA


@both_shapes
def test_every_page_once_in_as_few_requests_as_pages(flameup_server):
    seed(flameup_server, 250)
    flameup_server.reset_requests()
    people = read_people(**reading(flameup_server))
    assert list(people["external_id"]) == [f"u{i:04d}" for i in range(250)]
    assert [r.path for r in flameup_server.requests] == ["/api/v1/people"] * 3


def test_an_empty_workspace_is_an_empty_frame_with_the_person_columns(flameup_server):
    people = read_people(**reading(flameup_server))
    assert len(people) == 0 and list(people.columns)[:2] == ["id", "external_id"]
    assert str(people["updated_at"].dtype) == "datetime64[us, UTC]"


def test_search_and_status_are_passed_to_the_listing(flameup_server):
    seed(flameup_server, 30)
    flameup_server.set_status("u0012", "bounced")
    flameup_server.set_status("u0021", "bounced")
    bounced = read_people(status="bounced", **reading(flameup_server))
    assert list(bounced["external_id"]) == ["u0012", "u0021"]
    assert (bounced["status"] == "bounced").all()
    found = read_people(search="u002", status="active", **reading(flameup_server))
    assert list(found["external_id"]) == [f"u002{i}" for i in range(10) if i != 1]


def read_all_while(server, change_after_first_page):
    """Page through ``server`` with a reader, calling ``change_after_first_page`` after page 1."""
    sender = Delivery(api_key=server.api_key, base_url=server.base_url, rate_limit=None).open()
    ids = []
    try:
        for number, page in enumerate(PeopleReader(sender.deliverer).pages()):
            ids += [p["external_id"] for p in page.people]
            if number == 0:
                change_after_first_page()
    finally:
        sender.close()
    return ids


def test_people_removed_while_paging_shift_nobody_past_the_reader(flameup_server):
    seed(flameup_server, 250)
    removed = [f"u{i:04d}" for i in range(30)]  # all on the page already read

    def remove():
        for user_id in removed:
            flameup_server.remove(user_id)

    ids = read_all_while(flameup_server, remove)
    assert sorted(ids) == sorted(set(ids))  # nobody twice
    assert set(ids) >= {f"u{i:04d}" for i in range(30, 250)}  # nobody present throughout missed


def test_people_added_while_paging_are_read_too(flameup_server):
    seed(flameup_server, 150)
    ids = read_all_while(flameup_server, lambda: seed(flameup_server, 120, start=150))
    assert ids == [f"u{i:04d}" for i in range(270)]


def test_server_errors_are_retried_like_batches(flameup_server):
    seed(flameup_server, 500)
    flameup_server.reset_requests()
    flameup_server.set_faults(Faults(error_rate=0.4, drop_rate=0.2, seed=3))
    people = read_people(retry=FAST_RETRY, **reading(flameup_server))
    assert list(people["external_id"]) == [f"u{i:04d}" for i in range(500)]
    faults = [r.fault for r in flameup_server.requests if r.fault]
    assert "error" in faults and len(flameup_server.requests) == 5 + len(faults)


def test_pages_that_are_not_flameups_are_retried_like_a_503(flameup_server):
    """The batch POST's rule, on every GET: a 2xx HTML maintenance page is nothing read."""
    seed(flameup_server, 500)
    flameup_server.reset_requests()
    flameup_server.set_faults(Faults(maintenance_rate=0.4, seed=4))
    people = read_people(retry=FAST_RETRY, **reading(flameup_server))
    assert list(people["external_id"]) == [f"u{i:04d}" for i in range(500)]
    pages = sum(r.fault == "maintenance" for r in flameup_server.requests)
    assert pages > 0 and len(flameup_server.requests) == 5 + pages


def test_only_maintenance_pages_end_in_an_error_saying_what_came_back(flameup_server):
    seed(flameup_server, 5)
    flameup_server.set_faults(Faults(maintenance_rate=1.0))
    retry = RetryPolicy(total=2, backoff_factor=0.001)
    with pytest.raises(APIError) as caught:
        read_people(retry=retry, **reading(flameup_server))
    message = str(caught.value)
    assert "GET /people at offset 0: an answer that is not Flameup's: HTTP 200 (text/" in message
    assert "gave up after 3 attempts" in message


def test_a_key_that_may_not_list_people_is_told_so(flameup_server):
    key = flameup_server.add_key(["people:read", "people:write"])
    with pytest.raises(AuthenticationError, match="people:list") as caught:
        read_people(**{**reading(flameup_server), "api_key": key})
    assert key not in str(caught.value)
