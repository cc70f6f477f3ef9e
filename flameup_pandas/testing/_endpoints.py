"""The people endpoints: parse a request body, apply the rules, talk to the store.

Every person is answered in the server's ``person_shape`` (see ``_shapes``).
``POST /people/batch`` answers 200 with ``{"people", "created_count", "updated_count"}``
(people in request order, each as stored right after its own entry was applied). By default
one refused person fails the whole batch with 422 and nothing is stored. With
``per_person_errors`` the valid people are stored and the answer is 200 with an extra
``errors`` list (see the package docstring for its shape).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ._answers import Answer, envelope_error, simple_error, validation_error
from ._rules import WHOLE_PERSON, check_batch_body, check_person, check_traits, to_input
from ._shapes import check_shape, shaped
from ._store import Store

__all__ = ["STATUSES", "Endpoints", "Exchange", "Handler", "paging"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
STATUSES = ("active", "unsubscribed", "bounced")


@dataclass
class Exchange:
    """One request on its way through the server."""

    method: str
    path: str
    """The path below ``/api/v1``, decoded (for the request log)."""
    body: bytes
    args: dict[str, str]
    request_id: str
    authorization: str = ""
    segments: tuple[str, ...] = ()
    """The segments of the path as it was sent, each decoded: routes are matched on them, so
    ``/people/a%2Fb`` names the person ``a/b`` and ``/people/%2E%2E`` the person ``..``."""
    _parsed: Any = field(default=None, init=False)
    _parse_error: str | None = field(default=None, init=False)
    _done: bool = field(default=False, init=False)

    def json(self) -> tuple[Any, str | None]:
        """The parsed body, or None and why it is not a JSON object."""
        if not self._done:
            self._done = True
            self._parsed, self._parse_error = _parse(self.body)
        return self._parsed, self._parse_error

    def people_count(self) -> int:
        body, error = self.json()
        if error is not None:
            return 0
        people = body.get("people")
        if isinstance(people, list):
            return len(people)
        return 1 if self.method == "POST" and self.path == "/people" else 0


def _parse(raw: bytes) -> tuple[Any, str | None]:
    if not raw.strip():
        return None, "Request body is empty"
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return None, f"Malformed JSON: {e}"
    if not isinstance(body, dict):
        return None, "Request body must be a JSON object"
    return body, None


Handler = Callable[[Exchange, str | None], Answer]


class Endpoints:
    """The handlers of the people API over one store."""

    def __init__(
        self, store: Store, per_person_errors: bool = False, person_shape: str = "seed"
    ) -> None:
        self.store = store
        self.per_person_errors = per_person_errors
        self.person_shape = check_shape(person_shape)

    def _shown(self, person: dict[str, Any]) -> dict[str, Any]:
        return shaped(person, self.person_shape)

    def batch(self, ex: Exchange, _: str | None) -> Answer:
        body, error = ex.json()
        if error is not None:
            return simple_error(400, "Bad Request", error)
        people, problems = check_batch_body(body)
        if problems:
            return validation_error("The request body is invalid", problems)
        refused = {i: p for i, person in enumerate(people) if (p := check_person(person))}
        if refused and not self.per_person_errors:
            message = f"{len(refused)} of {len(people)} people failed validation"
            return validation_error(message, _batch_fields(refused))
        valid = [to_input(person) for i, person in enumerate(people) if i not in refused]
        result = self.store.upsert(valid)
        answer = {
            "people": [self._shown(p) for p in result.people],
            "created_count": result.created_count,
            "updated_count": result.updated_count,
        }
        if self.per_person_errors:
            answer["errors"] = [_person_error(i, people[i], p) for i, p in refused.items()]
        return Answer(200, answer)

    def create(self, ex: Exchange, _: str | None) -> Answer:
        body, error = ex.json()
        if error is not None:
            return simple_error(400, "Bad Request", error)
        problems = check_person(body, require_user_id=True)
        if problems:
            return validation_error("The person is invalid", problems)
        result = self.store.upsert([to_input(body)])
        return Answer(201 if result.created_count else 200, self._shown(result.people[0]))

    def get(self, ex: Exchange, identifier: str | None) -> Answer:
        person = self.store.get(identifier or "")
        return Answer(200, self._shown(person)) if person else _not_found(ex)

    def update(self, ex: Exchange, identifier: str | None) -> Answer:
        body, error = ex.json()
        if error is not None:
            return simple_error(400, "Bad Request", error)
        problems = {key: "Unknown field" for key in body if key != "traits"}
        if "traits" not in body:
            problems["traits"] = "Required"
        else:
            problems.update(check_traits(body["traits"], prefix="traits"))
        if problems:
            return validation_error("The request body is invalid", problems)
        person = self.store.update_traits(identifier or "", body["traits"])
        return Answer(200, self._shown(person)) if person else _not_found(ex)

    def list_people(self, ex: Exchange, _: str | None) -> Answer:
        pages = paging(ex.args)
        if isinstance(pages, Answer):
            return pages
        limit, offset = pages
        status, search = ex.args.get("status"), ex.args.get("search")
        if status and status not in STATUSES:
            return validation_error(
                "Invalid query parameters", {"status": f"Must be one of {', '.join(STATUSES)}"}
            )
        people, total = self.store.page(limit, offset, status=status, search=search)
        shown = [self._shown(p) for p in people]
        return Answer(200, {"people": shown, "total": total, "limit": limit, "offset": offset})


def paging(args: dict[str, str]) -> tuple[int, int] | Answer:
    values: dict[str, int] = {}
    for name, default in (("limit", DEFAULT_LIMIT), ("offset", 0)):
        try:
            values[name] = int(args.get(name, default))
        except ValueError:
            return simple_error(400, "Bad Request", f"{name} must be an integer")
    problems = {}
    if not 1 <= values["limit"] <= MAX_LIMIT:
        problems["limit"] = f"Must be between 1 and {MAX_LIMIT}"
    if values["offset"] < 0:
        problems["offset"] = "Must not be negative"
    if problems:
        return validation_error("Invalid query parameters", problems)
    return values["limit"], values["offset"]


def _not_found(ex: Exchange) -> Answer:
    return envelope_error(404, "NOT_FOUND", "Person not found", ex.request_id)


def _batch_fields(refused: dict[int, dict[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for i, problems in refused.items():
        for name, message in problems.items():
            key = f"people[{i}]" if name == WHOLE_PERSON else f"people[{i}].{name}"
            fields[key] = message
    return fields


def _person_error(index: int, person: Any, problems: dict[str, str]) -> dict[str, Any]:
    sent = person if isinstance(person, dict) else {}
    user_id, email = sent.get("userId"), sent.get("email")
    fields = {(name or "person"): message for name, message in problems.items()}
    return {
        "index": index,
        "userId": user_id if isinstance(user_id, str) else None,
        "email": email if isinstance(email, str) else None,
        "message": "; ".join(f"{name}: {message}" for name, message in fields.items()),
        "fields": fields,
    }
