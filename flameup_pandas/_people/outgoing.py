"""People on their way out: the bytes of each person and the body of one batch request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from .values import decimal_text

__all__ = ["Outgoing", "as_outgoing", "encode_batch"]


class Outgoing(NamedTuple):
    """One person on its way: the JSON bytes sent, and the identity its answer is matched by."""

    json: bytes
    user_id: str | None
    email: str | None


def _json_of(value: Any) -> Any:
    """What orjson does not write itself: a Decimal (as ``to_people`` shows one) as the
    number of its own digits."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def as_outgoing(person: Mapping[str, Any] | Outgoing) -> Outgoing:
    """A person dict as it goes out (an :class:`Outgoing` is returned as it is)."""
    if isinstance(person, Outgoing):
        return person
    user_id, email = person.get("userId"), person.get("email")
    return Outgoing(
        orjson.dumps(person, default=_json_of),
        None if user_id is None else str(user_id),
        None if not email else str(email),
    )


def encode_batch(people: Sequence[Mapping[str, Any] | Outgoing]) -> bytes:
    """The JSON body of one batch request: the people's bytes, joined.

    >>> encode_batch([{"userId": "u1"}])
    b'{"people":[{"userId":"u1"}]}'
    """
    return b'{"people":[' + b",".join(as_outgoing(p).json for p in people) + b"]}"
