"""Plausible emails: email-validator's syntax rules, checked by column (the Arrow pattern) and
per value (Python), tested against email-validator itself on generated addresses."""

from __future__ import annotations

import unicodedata
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flameup_pandas import validate
from flameup_pandas._people.emails import (
    plausible_email,
    plausible_emails,
    shared_emails,
)

REFUSED = [
    "mailto:a@b.com",  # a scheme
    "a@-b.com",  # a label starting with "-"
    "a@b-.com",  # ... or ending with one
    ".a@b.com",  # a leading dot in the local part
    "a.@b.com",  # ... a trailing one
    "a..b@c.com",  # consecutive dots
    "a@b..com",
    "a@b.c",  # a one-letter top-level domain
    "a@b.c1",  # a top-level domain not ending with a letter
    "a@ab--c.com",  # "--" in third and fourth place, not Punycode
    "a@xn--c.com",  # Punycode that does not decode
    "a b@c.com",
    '"a"@b.com',
    "a@[1.2.3.4]",
    "a@localhost",
    "\u0301a@b.com",  # a combining mark first
    "a\u200b@b.com",  # an invisible character
    "a@⒈com",  # a character that holds a dot
    "a@b@c.com",
]
ACCEPTED = [
    "first.last+tag@sub.example.co",
    "o'brien@example.ie",
    "müller@example.de",
    "用户@例子.中国",
    "a@exämple.de",
    "a@xn--80ak6aa92e.com",
    "a@b.xn--p1ai",
    "a@example。com",  # an ideographic full stop between labels
    "ü@Ⅷ.com",
    "A@B.CO",
    "a@b.co-m",
    "x@test.example",
]


@pytest.mark.parametrize("address", REFUSED)
def test_implausible_forms_are_refused_by_both_paths(address: str) -> None:
    assert not plausible_email(address)
    assert not plausible_emails(pa.chunked_array([[address]]))[0]


@pytest.mark.parametrize("address", ACCEPTED)
def test_international_and_unusual_addresses_are_accepted_by_both_paths(address: str) -> None:
    assert plausible_email(address)
    assert plausible_emails(pa.chunked_array([[address]]))[0]


def test_validate_reports_the_forms_the_issue_named_and_passes_international_ones() -> None:
    emails = ["mailto:a@b.com", "a@-b.com", ".a@b.com", "a.@b.com", "a@b.c", "a..b@c.com"]
    emails += ["müller@example.de", "用户@例子.中国"]
    frame = pd.DataFrame({"userId": [f"u{i}" for i in range(len(emails))], "email": emails})
    report = validate(frame)
    assert report["check"].tolist() == ["email_plausible"] * 6
    assert report["index"].tolist() == list(range(6))


# -- against email-validator -------------------------------------------------------------------

ATEXT = "abcxyzABZ0189!#$%&'*+/=?^_`{|}~-"
ODD_LOCAL = [" ", ":", '"', "(", ",", "\\", "[", "<", "\x01", "\x7f", "\u00a0", "\u200b"]
WIDE_LOCAL = ["ü", "é", "ß", "中", "я", "😀", "\u0301", "\u2028", "\ue000", "\u0378", "¡", "€"]
local_atoms = st.text(st.sampled_from([*ATEXT, *ODD_LOCAL, *WIDE_LOCAL]), min_size=0, max_size=6)
locals_ = st.builds(
    lambda prefix, atoms: prefix + ".".join(atoms),
    st.sampled_from(["", "", "", "mailto:"]),
    st.lists(local_atoms, min_size=1, max_size=3),
)
LDH = "abcxyz019-"
WIDE_DOMAIN = [
    "ü",
    "ß",
    "\u0440",
    "\u0444",
    "中",
    "⒈",
    "Ⅷ",
    "。",
    "_",
    "\u0301",
    "\u00a0",
    "😀",
    "'",
]
plain_labels = st.text(st.sampled_from(LDH), min_size=0, max_size=8)
labels = st.one_of(
    plain_labels,
    plain_labels.map(lambda label: "xn--" + label),
    st.sampled_from(["xn--p1ai", "xn--80ak6aa92e", "ab--cd", "XN--P1AI", "a" * 63, "a" * 64]),
    st.text(st.sampled_from([*LDH, *WIDE_DOMAIN]), min_size=1, max_size=6),
)
tops = st.one_of(
    labels,
    st.sampled_from(["com", "de", "io", "c", "co", "c1", "1c", "xn--p1ai", "рф", "中国"]),
)
domains = st.builds(
    lambda head, top: ".".join([*head, top]), st.lists(labels, min_size=0, max_size=3), tops
)
addresses = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", locals_, domains),
    st.emails(),
    st.text(max_size=20),
)


def validator_says(address: str) -> bool | None:
    """email-validator's verdict on the syntax; None where we differ from it on purpose."""
    local = address.partition("@")[0]
    if any(unicodedata.category(ch) == "Cn" for ch in local):
        return None  # an unassigned code point: accepted by us (RE2 cannot name them)
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        if "special-use or reserved name" in str(error) or "too long" in str(error):
            return None  # accepted by us on purpose / the separate length check's business
        return False
    if len(checked.ascii_domain.rsplit(".", 1)[-1]) == 1:
        return None  # a one-letter top-level domain: refused by us on purpose
    return True


@settings(max_examples=1_500)
@given(addresses)
@example("a@b.c")
@example("mailto:a@b.com")
@example("用户@例子.中国")
@example("a@xn--c.com")
def test_the_same_verdict_as_email_validator(address: str) -> None:
    expected = validator_says(address)
    if expected is not None:  # (None: where we differ on purpose, see validator_says)
        assert plausible_email(address) == expected


@settings(max_examples=200)
@given(st.lists(addresses, min_size=1, max_size=30))
def test_the_arrow_path_agrees_with_the_python_path(values: list[str]) -> None:
    column = pa.chunked_array([values[: len(values) // 2], values[len(values) // 2 :]], pa.string())
    assert plausible_emails(column).tolist() == [plausible_email(v) for v in values]


# -- one email, several userIds ------------------------------------------------------------------

EMAILS = ["a@x.io", "A@X.io", "b@x.io", "Ünï@x.de", "ünï@x.de", "ÜNÏ@X.DE", "c@y.io", "", None]


def plain_shared(rows: list[tuple[str | None, str | None]]) -> list[tuple[str, list[int]]]:
    groups: dict[str, tuple[str, list[int], set[str]]] = {}
    for i, (user_id, email) in enumerate(rows):
        if user_id and email:
            _, members, ids = groups.setdefault(email.lower(), (email, [], set()))
            members.append(i)
            ids.add(user_id)
    return [(first, members) for first, members, ids in groups.values() if len(ids) > 1]


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.sampled_from(["u1", "u2", "u3", "", None]), st.sampled_from(EMAILS)),
        max_size=60,
    )
)
def test_shared_emails_are_those_a_plain_count_finds(rows: list[tuple[Any, Any]]) -> None:
    user_ids = pa.array([u for u, _ in rows], pa.string())
    emails = pa.array([e for _, e in rows], pa.string())
    found = [(email, members.tolist()) for email, members in shared_emails(user_ids, emails)]
    assert found == plain_shared(rows)


def test_shared_emails_ignore_case_and_tell_many_emails_apart() -> None:
    emails = [f"user{i}@example.com" for i in range(100_000)] + ["USER7@Example.COM", "Ünï@X.de"]
    emails.append("ünï@x.DE")
    user_ids = [f"u{i}" for i in range(len(emails))]
    found = shared_emails(pa.array(user_ids), pa.array(emails, pa.large_string()))
    shown = [(email, rows.tolist()) for email, rows in found]
    assert shown == [("user7@example.com", [7, 100_000]), ("Ünï@X.de", [100_001, 100_002])]
