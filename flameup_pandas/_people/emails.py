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
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .identity import lowered_emails
from .wire import bools, null_mask, offsets_and_data

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
        pc.invert(pc.string_is_ascii(values)),
        pc.match_substring(values, "xn--", ignore_case=True),
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
def _domain_ok(domain: str) -> bool:
    if not domain.isascii():
        ascii_domain = _to_ascii(domain)
        if ascii_domain is None:
            return False
        domain = ascii_domain
    if len(domain) > _DOMAIN_MAX or _DOMAIN_RE.fullmatch(domain) is None:
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

    Every row's email is fingerprinted by column (:func:`email_fingerprints`); only rows whose
    fingerprint repeats are compared as text, so a column of distinct emails costs a few
    passes over its bytes.

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
    prints = email_fingerprints(emails if len(rows) == len(emails) else emails.take(rows))
    # Most fingerprints fall in a bucket of their own: only those sharing one are compared.
    # Four buckets a row, so a chunk's count table is small beside its rows (a fixed table of
    # the largest size was 32 MiB a call, most of a streaming run's peak memory).
    size = min(_BUCKETS, 1 << max(4, (4 * len(prints) - 1).bit_length()))
    buckets = (prints & np.uint64(size - 1)).astype(np.intp)
    crowded = np.flatnonzero(np.bincount(buckets, minlength=size)[buckets] > 1)
    again = pd.Series(prints[crowded]).duplicated(keep=False).to_numpy()
    if not again.any():
        return []
    rows = rows[crowded[again]]
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


_PRIME = np.uint64(0x100000001B3)
_INVERSE = np.uint64(pow(0x100000001B3, -1, 2**64))  # _PRIME * _INVERSE == 1 (mod 2**64)
_BLOCK_BYTES = 1 << 19
_BUCKETS = 1 << 22


def email_fingerprints(emails: pa.Array) -> np.ndarray:
    """A 64-bit fingerprint of each (non-null) email, equal for emails equal case aside: a
    polynomial hash of its bytes lower-cased as Python does.

    Computed over about :data:`_BLOCK_BYTES` of text at a time (at least one string a block):
    the powers of P kept, and each block's temporaries (eight bytes per byte of text), stay a
    few MiB whatever the column holds."""
    strings = lowered_emails(pa.array(emails))
    prints = np.empty(len(strings), dtype=np.uint64)
    offsets, _ = offsets_and_data(strings)
    start = 0
    while start < len(strings):
        end = int(np.searchsorted(offsets, offsets[start] + _BLOCK_BYTES, side="right")) - 1
        end = min(max(end, start + 1), len(strings))
        prints[start:end] = _polynomial_hashes(strings.slice(start, end - start))
        start = end
    return prints


def _polynomial_hashes(strings: pa.Array) -> np.ndarray:
    """``sum(byte[k] * P**k) * P + length`` of each string, mod 2**64.

    One pass over the block's bytes weighted by powers of P from its first byte, summed per
    string, then shifted back to each string's own start by a power of P's inverse."""
    offsets, data = offsets_and_data(strings)
    first, last = int(offsets[0]), int(offsets[-1])
    lengths: np.ndarray = (offsets[1:] - offsets[:-1]).astype(np.uint64)
    if last == first:
        return lengths
    raw = data[first:last]
    starts = offsets[:-1] - first
    powers, inverses = _powers(len(raw))
    with np.errstate(over="ignore"):
        weighted = raw * powers[: len(raw)]
        sums = np.add.reduceat(weighted, np.minimum(starts, len(raw) - 1))
        sums = np.where(lengths > 0, sums * inverses[starts], np.uint64(0))
        hashes: np.ndarray = sums * _PRIME + lengths
    return hashes


_POWERS: list[tuple[np.ndarray, np.ndarray]] = []


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P**k and P**-k for k below at least ``n`` (mod 2**64), grown as needed and kept."""
    if not _POWERS or len(_POWERS[0][0]) < n:
        size = max(n, 2 * len(_POWERS[0][0]) if _POWERS else _BLOCK_BYTES)
        with np.errstate(over="ignore"):
            powers = np.cumprod(np.full(size, _PRIME, dtype=np.uint64), dtype=np.uint64)
            inverses = np.cumprod(np.full(size, _INVERSE, dtype=np.uint64), dtype=np.uint64)
        powers = np.concatenate([[np.uint64(1)], powers[:-1]])
        inverses = np.concatenate([[np.uint64(1)], inverses[:-1]])
        _POWERS[:] = [(powers, inverses)]
    return _POWERS[0]
