"""A plan against Flameup: read the people a run would send, and compare them field by field.

People are read one ``GET /people/{id}`` each, or by the listing when that takes fewer requests
(its first page tells the total, so it is read first when there is more than one to read), under
the key's shared budget and retries; the cost is said before reading, and ``sample=N`` reads
only the first N.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from collections.abc import Hashable
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from .._people.person import KNOWN_TRAITS, read_person
from .._send.client import Answer, is_error_answer, is_person_answer, path_segment
from .._send.delivery import Deliverer, GaveUp
from .._send.reader import PAGE_SIZE, PeopleReader
from .options import Delivery
from .progress import DOCUMENTED_RATE, duration

__all__ = ["compare_with_flameup", "listing_cost", "reading_cost"]

logger = logging.getLogger("flameup_pandas")


def reading_cost(people: int, rate: float = DOCUMENTED_RATE) -> str:
    """What reading ``people`` costs, said before reading.

    >>> reading_cost(2345)
    'reading 2,345 people from Flameup: 2,345 requests, about 20 min at 120 a minute'
    """
    return (
        f"reading {people:,} people from Flameup: {people:,} requests, "
        f"about {duration(60 * people / rate)} at {rate:g} a minute"
    )


def listing_cost(people: int, held: int, rate: float = DOCUMENTED_RATE) -> str:
    """What reading ``people`` through the listing of the ``held`` people Flameup holds costs.

    >>> listing_cost(2345, 3000).partition(": ")[2]
    '30 requests (100 people a page) instead of 2,345, about 15 s at 120 a minute'
    """
    pages = max(1, math.ceil(held / PAGE_SIZE))
    return (
        f"reading {people:,} people from Flameup through its listing of {held:,} people: "
        f"{pages:,} request{'s' if pages > 1 else ''} ({PAGE_SIZE} people a page) instead "
        f"of {people:,}, about {duration(60 * pages / rate)} at {rate:g} a minute"
    )


def compare_with_flameup(
    planned: pd.DataFrame, sent: list[tuple[Hashable, dict[str, Any]]], delivery: Delivery
) -> pd.DataFrame:
    """``planned`` with the people of ``sent`` (label, person) compared with what Flameup holds
    (one not held becomes ``create``); other rows keep the state's changes."""
    logger.warning(
        "plan against Flameup: %s%s",
        reading_cost(len(sent)),
        ", or fewer through the listing (its first page tells)" if len(sent) > 1 else "",
    )
    result = planned.copy(deep=False)
    names = ("flameup_action", "flameup_changes", "flameup_before", "flameup_after")
    unknown = np.full(len(planned), None, dtype=object)
    actions, changes, before, after = (
        result[name].to_numpy(dtype=object, copy=True) if name in result else unknown.copy()
        for name in names
    )
    positions = planned.index.get_indexer(pd.Index([label for label, _ in sent]))
    with contextlib.closing(delivery.open()) as sender:
        found = _held_people(sender.deliverer, [person for _, person in sent])
    for position, (_, person), held in zip(positions.tolist(), sent, found, strict=True):
        if held is None:
            actions[position] = "create"
        before[position], after[position] = _differences(person, held)
        changes[position] = list(after[position])
    for name, values in zip(names, (actions, changes, before, after), strict=True):
        result[name] = pd.Series(values, index=planned.index, dtype=object)
    return result


def _held_people(deliverer: Deliverer, people: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """What Flameup holds for each person (None: not held), read whichever way is cheaper."""
    if len(people) <= 1:  # one GET is never dearer than a page that prices the listing
        return [_read(deliverer, person) for person in people]
    pages = PeopleReader(deliverer).pages()
    first = next(pages)
    rest = max(0, math.ceil(first.total / PAGE_SIZE) - 1)
    if rest >= len(people):
        logger.warning(
            "plan against Flameup: the listing's first page says Flameup holds %s people; "
            "%s more requests, one a person (the rest of the listing would take %s): %s in all",
            f"{first.total:,}",
            f"{len(people):,}",
            f"{rest:,}",
            f"{len(people) + 1:,}",
        )
        return [_read(deliverer, person) for person in people]
    logger.warning("plan against Flameup: %s", listing_cost(len(people), first.total))
    by_id: dict[str, dict[str, Any]] = {}
    by_email: dict[str, dict[str, Any]] = {}
    for page in itertools.chain([first], pages):
        for held in page.people:
            if held.get("external_id") is not None:
                by_id.setdefault(str(held["external_id"]), held)
            if held.get("email"):
                by_email.setdefault(str(held["email"]).lower(), held)
    return [_match(person, by_id, by_email) for person in people]


def _match(
    person: dict[str, Any], by_id: dict[str, dict[str, Any]], by_email: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """The listed person a person sent would reach: by userId, else by email, as a GET would."""
    if person.get("userId") is not None:
        return by_id.get(str(person["userId"]))
    email = person.get("email")
    return None if email is None else by_email.get(str(email).lower())


def _read(deliverer: Deliverer, person: dict[str, Any]) -> dict[str, Any] | None:
    """What Flameup holds for ``person`` (None: not held), read by its userId, else email."""
    path = "/people/" + path_segment(str(person.get("userId") or person.get("email")))

    def readable(answer: Answer) -> bool:
        return is_person_answer(answer) or (answer.status == 404 and is_error_answer(answer))

    try:
        answer = deliverer.request(
            lambda: deliverer.client.request("GET", path), f"GET {path}", readable
        )
    except GaveUp as exc:
        raise exc.error(f"GET {path}") from None
    if answer.status == 404:
        return None
    if not answer.ok:
        raise answer.error()
    return read_person(answer.body)


def _differences(
    person: dict[str, Any], held: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after) of each field sent that Flameup holds otherwise (a known trait top-level)."""
    top = held or {}
    attributes = top.get("attributes") or {}
    sent = [(k, v, top) for k, v in person.items() if k not in ("traits", "userId")]
    traits = (person.get("traits") or {}).items()
    sent += [(k, v, top if k in KNOWN_TRAITS else attributes) for k, v in traits]
    olds: dict[str, Any] = {}
    news: dict[str, Any] = {}
    for name, value, holder in sent:
        old = holder.get(name)
        if held is None or not _same(old, value):
            olds[name], news[name] = old, value
    return olds, news


def _same(old: Any, new: Any) -> bool:
    if isinstance(new, Decimal) and isinstance(old, int | float) and not isinstance(old, bool):
        return bool(Decimal(str(old)) == new)
    if isinstance(new, float) and isinstance(old, int | float) and not isinstance(old, bool):
        return bool(np.isclose(old, new, rtol=0, atol=0))
    return bool(old == new)
