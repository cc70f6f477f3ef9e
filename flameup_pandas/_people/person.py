"""Reading a person as Flameup answers it, in either documented shape, into one canonical form.

The batch page and the list endpoint answer ``external_id``, the known traits as fields and
custom ones under ``attributes``; the People API overview answers ``userId`` and one
``traits`` object. Everything that reads a person goes through here, so a third shape is taught
once. The canonical form has every field of :data:`PERSON_FIELDS` (None when absent), the known
traits as fields and the custom ones under ``attributes``; a field found both at the top level
and inside ``traits``/``attributes`` is read once, the top level winning unless it is null.

>>> person = read_person({"userId": "u1", "traits": {"first_name": "Ada", "plan": "pro"}})
>>> person["external_id"], person["first_name"], person["attributes"]
('u1', 'Ada', {'plan': 'pro'})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "IDENTITY_KEYS",
    "KNOWN_TRAITS",
    "PERSON_FIELDS",
    "TOP_LEVEL",
    "identity_of",
    "is_new",
    "read_person",
]

TOP_LEVEL: tuple[str, ...] = ("userId", "email", "phone")
"""The fields a person is sent with at the top level, beside its ``traits`` object."""
KNOWN_TRAITS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "phone",
    "avatar_url",
    "timezone",
    "locale",
)
"""The traits Flameup documents; a person holds them as fields of its own."""
USER_ID_KEYS: tuple[str, ...] = ("external_id", "userId")
"""Where each shape puts the userId the person was sent with, in order of preference."""
IDENTITY_KEYS: tuple[str, ...] = (*USER_ID_KEYS, "email")
"""The keys a person of an answer is matched by (a diagnosis lists which ones it carried)."""
_NESTED_KEYS = ("traits", "attributes")
_KNOWN_FIELDS = frozenset(("email", *KNOWN_TRAITS))  # phone is a known trait
PERSON_FIELDS: tuple[str, ...] = (
    "id",
    "workspace_id",
    "external_id",
    "email",
    "phone",
    *(name for name in KNOWN_TRAITS if name != "phone"),
    "status",
    "attributes",
    "created_at",
    "updated_at",
    "first_seen_at",
    "last_seen_at",
)
"""The fields of a canonical person, in the order of Flameup's batch page."""
_PLAIN_FIELDS = tuple(
    name for name in PERSON_FIELDS if name not in _KNOWN_FIELDS and name != "attributes"
)


def read_person(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical form of one person object from an answer, whatever its shape."""
    nested = _nested_traits(raw)
    person: dict[str, Any] = {name: raw.get(name) for name in _PLAIN_FIELDS}
    person["external_id"] = _user_id(raw)
    for name in _KNOWN_FIELDS:
        value = raw.get(name)
        person[name] = nested.get(name) if value is None else value
    person["attributes"] = {k: v for k, v in nested.items() if k not in _KNOWN_FIELDS}
    return {name: person[name] for name in PERSON_FIELDS}


def identity_of(raw: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(external_id, lowercased email)`` of a person in an answer, in either shape.

    Cheaper than :func:`read_person`: the batch answer needs only these to match its people.
    """
    user_id = _user_id(raw)
    email = raw.get("email") or _nested_traits(raw).get("email")
    return (None if user_id is None else str(user_id), str(email).lower() if email else None)


def is_new(raw: Mapping[str, Any]) -> bool:
    """Whether the write that answered this person created it: ``created_at == updated_at``.

    Both shapes carry the two timestamps at the top level; only the answer's counts are
    documented, so the batch reader checks the flags against them.
    """
    created = raw.get("created_at")
    return bool(created) and created == raw.get("updated_at")


def _user_id(raw: Mapping[str, Any]) -> Any:
    return next((raw[key] for key in USER_ID_KEYS if raw.get(key) is not None), None)


def _nested_traits(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The traits of ``traits`` and ``attributes`` in one dict (``attributes`` wins a clash)."""
    merged: dict[str, Any] = {}
    for key in _NESTED_KEYS:
        value = raw.get(key)
        if isinstance(value, Mapping):
            merged.update(value)
    return merged
