"""A plan against Flameup: read the people a run would send, and compare them field by field.

One ``GET /people/{id}`` a person, through the key's shared budget and the retry policy (the
same request loop as batches and the people reader), so the cost is said first: at Flameup's
documented 120 requests a minute, 2,345 people take about 20 minutes. ``sample=N`` reads only
the first N people a run would send.
"""

from __future__ import annotations

import logging
import math
import urllib.parse
from collections.abc import Hashable
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from .._people.person import KNOWN_TRAITS, read_person
from .._send.client import Answer, error_class, is_error_answer, is_person_answer
from .._send.delivery import GaveUp
from ..exceptions import TransportError
from .options import Delivery

__all__ = ["DOCUMENTED_RATE", "compare_with_flameup", "reading_cost"]

logger = logging.getLogger("flameup_pandas")

DOCUMENTED_RATE = 120  # requests a minute a key may make (Flameup's rate-limit page)


def reading_cost(people: int, rate: float = DOCUMENTED_RATE) -> str:
    """What reading ``people`` costs, said before reading.

    >>> reading_cost(2345)
    'reading 2,345 people from Flameup: 2,345 requests, about 20 minutes at 120 a minute'
    """
    minutes = people / rate
    about = (
        f"{math.ceil(minutes):,} minutes" if minutes >= 1 else f"{math.ceil(people / rate * 60)} s"
    )
    return (
        f"reading {people:,} people from Flameup: {people:,} requests, "
        f"about {about} at {rate:g} a minute"
    )


def compare_with_flameup(
    planned: pd.DataFrame,
    sent: list[tuple[Hashable, dict[str, Any]]],
    delivery: Delivery,
) -> pd.DataFrame:
    """``planned`` with the people of ``sent`` (label, person as sent) read from Flameup.

    For each person read: ``flameup_changes`` becomes the fields whose value Flameup holds
    differently (every field sent, when Flameup does not hold the person: the action becomes
    ``create``), and ``flameup_before``/``flameup_after`` map each of them to the value
    Flameup holds and the value that would be sent. Rows not read keep what the state said
    (before/after from the state's values, where it keeps them).
    """
    logger.warning("plan against Flameup: %s", reading_cost(len(sent)))
    result = planned.copy(deep=False)
    before, after = (
        result[name].to_numpy(dtype=object, copy=True)
        if name in result
        else np.full(len(planned), None, dtype=object)
        for name in ("flameup_before", "flameup_after")
    )
    actions = result["flameup_action"].to_numpy(dtype=object, copy=True)
    changes = result["flameup_changes"].to_numpy(dtype=object, copy=True)
    positions = planned.index.get_indexer(pd.Index([label for label, _ in sent]))
    sender = delivery.open()
    try:
        for position, (_, person) in zip(positions.tolist(), sent, strict=True):
            held = _read(sender.deliverer, sender.client, _identity(person))
            if held is None:
                actions[position] = "create"
            olds, news = _differences(person, held)
            changes[position] = list(news)
            before[position] = olds
            after[position] = news
    finally:
        sender.close()
    result["flameup_action"] = pd.Series(actions, index=planned.index, dtype=object)
    result["flameup_changes"] = pd.Series(changes, index=planned.index, dtype=object)
    result["flameup_before"] = pd.Series(before, index=planned.index, dtype=object)
    result["flameup_after"] = pd.Series(after, index=planned.index, dtype=object)
    return result


def _identity(person: dict[str, Any]) -> str:
    return str(person.get("userId") or person.get("email"))


def _read(deliverer: Any, client: Any, id_or_email: str) -> dict[str, Any] | None:
    path = "/people/" + urllib.parse.quote(id_or_email, safe="")

    def readable(answer: Answer) -> bool:
        return is_person_answer(answer) or (answer.status == 404 and is_error_answer(answer))

    try:
        answer = deliverer.request(lambda: client.request("GET", path), f"GET {path}", readable)
    except GaveUp as exc:
        if exc.answer is None:
            raise TransportError(f"GET {path}: {exc}") from None
        raise error_class(exc.answer.status)(
            f"GET {path}: {exc}", status=exc.answer.status
        ) from None
    if answer.status == 404:
        return None
    if not answer.ok:
        raise answer.error()
    person: dict[str, Any] = read_person(answer.body)
    return person


def _held(held: dict[str, Any], name: str, is_trait: bool) -> Any:
    """The value Flameup holds for a field as it is sent (a trait or a top-level field)."""
    if not is_trait or name in KNOWN_TRAITS:
        return held.get(name)
    return (held.get("attributes") or {}).get(name, _MISSING)


_MISSING = object()


def _differences(
    person: dict[str, Any], held: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after) of every field sent whose value Flameup holds differently."""
    sent = [(k, v, False) for k, v in person.items() if k not in ("traits", "userId")]
    sent += [(k, v, True) for k, v in (person.get("traits") or {}).items()]
    olds: dict[str, Any] = {}
    news: dict[str, Any] = {}
    for name, value, is_trait in sent:
        old = None if held is None else _held(held, name, is_trait)
        if old is _MISSING:
            old = None
        if held is not None and _same(old, value):
            continue
        olds[name], news[name] = old, value
    return olds, news


def _same(old: Any, new: Any) -> bool:
    if isinstance(new, Decimal) and isinstance(old, int | float) and not isinstance(old, bool):
        return bool(Decimal(str(old)) == new)
    if isinstance(new, float) and isinstance(old, int | float) and not isinstance(old, bool):
        return bool(np.isclose(old, new, rtol=0, atol=0))
    return bool(old == new)
