"""The two documented shapes of a person object, as the server can answer them.

``seed`` (the batch page and the list endpoint): ``external_id``, the known traits as
top-level fields, the custom ones under ``attributes``; it is how the store holds a person.
``overview`` (the People API overview): ``id``, ``workspace_id``, ``userId``, ``email``, one
``traits`` object with the known and the custom traits that are set, and the two timestamps.
"""

from __future__ import annotations

from typing import Any

from ._rules import KNOWN_TRAITS

__all__ = ["PERSON_SHAPES", "check_shape", "shaped"]

PERSON_SHAPES = ("seed", "overview")


def check_shape(shape: str) -> str:
    """``shape`` itself when it is one of :data:`PERSON_SHAPES`; else a ValueError."""
    if shape not in PERSON_SHAPES:
        raise ValueError(f"person_shape must be one of {PERSON_SHAPES}, got {shape!r}")
    return shape


def shaped(person: dict[str, Any], shape: str) -> dict[str, Any]:
    """A stored person (seed shape) as the server answers it in ``shape``."""
    if shape == "seed":
        return person
    known = {name: person[name] for name in KNOWN_TRAITS if person[name] is not None}
    return {
        "id": person["id"],
        "workspace_id": person["workspace_id"],
        "userId": person["external_id"],
        "email": person["email"],
        "traits": {**known, **person["attributes"]},
        "created_at": person["created_at"],
        "updated_at": person["updated_at"],
    }
