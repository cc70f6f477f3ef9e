"""What the web view reads out of kept request bodies and answers.

Two questions, both answered from the bytes the request log keeps (`Bodies`), at the moment a
page is shown, never while an API request is answered: which people a refused request named
and why (`field_errors`), and which requests touched one person (`touched`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ._records import Bodies, RecordedRequest

__all__ = ["FieldError", "field_errors", "parsed", "touched"]

_PERSON_FIELD = re.compile(r"people\[(\d+)\](?:\.(.+))?")


@dataclass(frozen=True)
class FieldError:
    """One refused field, beside the person it belongs to (as that person was sent)."""

    index: int | None
    """Position in the batch's ``people`` list; None for the body as a whole."""
    user_id: Any
    email: Any
    field: str
    message: str


def parsed(raw: bytes | None) -> Any:
    """The JSON value of some bytes, or None when they are absent or not JSON."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def field_errors(status: int | None, bodies: Bodies) -> list[FieldError]:
    """The field errors of a 422, or the refused people of a 200 with ``errors``.

    >>> body = b'{"people": [{"userId": "a"}, {"userId": "b", "email": "x"}]}'
    >>> answer = b'{"error": {"details": {"fields": {"people[1].email": "Invalid"}}}}'
    >>> field_errors(422, Bodies(body, answer))
    [FieldError(index=1, user_id='b', email='x', field='email', message='Invalid')]
    """
    body, answer = parsed(bodies.request), parsed(bodies.answer)
    if not isinstance(answer, dict):
        return []
    if status == 422:
        return _validation_errors(body, answer)
    if status == 200 and isinstance(answer.get("errors"), list):
        return _per_person_errors(answer["errors"])
    return []


def _validation_errors(body: Any, answer: dict[str, Any]) -> list[FieldError]:
    error = answer.get("error")
    details = error.get("details") if isinstance(error, dict) else None
    fields = details.get("fields") if isinstance(details, dict) else None
    if not isinstance(fields, dict):
        return []
    people = body.get("people") if isinstance(body, dict) else None
    found = []
    for name, message in fields.items():
        match = _PERSON_FIELD.fullmatch(name)
        if match is None:
            single = body if isinstance(body, dict) and people is None else {}
            found.append(_error(None, single, name, message))
            continue
        index = int(match[1])
        sent = people[index] if isinstance(people, list) and index < len(people) else {}
        found.append(_error(index, sent, match[2] or "person", message))
    return sorted(found, key=lambda e: (e.index is not None, e.index or 0))


def _per_person_errors(errors: list[Any]) -> list[FieldError]:
    found = []
    for entry in errors:
        if not isinstance(entry, dict):
            continue
        index = entry.get("index") if isinstance(entry.get("index"), int) else None
        fields = entry.get("fields")
        for name, message in (fields if isinstance(fields, dict) else {}).items():
            found.append(FieldError(index, entry.get("userId"), entry.get("email"), name, message))
    return found


def _error(index: int | None, sent: Any, name: str, message: Any) -> FieldError:
    person = sent if isinstance(sent, dict) else {}
    return FieldError(index, person.get("userId"), person.get("email"), name, str(message))


def touched(
    person: Mapping[str, Any], records: Iterable[RecordedRequest], kept: Mapping[str, Bodies]
) -> list[RecordedRequest]:
    """The requests among ``records`` whose kept body names this person, or whose path or
    write answer is theirs (a list of everyone is not counted)."""
    return [r for r in records if r.request_id in kept and _touches(person, r, kept[r.request_id])]


def _touches(person: Mapping[str, Any], record: RecordedRequest, bodies: Bodies) -> bool:
    external_id, email = person.get("external_id"), (person.get("email") or "").lower()
    prefix = "/api/v1/people/"
    if record.path.startswith(prefix) and record.path != prefix + "batch":
        named = record.path[len(prefix) :]
        return named == external_id or (bool(email) and named.lower() == email)
    if record.method not in ("POST", "PUT"):
        return False
    body = parsed(bodies.request)
    sent = body.get("people") if isinstance(body, dict) else None
    entries = sent if isinstance(sent, list) else [body]
    if any(_names(entry, external_id, email) for entry in entries):
        return True
    answer = parsed(bodies.answer)
    stored = answer.get("people") if isinstance(answer, dict) else None
    answered = stored if isinstance(stored, list) else [answer]
    return any(isinstance(a, dict) and a.get("id") == person.get("id") for a in answered)


def _names(entry: Any, external_id: Any, email: str) -> bool:
    if not isinstance(entry, dict):
        return False
    user_id = entry.get("userId")
    if user_id is not None:
        return bool(user_id == external_id)
    sent = entry.get("email")
    return isinstance(sent, str) and bool(email) and sent.lower() == email
