"""Identity, trait merging, created vs updated, timestamps and ids of POST /people/batch."""

from __future__ import annotations

import uuid
from datetime import datetime

from flameup_pandas.testing import PEOPLE_COLUMNS, FlameupServer

from .conftest import Api

PERSON_KEYS = {"workspace_id", *PEOPLE_COLUMNS}


def _ts(text: str) -> datetime:
    assert text.endswith("Z"), text
    assert "." in text, text
    return datetime.fromisoformat(text[:-1])


def test_the_answer_has_the_documented_shape(api: Api, flameup_server: FlameupServer) -> None:
    answer = api.batch(
        {
            "userId": "u1",
            "email": "user@example.com",
            "phone": "+1-555-0123",
            "traits": {
                "first_name": "John",
                "last_name": "Doe",
                "avatar_url": "a",
                "timezone": "UTC",
                "locale": "en",
                "plan": "pro",
            },
        }
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert set(body) == {"people", "created_count", "updated_count"}
    person = body["people"][0]
    assert set(person) == PERSON_KEYS
    uuid.UUID(person["id"], version=4)
    assert person["workspace_id"] == flameup_server.workspace_id
    assert person["external_id"] == "u1"
    assert (person["first_name"], person["last_name"], person["phone"]) == (
        "John",
        "Doe",
        "+1-555-0123",
    )
    assert person["attributes"] == {"plan": "pro"}
    assert person["status"] == "active"
    assert (
        len({person[k] for k in ("created_at", "updated_at", "first_seen_at", "last_seen_at")}) == 1
    )
    _ts(person["created_at"])


def test_created_then_updated_with_a_stable_id(api: Api) -> None:
    first = api.batch({"userId": "u1"}, {"userId": "u2"}).json()
    assert (first["created_count"], first["updated_count"]) == (2, 0)
    second = api.batch({"userId": "u1", "traits": {"x": 1}}, {"userId": "u3"}).json()
    assert (second["created_count"], second["updated_count"]) == (1, 1)
    before, after = first["people"][0], second["people"][0]
    assert after["id"] == before["id"]
    assert after["created_at"] == before["created_at"] == after["first_seen_at"]
    assert _ts(after["updated_at"]) > _ts(before["updated_at"])
    assert after["last_seen_at"] == after["updated_at"]
    new = second["people"][1]
    assert new["created_at"] == new["updated_at"]


def test_answers_come_in_request_order(api: Api) -> None:
    api.batch({"userId": "b"})
    people = api.batch({"userId": "c"}, {"userId": "b"}, {"userId": "a"}).json()["people"]
    assert [p["external_id"] for p in people] == ["c", "b", "a"]


def test_traits_merge_and_null_clears(api: Api, flameup_server: FlameupServer) -> None:
    api.batch(
        {
            "userId": "u",
            "email": "u@example.com",
            "phone": "1",
            "traits": {"first_name": "Ada", "last_name": "L", "plan": "pro", "n": 1},
        }
    )
    api.batch({"userId": "u", "traits": {"last_name": None, "plan": None, "tier": 2}})
    person = flameup_server.person("u")
    assert person is not None
    assert (person["first_name"], person["last_name"]) == ("Ada", None)
    assert (person["email"], person["phone"]) == ("u@example.com", "1")
    assert person["attributes"] == {"n": 1, "tier": 2}


def test_top_level_phone_wins_over_the_phone_trait(api: Api) -> None:
    person = api.batch({"userId": "u", "phone": "top", "traits": {"phone": "trait"}}).json()
    assert person["people"][0]["phone"] == "top"


def test_a_person_without_user_id_is_found_by_email_ignoring_case(
    api: Api, flameup_server: FlameupServer
) -> None:
    created = api.batch({"email": "Ann@Example.com", "traits": {"first_name": "Ann"}}).json()
    updated = api.batch({"email": "ann@example.COM", "traits": {"last_name": "Lee"}}).json()
    assert (updated["created_count"], updated["updated_count"]) == (0, 1)
    assert updated["people"][0]["id"] == created["people"][0]["id"]
    assert updated["people"][0]["email"] == "ann@example.COM"
    assert len(flameup_server.people()) == 1


def test_a_user_id_is_its_own_identity_whatever_the_email(
    api: Api, flameup_server: FlameupServer
) -> None:
    api.batch({"email": "shared@example.com"})
    body = api.batch({"userId": "u1", "email": "shared@example.com"}).json()
    assert body["created_count"] == 1
    assert len(flameup_server.people()) == 2
    oldest = api.batch({"email": "SHARED@example.com", "traits": {"x": 1}}).json()["people"][0]
    assert oldest["external_id"] is None


def test_the_same_person_twice_in_a_batch_is_created_then_updated(api: Api) -> None:
    body = api.batch(
        {"userId": "u", "traits": {"first_name": "A"}},
        {"userId": "u", "traits": {"last_name": "B"}},
        {"email": "e@example.com"},
        {"email": "E@example.com", "traits": {"k": "v"}},
    ).json()
    assert (body["created_count"], body["updated_count"]) == (2, 2)
    first, second = body["people"][0], body["people"][1]
    assert first["id"] == second["id"]
    assert first["created_at"] == first["updated_at"]
    assert second["updated_at"] > first["updated_at"]
    assert (second["first_name"], second["last_name"]) == ("A", "B")
    assert body["people"][3]["attributes"] == {"k": "v"}


def test_people_frame_has_one_row_per_person(api: Api, flameup_server: FlameupServer) -> None:
    assert list(flameup_server.people().columns) == list(PEOPLE_COLUMNS)
    api.batch({"userId": "a", "traits": {"plan": "pro"}}, {"email": "b@example.com"})
    frame = flameup_server.people()
    assert frame.loc[0, "external_id"] == "a"
    assert frame["external_id"].isna().tolist() == [False, True]
    assert frame.loc[0, "attributes"] == {"plan": "pro"}
    assert flameup_server.person("B@EXAMPLE.com")["email"] == "b@example.com"  # type: ignore[index]
    assert flameup_server.person("nobody") is None
