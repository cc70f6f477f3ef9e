"""Column mapping: which column feeds which API field, and the canonical frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flameup_pandas._people.mapping import (
    FieldMap,
    canonical_frame,
    canonical_trait_column,
    normalize_user_ids,
    resolve_mapping,
    trait_name,
)
from flameup_pandas.exceptions import MappingError


def test_defaults_take_identity_known_traits_and_custom_traits() -> None:
    fm = resolve_mapping(["user_id", "email", "phone", "first_name", "locale", "plan", 7])
    assert fm.user_id == "user_id"
    assert fm.email == "email"
    assert fm.phone == "phone"
    assert dict(fm.traits) == {
        "first_name": "first_name",
        "locale": "locale",
        "plan": "plan",
        "7": 7,
    }
    assert fm.canonical_columns() == [
        "userId",
        "email",
        "phone",
        "first_name",
        "locale",
        "plan",
        "7",
    ]


@pytest.mark.parametrize("alias", ["userId", "user_id", "external_id"])
def test_user_id_comes_from_any_alias(alias: str) -> None:
    assert resolve_mapping([alias, "x"]).user_id == alias


def test_user_id_alias_priority_and_second_alias_is_an_error() -> None:
    """Two userId-looking columns are ambiguous: refuse rather than send one as a trait."""
    with pytest.raises(MappingError, match="'external_id' looks like a userId"):
        resolve_mapping(["external_id", "user_id"])
    assert resolve_mapping(["external_id", "user_id"], exclude=["external_id"]).user_id == "user_id"
    assert resolve_mapping(["external_id", "user_id"], exclude=["user_id"]).user_id == "external_id"


def test_mapping_overrides_defaults_and_mapped_columns_are_not_custom_traits() -> None:
    fm = resolve_mapping(
        ["customer_no", "Email", "tier", "age"],
        {"userId": "customer_no", "email": "Email", "traits.plan": "tier"},
    )
    assert (fm.user_id, fm.email, fm.phone) == ("customer_no", "Email", None)
    assert dict(fm.traits) == {"plan": "tier", "age": "age"}
    assert fm.source_of("plan") == "tier"
    assert fm.source_columns() == ["customer_no", "Email", "tier", "age"]


def test_traits_restricts_custom_traits_but_keeps_known_ones() -> None:
    fm = resolve_mapping(["email", "first_name", "a", "b", "c"], traits=["b"])
    assert dict(fm.traits) == {"first_name": "first_name", "b": "b"}


def test_exclude_drops_columns() -> None:
    fm = resolve_mapping(["email", "first_name", "a", "b"], exclude=["first_name", "a"])
    assert dict(fm.traits) == {"b": "b"}


def test_result_columns_are_left_out_so_a_result_can_be_resent() -> None:
    fm = resolve_mapping(["email", "plan", "flameup_id", "flameup_status", "flameup_error"])
    assert dict(fm.traits) == {"plan": "plan"}


def test_phone_is_top_level_only_unless_mapped_as_a_trait() -> None:
    assert "phone" not in resolve_mapping(["email", "phone"]).traits
    fm = resolve_mapping(["email", "phone"], {"traits.phone": "phone"})
    assert fm.phone == "phone"
    assert fm.canonical_columns() == ["email", "phone", "traits.phone"]


def test_a_field_mapped_to_none_is_not_sent_at_all() -> None:
    fm = resolve_mapping(["userId", "email", "phone"], {"email": None, "phone": None})
    assert fm.canonical_columns() == ["userId"]


def test_mapping_a_missing_column_names_it_and_lists_the_columns() -> None:
    with pytest.raises(MappingError, match=r"'nope'.*'email', 'plan'"):
        resolve_mapping(["email", "plan"], {"userId": "nope"})
    with pytest.raises(MappingError, match="nope"):
        resolve_mapping(["email"], traits=["nope"])
    with pytest.raises(MappingError, match="nope"):
        resolve_mapping(["email"], exclude=["nope"])


@pytest.mark.parametrize("key", ["user_id", "traits.", "Email", "attributes.x"])
def test_unknown_mapping_keys_are_refused(key: str) -> None:
    with pytest.raises(MappingError, match="not an API field"):
        resolve_mapping(["email", "x"], {key: "x"})


def test_trait_names_cannot_collide_with_identity_fields() -> None:
    with pytest.raises(MappingError, match="cannot be named"):
        resolve_mapping(["email", "x"], {"traits.userId": "x"})
    with pytest.raises(MappingError, match="'userId'"):
        resolve_mapping(["userId", "customer_no"], {"userId": "customer_no"})
    with pytest.raises(MappingError, match="'email'"):
        resolve_mapping(["userId", "email", "mail"], {"email": "mail"})


def test_two_columns_feeding_one_trait_is_an_error() -> None:
    with pytest.raises(MappingError, match="both"):
        resolve_mapping(["email", "first_name", "given"], {"traits.first_name": "given"})


def test_no_identity_column_says_how_to_name_one() -> None:
    with pytest.raises(MappingError, match=r"no userId or email column: name one with mapping"):
        resolve_mapping(["name", "plan"])


def test_duplicate_labels_are_refused_unless_excluded() -> None:
    with pytest.raises(MappingError, match="2 columns labelled 'plan'"):
        resolve_mapping(["email", "plan", "plan"])
    assert dict(resolve_mapping(["email", "plan", "plan"], exclude=["plan"]).traits) == {}


@pytest.mark.parametrize("label", [("a", "b"), None, "  "])
def test_labels_that_cannot_name_a_trait_are_refused(label: object) -> None:
    with pytest.raises(MappingError):
        resolve_mapping(["email", label])  # type: ignore[list-item]


def test_canonical_trait_names_round_trip() -> None:
    for name in ["plan", "phone", "traits.x", "userIdish"]:
        assert trait_name(canonical_trait_column(name)) == name


def test_canonical_frame_renames_and_resets_the_index() -> None:
    df = pd.DataFrame(
        {"customer_no": [10, 11], "Email": ["a@x.io", "b@x.io"], "tier": ["pro", "free"]},
        index=pd.Index(["r1", "r1"]),
    )
    fm = resolve_mapping(
        df.columns, {"userId": "customer_no", "email": "Email", "traits.plan": "tier"}
    )
    out = canonical_frame(df, fm)
    assert list(out.columns) == ["userId", "email", "plan"]
    assert isinstance(out.index, pd.RangeIndex)
    assert out["userId"].tolist() == ["10", "11"]
    assert out["plan"].tolist() == ["pro", "free"]
    assert df.index.tolist() == ["r1", "r1"]  # the input is untouched


def test_canonical_frame_tolerates_excluded_duplicate_labels() -> None:
    df = pd.DataFrame([[1, "a@x.io", 2]], columns=["x", "email", "x"])
    fm = resolve_mapping(df.columns, exclude=["x"])
    assert canonical_frame(df, fm).to_dict("list") == {"email": ["a@x.io"]}


def test_one_column_may_feed_several_fields() -> None:
    df = pd.DataFrame({"email": ["a@x.io"], "phone": ["+1 555"]})
    fm = resolve_mapping(df.columns, {"traits.phone": "phone"})
    assert canonical_frame(df, fm).to_dict("list") == {
        "email": ["a@x.io"],
        "phone": ["+1 555"],
        "traits.phone": ["+1 555"],
    }


def test_user_ids_integers_become_strings_integral_floats_too() -> None:
    """NaN in an int column makes it float: 1.0 is still user 1; 1.5 is left for validation."""
    assert normalize_user_ids(pd.Series([1, 2], dtype=np.int64)).tolist() == ["1", "2"]
    assert normalize_user_ids(pd.Series([1.0, np.nan, 1.5])).tolist()[0] == "1"
    floats = normalize_user_ids(pd.Series([1.0, np.nan, 1.5, 2.0**60]))
    assert pd.isna(floats[1])
    assert floats[2] == 1.5
    assert floats[3] == 2.0**60  # not exactly an int any more: left for validation
    nullable = normalize_user_ids(pd.Series([7, None], dtype="Int64")).tolist()
    assert nullable[0] == "7"
    assert pd.isna(nullable[1])
    assert normalize_user_ids(pd.Series([np.uint64(2**64 - 1)])).tolist() == [str(2**64 - 1)]
    mixed = pd.Series([np.int64(3), "u", True, b"x", 10**30], dtype=object)
    assert normalize_user_ids(mixed).tolist() == ["3", "u", True, b"x", str(10**30)]
    assert normalize_user_ids(pd.Series(pd.Categorical([1, 2]))).tolist() == ["1", "2"]


def test_fieldmap_source_of_unknown_raises_key_error() -> None:
    with pytest.raises(KeyError):
        FieldMap("a", None, None, {}).source_of("email")
