"""Flameup's documented input rules, checked the way the server applies them.

Field problems are returned as data (``{"email": "Invalid email format"}``), never raised:
the server decides whether one bad person fails the whole batch (422) or only itself.
Top-level ``userId``, ``email`` and ``phone`` sent as JSON null count as not sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "KNOWN_TRAITS",
    "MAX_BATCH",
    "PersonInput",
    "check_batch_body",
    "check_person",
    "check_traits",
    "to_input",
]

MAX_BATCH = 100
MAX_USER_ID = 255
MAX_EMAIL = 254
MAX_LOCAL_PART = 64
"""Characters before the ``@`` (RFC 5321 4.5.3.1.1): a limit servers enforce and clients'
validators (email-validator unless strict, flameup-pandas) leave to them."""
MAX_PHONE = 50
KNOWN_TRAITS = ("first_name", "last_name", "phone", "avatar_url", "timezone", "locale")
_KNOWN_SET = frozenset(KNOWN_TRAITS)
PERSON_KEYS = frozenset({"userId", "email", "phone", "traits"})
WHOLE_PERSON = ""
"""The field key of a problem with the person as a whole (not an object, no identity)."""

_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


@dataclass(frozen=True)
class PersonInput:
    """One person of a request, after it passed the rules."""

    user_id: str | None
    email: str | None
    phone: str | None
    traits: dict[str, Any] = field(default_factory=dict)


def check_batch_body(body: Any) -> tuple[list[Any], dict[str, str]]:
    """The people list of a batch body (already known to be an object) and its problems."""
    unknown = {key: "Unknown field" for key in body if key != "people"}
    people = body.get("people")
    if people is None:
        return [], {"people": "Required", **unknown}
    if not isinstance(people, list):
        return [], {"people": "Must be a list", **unknown}
    if not 1 <= len(people) <= MAX_BATCH:
        message = f"Must contain between 1 and {MAX_BATCH} people, got {len(people)}"
        return [], {"people": message, **unknown}
    return people, unknown


def check_person(person: Any, *, require_user_id: bool = False) -> dict[str, str]:
    """The problems of one person object, keyed by field name ({} when it is valid)."""
    if not isinstance(person, dict):
        return {WHOLE_PERSON: "Must be a JSON object"}
    problems = {key: "Unknown field" for key in person if key not in PERSON_KEYS}
    _check_string(problems, "userId", person.get("userId"), MAX_USER_ID)
    _check_email(problems, "email", person.get("email"))
    _check_string(problems, "phone", person.get("phone"), MAX_PHONE)
    if "traits" in person:
        problems.update(check_traits(person["traits"], prefix="traits"))
    if person.get("userId") is None and (require_user_id or person.get("email") is None):
        problems.setdefault("userId", _identity_message(require_user_id))
    return problems


def check_traits(traits: Any, *, prefix: str) -> dict[str, str]:
    """The problems of a traits object: known traits must be strings (or null)."""
    if not isinstance(traits, dict):
        return {prefix: "Must be an object"}
    problems: dict[str, str] = {}
    for name in _KNOWN_SET.intersection(traits):
        limit = MAX_PHONE if name == "phone" else None
        _check_string(problems, f"{prefix}.{name}", traits[name], limit)
    return problems


def to_input(person: dict[str, Any]) -> PersonInput:
    """A valid person object as a `PersonInput`."""
    return PersonInput(
        user_id=person.get("userId"),
        email=person.get("email"),
        phone=person.get("phone"),
        traits=person.get("traits") or {},
    )


def _identity_message(require_user_id: bool) -> str:
    return "Required" if require_user_id else "Either userId or email is required"


def _check_string(problems: dict[str, str], name: str, value: Any, limit: int | None) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        problems[name] = "Must be a string"
    elif name == "userId" and not value.strip():
        problems[name] = "Must not be empty"
    elif limit is not None and len(value) > limit:
        problems[name] = f"Must be at most {limit} characters"


def _check_email(problems: dict[str, str], name: str, value: Any) -> None:
    _check_string(problems, name, value, MAX_EMAIL)
    if name not in problems and value is not None and not _plausible_email(value):
        problems[name] = "Invalid email format"


def _plausible_email(value: str) -> bool:
    return _EMAIL.fullmatch(value) is not None and len(value.rpartition("@")[0]) <= MAX_LOCAL_PART
