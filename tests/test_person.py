"""read_person: either documented shape of a person becomes the one canonical form."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flameup_pandas._people.person import (
    KNOWN_TRAITS,
    PERSON_FIELDS,
    identity_of,
    is_new,
    read_person,
)
from flameup_pandas.testing._shapes import shaped

SEED = {
    "id": "p1",
    "workspace_id": "w1",
    "external_id": "u1",
    "email": "ada@example.com",
    "phone": "+1-555-0100",
    "first_name": "Ada",
    "last_name": None,
    "avatar_url": None,
    "timezone": "UTC",
    "locale": None,
    "status": "active",
    "attributes": {"plan": "pro"},
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
    "first_seen_at": "2026-01-01T00:00:00Z",
    "last_seen_at": "2026-01-01T00:00:00Z",
}
OVERVIEW = {
    "id": "p1",
    "workspace_id": "w1",
    "userId": "u1",
    "email": "ada@example.com",
    "traits": {"phone": "+1-555-0100", "first_name": "Ada", "timezone": "UTC", "plan": "pro"},
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}
OVERVIEW_ONLY_MISSING = ("status", "first_seen_at", "last_seen_at")


def test_the_seed_shape_reads_as_it_is():
    assert read_person(SEED) == SEED
    assert list(read_person(SEED)) == list(PERSON_FIELDS)


def test_the_overview_shape_reads_like_the_seed_shape():
    person = read_person(OVERVIEW)
    assert list(person) == list(PERSON_FIELDS)
    for name in OVERVIEW_ONLY_MISSING:
        assert person[name] is None
    assert {k: v for k, v in person.items() if k not in OVERVIEW_ONLY_MISSING} == {
        k: v for k, v in SEED.items() if k not in OVERVIEW_ONLY_MISSING
    }


def test_a_trait_at_the_top_and_nested_is_read_once_the_top_winning():
    raw = {
        "userId": "u1",
        "first_name": "Top",
        "phone": None,
        "traits": {"first_name": "Nested", "phone": "+1", "email": "n@example.com", "x": 1},
        "attributes": {"x": 2, "y": 3},
    }
    person = read_person(raw)
    assert person["first_name"] == "Top"
    assert person["phone"] == "+1"  # a null at the top level does not hide the nested value
    assert person["email"] == "n@example.com"
    assert person["attributes"] == {"x": 2, "y": 3}


def test_external_id_wins_over_user_id_and_either_identifies():
    assert identity_of({"external_id": "a", "userId": "b"}) == ("a", None)
    assert identity_of({"userId": 7, "email": "A@Example.com"}) == ("7", "a@example.com")
    assert identity_of({"traits": {"email": "B@example.com"}}) == (None, "b@example.com")
    assert identity_of({"uid": "u1"}) == (None, None)


def test_a_person_is_new_when_both_timestamps_agree():
    assert is_new(SEED)
    assert not is_new({**SEED, "updated_at": "2026-01-02T00:00:00Z"})
    assert not is_new({"created_at": None, "updated_at": None})


text = st.text(max_size=8)
values = st.none() | st.booleans() | st.integers() | text
stored_people = st.fixed_dictionaries(
    {
        "id": text,
        "workspace_id": text,
        "external_id": st.none() | text,
        "email": st.none() | text,
        "status": st.sampled_from(["active", "bounced"]),
        "attributes": st.dictionaries(
            text.filter(lambda k: k not in KNOWN_TRAITS and k != "email"),
            values.filter(lambda v: v is not None),
        ),
        "created_at": text,
        "updated_at": text,
        "first_seen_at": text,
        "last_seen_at": text,
        **{name: st.none() | text for name in KNOWN_TRAITS},
    }
)


@given(stored_people)
def test_both_shapes_of_any_person_read_the_same(person):
    seed, overview = read_person(shaped(person, "seed")), read_person(shaped(person, "overview"))
    assert seed == person
    assert {k: v for k, v in overview.items() if k not in OVERVIEW_ONLY_MISSING} == {
        k: v for k, v in seed.items() if k not in OVERVIEW_ONLY_MISSING
    }
    assert identity_of(shaped(person, "overview")) == identity_of(person)
