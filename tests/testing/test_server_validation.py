"""Every input rule of POST /people/batch, its error body, and all-or-nothing batches."""

from __future__ import annotations

from typing import Any

import pytest

from flameup_pandas.testing import FlameupServer

from .conftest import Api, assert_validation_error

OK = {"userId": "ok", "email": "ok@example.com"}


@pytest.mark.parametrize(
    ("person", "field", "message"),
    [
        ({"userId": "u" * 256}, "userId", "Must be at most 255 characters"),
        ({"userId": 42}, "userId", "Must be a string"),
        ({"userId": "  "}, "userId", "Must not be empty"),
        ({"email": "x@" + "a" * 250 + ".com"}, "email", "Must be at most 254 characters"),
        ({"email": "not-an-email"}, "email", "Invalid email format"),
        ({"email": "a b@example.com"}, "email", "Invalid email format"),
        ({"email": "a@example"}, "email", "Invalid email format"),
        ({"email": "a@@example.com"}, "email", "Invalid email format"),
        ({"email": "a" * 65 + "@example.com"}, "email", "Invalid email format"),
        ({"email": ""}, "email", "Invalid email format"),
        ({"email": 7}, "email", "Must be a string"),
        ({"userId": "u", "phone": "1" * 51}, "phone", "Must be at most 50 characters"),
        (
            {"userId": "u", "traits": {"phone": "1" * 51}},
            "traits.phone",
            "Must be at most 50 characters",
        ),
        ({"userId": "u", "traits": {"first_name": 3}}, "traits.first_name", "Must be a string"),
        ({"userId": "u", "traits": []}, "traits", "Must be an object"),
        ({"userId": "u", "traits": None}, "traits", "Must be an object"),
        ({"userId": "u", "name": "x"}, "name", "Unknown field"),
        ({"phone": "123"}, "userId", "Either userId or email is required"),
        ({}, "userId", "Either userId or email is required"),
        ({"userId": None, "email": None}, "userId", "Either userId or email is required"),
    ],
)
def test_a_bad_person_fails_the_batch_with_its_field(
    api: Api, flameup_server: FlameupServer, person: dict[str, Any], field: str, message: str
) -> None:
    answer = api.batch(OK, person)
    assert_validation_error(answer, {f"people[1].{field}": message})
    assert flameup_server.people().empty


@pytest.mark.parametrize("person", ["u1", 3, None, ["u1"]])
def test_a_person_that_is_not_an_object_is_refused(api: Api, person: Any) -> None:
    assert_validation_error(api.batch(OK, person), {"people[1]": "Must be a JSON object"})


def test_limits_at_the_edges_are_accepted(api: Api, flameup_server: FlameupServer) -> None:
    email = "x@" + "a" * 248 + ".com"
    assert len(email) == 254
    person = {"userId": "u" * 255, "email": email, "phone": "1" * 50}
    answer = api.batch(person)
    assert answer.status_code == 200, answer.text
    assert flameup_server.person("u" * 255) is not None


def test_a_batch_of_100_is_accepted_and_101_refused(
    api: Api, flameup_server: FlameupServer
) -> None:
    people = [{"userId": f"u{i}"} for i in range(101)]
    assert api.batch(*people[:100]).json()["created_count"] == 100
    assert_validation_error(
        api.batch(*people), {"people": "Must contain between 1 and 100 people, got 101"}
    )
    assert len(flameup_server.people()) == 100


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"people": []}, "people", "Must contain between 1 and 100 people, got 0"),
        ({}, "people", "Required"),
        ({"people": None}, "people", "Required"),
        ({"people": {"userId": "u"}}, "people", "Must be a list"),
        ({"people": [OK], "extra": 1}, "extra", "Unknown field"),
    ],
)
def test_the_body_must_hold_a_people_list(
    api: Api, body: dict[str, Any], field: str, message: str
) -> None:
    answer = api.call("POST", "/people/batch", json=body)
    assert_validation_error(answer, {field: message})


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"people"', b"null", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_gets_400(api: Api, raw: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    answer = api.call("POST", "/people/batch", data=raw, headers=headers)
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "Bad Request"
    assert isinstance(body["message"], str)
    assert body["message"]


def test_every_bad_person_is_listed_and_nothing_is_stored(
    api: Api, flameup_server: FlameupServer
) -> None:
    api.batch({"userId": "kept", "traits": {"first_name": "Old"}})
    answer = api.batch(
        {"userId": "kept", "traits": {"first_name": "New"}},
        {"userId": "b", "email": "bad"},
        {"userId": "new"},
        {"email": "also bad"},
    )
    fields = answer.json()["error"]["details"]["fields"]
    assert fields == {
        "people[1].email": "Invalid email format",
        "people[3].email": "Invalid email format",
    }
    assert answer.json()["error"]["message"] == "2 of 4 people failed validation"
    assert flameup_server.person("kept")["first_name"] == "Old"  # type: ignore[index]
    assert flameup_server.person("new") is None


def test_per_person_errors_store_the_valid_people(flameup_server: FlameupServer) -> None:
    flameup_server.per_person_errors = True
    api = Api(flameup_server)
    answer = api.batch(
        {"userId": "a"},
        {"userId": "b", "email": "bad"},
        "junk",
        {"email": "c@example.com"},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert [p["external_id"] for p in body["people"]] == ["a", None]
    assert (body["created_count"], body["updated_count"]) == (2, 0)
    assert body["errors"] == [
        {
            "index": 1,
            "userId": "b",
            "email": "bad",
            "message": "email: Invalid email format",
            "fields": {"email": "Invalid email format"},
        },
        {
            "index": 2,
            "userId": None,
            "email": None,
            "message": "person: Must be a JSON object",
            "fields": {"person": "Must be a JSON object"},
        },
    ]
    assert len(flameup_server.people()) == 2


def test_per_person_errors_when_everyone_is_refused(flameup_server: FlameupServer) -> None:
    flameup_server.per_person_errors = True
    answer = Api(flameup_server).batch({"email": "x"}, {})
    assert answer.status_code == 200
    body = answer.json()
    assert body["people"] == []
    assert (body["created_count"], body["updated_count"]) == (0, 0)
    assert [e["index"] for e in body["errors"]] == [0, 1]


def test_per_person_errors_still_refuse_a_bad_body(flameup_server: FlameupServer) -> None:
    flameup_server.per_person_errors = True
    answer = Api(flameup_server).batch(*[{"userId": f"u{i}"} for i in range(101)])
    assert answer.status_code == 422


def test_a_clean_batch_in_per_person_mode_has_empty_errors(
    flameup_server_factory: Any,
) -> None:
    server = flameup_server_factory(rate_limit=None, per_person_errors=True)
    body = Api(server).batch({"userId": "a"}).json()
    assert body["errors"] == []
