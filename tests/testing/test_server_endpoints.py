"""POST /people, GET /people/{id}, PUT /people/{id}, GET /people, and unknown routes."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flameup_pandas._send.client import path_segment
from flameup_pandas.testing import FlameupServer

from .conftest import Api, assert_validation_error


def test_post_person_creates_then_updates(api: Api) -> None:
    created = api.call("POST", "/people", json={"userId": "u", "traits": {"plan": "a"}})
    assert created.status_code == 201
    updated = api.call("POST", "/people", json={"userId": "u", "traits": {"seats": 3}})
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert updated.json()["attributes"] == {"plan": "a", "seats": 3}


def test_post_person_requires_a_user_id(api: Api) -> None:
    answer = api.call("POST", "/people", json={"email": "a@example.com"})
    assert_validation_error(answer, {"userId": "Required"})


def test_get_person_by_external_id_or_email(api: Api) -> None:
    api.batch({"userId": "u/1", "email": "Mixed@Example.com"})
    by_id = api.call("GET", "/people/u%2F1")
    assert by_id.status_code == 200
    by_email = api.call("GET", "/people/mixed@example.com")
    assert by_email.json()["id"] == by_id.json()["id"]


def test_get_unknown_person_is_404(api: Api) -> None:
    answer = api.call("GET", "/people/nobody")
    assert answer.status_code == 404
    body = answer.json()
    assert body["success"] is False
    assert body["error"]["type"] == "NOT_FOUND"
    assert body["request_id"].startswith("req_")
    assert answer.headers["X-Request-Id"] == body["request_id"]


def test_put_merges_traits(api: Api) -> None:
    api.batch({"userId": "u", "traits": {"first_name": "A", "plan": "x"}})
    answer = api.call("PUT", "/people/u", json={"traits": {"last_name": "B", "plan": None}})
    assert answer.status_code == 200
    person = answer.json()
    assert (person["first_name"], person["last_name"], person["attributes"]) == ("A", "B", {})
    assert person["updated_at"] > person["created_at"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "traits", "Required"),
        ({"traits": "x"}, "traits", "Must be an object"),
        ({"traits": {}, "email": "a@b.co"}, "email", "Unknown field"),
    ],
)
def test_put_validates_its_body(
    api: Api, body: dict[str, object], field: str, message: str
) -> None:
    api.batch({"userId": "u"})
    assert_validation_error(api.call("PUT", "/people/u", json=body), {field: message})


def test_put_unknown_person_is_404(api: Api) -> None:
    assert api.call("PUT", "/people/nobody", json={"traits": {}}).status_code == 404


def test_list_pages_with_total(api: Api) -> None:
    api.batch(
        *[{"userId": f"u{i}", "traits": {"first_name": "Zed" if i == 3 else "A"}} for i in range(5)]
    )
    page = api.call("GET", "/people", params={"limit": 2, "offset": 1}).json()
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    assert [p["external_id"] for p in page["people"]] == ["u1", "u2"]
    found = api.call("GET", "/people", params={"search": "zed"}).json()
    assert [p["external_id"] for p in found["people"]] == ["u3"]
    assert api.call("GET", "/people", params={"status": "bounced"}).json()["total"] == 0


@pytest.mark.parametrize(("limit", "status"), [(0, 422), (101, 422), (-1, 422), ("x", 400)])
def test_list_limit_must_be_1_to_100(api: Api, limit: object, status: int) -> None:
    assert api.call("GET", "/people", params={"limit": limit}).status_code == status


def test_list_limit_100_is_fine(api: Api) -> None:
    assert api.call("GET", "/people", params={"limit": 100}).status_code == 200


def test_unknown_routes_and_methods(api: Api, flameup_server: FlameupServer) -> None:
    assert api.call("GET", "/nothing").status_code == 404
    assert api.call("DELETE", "/people/u").status_code == 405
    assert api.call("PATCH", "/people").status_code == 405
    other_api = api.session.get(flameup_server.base_url.replace("/v1", "/v2/people"), timeout=5)
    assert other_api.status_code == 404
    assert other_api.json()["message"] == "No route for /api/v2/people"


@pytest.fixture(scope="module")
def shared_server() -> object:
    with FlameupServer(rate_limit=None) as server:
        yield server


@settings(max_examples=40)
@given(user_id=st.text(min_size=1, max_size=255).filter(lambda s: s.strip()))
@example(user_id=".")  # found by hypothesis (issue 33): GET /people/. reached the listing
@example(user_id="..")
@example(user_id="a/b")
def test_any_user_id_round_trips(shared_server: FlameupServer, user_id: str) -> None:
    api = Api(shared_server)
    stored = api.batch({"userId": user_id, "traits": {"tag": user_id}}).json()["people"][0]
    fetched = api.call("GET", "/people/" + path_segment(user_id))
    assert fetched.status_code == 200
    assert fetched.json()["id"] == stored["id"]
    assert fetched.json()["attributes"] == {"tag": user_id}
    api.close()


def test_list_offset_limit_and_total_walk_every_person_once(api: Api) -> None:
    for start in (0, 100, 200):
        api.batch(*[{"userId": f"u{i:03d}"} for i in range(start, min(start + 100, 250))])
    seen, offset = [], 0
    while True:
        page = api.call("GET", "/people", params={"limit": 100, "offset": offset}).json()
        assert page["total"] == 250 and page["offset"] == offset and page["limit"] == 100
        if not page["people"]:
            break
        seen += [p["external_id"] for p in page["people"]]
        offset += len(page["people"])
    assert seen == [f"u{i:03d}" for i in range(250)]  # oldest first, nobody twice
    beyond = api.call("GET", "/people", params={"offset": 1000}).json()
    assert (beyond["people"], beyond["total"]) == ([], 250)
    default = api.call("GET", "/people").json()
    assert (len(default["people"]), default["limit"], default["offset"]) == (50, 50, 0)


def test_list_offset_must_not_be_negative(api: Api) -> None:
    assert_validation_error(
        api.call("GET", "/people", params={"offset": -1}), {"offset": "Must not be negative"}
    )


def test_list_search_matches_text_fields_case_insensitively_and_literally(api: Api) -> None:
    api.batch(
        {"userId": "ada", "email": "Ada.Lovelace@Example.com"},
        {"userId": "x_1", "traits": {"last_name": "Hopper"}},
        {"userId": "x21"},
        {"userId": "100%"},
    )

    def found(term: str) -> list[str]:
        page = api.call("GET", "/people", params={"search": term, "limit": 100}).json()
        assert page["total"] == len(page["people"])
        return [p["external_id"] for p in page["people"]]

    assert found("LOVELACE@") == ["ada"]
    assert found("hopp") == ["x_1"]
    assert found("x_") == ["x_1"]  # _ is not a wildcard
    assert found("%") == ["100%"]  # nor is %
    assert found("nobody") == []


def test_list_status_filters_and_unknown_status_is_refused(
    api: Api, flameup_server: FlameupServer
) -> None:
    api.batch(*[{"userId": f"u{i}"} for i in range(5)])
    flameup_server.set_status("u1", "bounced")
    flameup_server.set_status("u3", "unsubscribed")
    by_status = {
        status: [
            p["external_id"]
            for p in api.call("GET", "/people", params={"status": status}).json()["people"]
        ]
        for status in ("active", "bounced", "unsubscribed")
    }
    assert by_status == {"active": ["u0", "u2", "u4"], "bounced": ["u1"], "unsubscribed": ["u3"]}
    both = api.call("GET", "/people", params={"status": "active", "search": "u4"}).json()
    assert [p["external_id"] for p in both["people"]] == ["u4"] and both["total"] == 1
    assert_validation_error(
        api.call("GET", "/people", params={"status": "gone"}),
        {"status": "Must be one of active, unsubscribed, bounced"},
    )


def test_removed_people_leave_the_listing(api: Api, flameup_server: FlameupServer) -> None:
    api.batch(*[{"userId": f"u{i}"} for i in range(3)])
    flameup_server.remove("u1")
    page = api.call("GET", "/people").json()
    assert [p["external_id"] for p in page["people"]] == ["u0", "u2"] and page["total"] == 2
    with pytest.raises(KeyError):
        flameup_server.remove("u1")
