"""Which email addresses are plausible: the syntax rules of email-validator, checked by column.

The rules, and the three deliberate differences from email-validator (``a@b.c`` refused,
special-use names such as ``.test`` accepted, unassigned code points in the local part
accepted, as RE2 has no class for them), are in ``docs/guides/notebooks.md``;
``tests/test_emails.py`` checks the agreement on generated addresses. The ASCII domain rules
and the whole local part are one RE2 pattern run by Arrow over a column; only the rows it
refuses and cannot judge alone (an internationalised domain, Punycode) are judged in Python
(:func:`plausible_email`), which also judges columns Arrow cannot hold.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .identity import lowered_emails
from .wire import bools, null_mask

__all__ = ["EMAIL_PATTERN", "plausible_email", "plausible_emails", "shared_emails"]

_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_A, _H, _L = "[A-Za-z0-9]", "[A-Za-z0-9-]", "[A-Za-z]"
_REST = rf"{_H}{{0,58}}"  # a label's characters after its fourth, all but its last
# A label: 1 to 63 letters, digits and hyphens, a letter or digit first and last, and not
# "--" in third and fourth place (RFC 5890's reserved labels); the top-level one ends with a
# letter and has at least two characters. Spelled out by what stands in third and fourth
# place, since RE2 has no lookahead.
_LABEL = (
    rf"{_A}(?:{_H}?{_A})?"
    rf"|{_A}{_H}(?:{_A}(?:{_A}(?:{_REST}{_A})?|-{_REST}{_A})|-{_A}(?:{_REST}{_A})?)"
)
_TOP = (
    rf"{_A}{_H}?{_L}"
    rf"|{_A}{_H}(?:{_A}(?:{_L}|{_A}{_REST}{_L}|-{_REST}{_L})|-(?:{_L}|{_A}{_REST}{_L}))"
)
_PUNYCODE_LABEL, _PUNYCODE_TOP = rf"[xX][nN]--{_REST}{_A}", rf"[xX][nN]--{_REST}{_L}"
_ASCII_DOMAIN = rf"(?:(?:{_LABEL})\.)+(?:{_TOP})"
_PUNYCODE_DOMAIN = rf"(?:(?:{_LABEL}|{_PUNYCODE_LABEL})\.)+(?:{_TOP}|{_PUNYCODE_TOP})"
# Beyond ASCII, a local part may hold letters, marks, numbers, punctuation and symbols: not
# control, format, private use or surrogate characters (category C) nor separators (Z). RE2
# syntax. RE2 cannot name unassigned code points (Cn), so those pass (in Python too, to agree).
_LOCAL_CHAR = rf"[{_ATEXT}]|[^\x00-\x7f\p{{C}}\p{{Z}}]"
_LOCAL_FIRST = rf"[{_ATEXT}]|[^\x00-\x7f\p{{C}}\p{{Z}}\p{{M}}]"
EMAIL_PATTERN = rf"(?:{_LOCAL_FIRST})(?:{_LOCAL_CHAR})*(?:\.(?:{_LOCAL_CHAR})+)*@{_ASCII_DOMAIN}"
"""RE2: a plausible address whose domain is ASCII without Punycode (almost every address)."""

_ASCII_LOCAL_RE = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_DOMAIN_RE = re.compile(_PUNYCODE_DOMAIN)
_ATEXT_CHARS = frozenset("!#$%&'*+/=?^_`{|}~-")
_DOMAIN_MAX = 253  # octets, as transmitted (RFC 1035 2.3.4)
_DOTS = frozenset("\u3002\uff0e\uff61")  # ideographic, fullwidth and halfwidth full stops


def plausible_emails(strings: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """:func:`plausible_email` of every value of an Arrow string column (missing: False)."""
    judged = pc.match_substring_regex(strings, f"^(?:{EMAIL_PATTERN})$")
    ok = bools(judged, missing=True)
    refused = np.flatnonzero(~ok)
    if len(refused) == 0:
        return ok
    values = strings.take(pa.array(refused))
    # Only an address beyond ASCII or with Punycode can be refused by the pattern and still be
    # plausible; the others are refused for good.
    unsure = pc.or_(
        pc.invert(pc.string_is_ascii(values)), pc.match_substring(values, "xn--", ignore_case=True)
    )
    again = np.flatnonzero(bools(unsure))
    for index, value in zip(again.tolist(), values.take(pa.array(again)).to_pylist(), strict=True):
        ok[refused[index]] = plausible_email(value)
    return np.asarray(ok & ~null_mask(strings), dtype=bool)


def plausible_email(value: Any) -> bool:
    """Whether one value is a plausible email address (see the module's rules).

    >>> [plausible_email(v) for v in ("ünïcode@exämple.de", "mailto:a@b.com", "a@b.c")]
    [True, False, False]
    """
    if not isinstance(value, str):
        return False
    local, at, domain = value.partition("@")
    return bool(at) and "@" not in domain and _local_ok(local) and _domain_ok(domain)


def _local_ok(local: str) -> bool:
    if local.isascii():
        return _ASCII_LOCAL_RE.fullmatch(local) is not None
    if not local or unicodedata.category(local[0])[0] == "M":
        return False
    atoms = local.split(".")
    return all(atoms) and all(_local_char_ok(ch) for ch in local if ch != ".")


def _local_char_ok(ch: str) -> bool:
    if ch.isascii():
        return ch.isalnum() or ch in _ATEXT_CHARS
    category = unicodedata.category(ch)
    return category == "Cn" or category[0] in "LMNPS"  # (Cn: as the RE2 pattern reads it)


@functools.lru_cache(maxsize=4_096)  # a column holds many people at few domains
def _domain_ok(written: str) -> bool:
    domain = written if written.isascii() else _to_ascii(written)
    if domain is None or len(domain) > _DOMAIN_MAX or _DOMAIN_RE.fullmatch(domain) is None:
        return False
    if "xn--" not in domain.lower():
        return True
    import idna  # (see _to_ascii)

    try:  # Punycode labels must be real IDNA (``xn--c`` is not)
        idna.decode(domain)
    except (idna.IDNAError, UnicodeError, ValueError):
        return False
    return True


def _to_ascii(domain: str) -> str | None:
    """An internationalised domain as email-validator reads it (UTS 46 mapping, then IDNA
    2008 A-labels), or None where it cannot be one."""
    import idna  # requests' own dependency: the IDNA 2008 rules Python's codec lacks

    if unicodedata.category(domain[0])[0] == "M" or not all(map(_domain_char_ok, domain)):
        return None
    try:
        mapped = idna.uts46_remap(domain, std3_rules=False, transitional=False)
        labels = mapped.split(".")
        if not all(labels):
            return None
        return ".".join(idna.alabel(label).decode("ascii") for label in labels)
    except (idna.IDNAError, UnicodeError, ValueError):
        return None


def _domain_char_ok(ch: str) -> bool:
    if ch.isascii():
        return ch.isalnum() or ch in "-."
    if ch in _DOTS:
        return True
    code = ord(ch)
    if 0x80 <= code <= 0x9F or unicodedata.category(ch)[0] in "CZ":
        return False
    return "002E" not in unicodedata.decomposition(ch).split(" ")  # "⒈" holds a dot


def shared_emails(user_ids: pa.Array, emails: pa.Array) -> list[tuple[str, np.ndarray]]:
    """Emails that rows with different userIds share, case aside: each as its first row wrote
    it, with the positions of the rows (in order). Sent as they are, such rows become
    different people with one email; the run says so, and still sends them.

    Emails are lower-cased and counted by column; only rows whose email repeats are grouped
    in Python, so a column of distinct emails costs a few passes over its bytes.

    >>> [(email, rows.tolist()) for email, rows in shared_emails(
    ...     pa.array(["u1", "u2", "u3", "u1", None]),
    ...     pa.array(["A@x.io", "b@x.io", "a@X.io", "a@x.io", "b@x.io"]))]
    [('A@x.io', [0, 2, 3])]
    """
    user_ids = pa.array(user_ids).cast(pa.large_string())
    emails = pa.array(emails).cast(pa.large_string())
    both = pc.and_(
        pc.fill_null(pc.greater(pc.binary_length(user_ids), 0), False),
        pc.fill_null(pc.greater(pc.binary_length(emails), 0), False),
    )
    rows = np.flatnonzero(bools(both))
    if len(rows) < 2:
        return []
    lowered = lowered_emails(emails if len(rows) == len(emails) else emails.take(rows))
    codes = pc.dictionary_encode(lowered).indices.to_numpy()
    again = np.bincount(codes)[codes] > 1
    if not again.any():
        return []
    rows = rows[again]
    written = emails.take(pa.array(rows)).to_pylist()
    ids = user_ids.take(pa.array(rows)).to_pylist()
    groups: dict[str, tuple[str, list[int], set[str]]] = {}
    for row, email, user_id in zip(rows.tolist(), written, ids, strict=True):
        _, members, people = groups.setdefault(email.lower(), (email, [], set()))
        members.append(row)
        people.add(user_id)
    return [
        (first, np.asarray(members, dtype=np.int64))
        for first, members, people in groups.values()
        if len(people) > 1
    ]
