"""Reading people back: ``GET /people`` page by page (``limit=100``), the other direction.

Pages go through the deliverer's request loop (shared budget, retries; a 2xx that is not a
page is retried like a 503). Offsets can move while the list is read: when ``total`` shrinks by
``n``, people after a removal moved ``n`` places back, so paging steps back ``n`` and reads
again; additions only push people towards the end. People already read (by ``id``) are dropped,
so each comes once and nobody present throughout is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from .._people.identity import HashRuns, identity_hashes
from .._people.person import read_person
from .client import is_page_answer
from .delivery import Deliverer, GaveUp, auth_error, stop_error

__all__ = ["PAGE_SIZE", "Page", "PeopleReader"]

logger = logging.getLogger("flameup_pandas")

PAGE_SIZE = 100
"""The most people ``GET /people`` returns in one answer."""


@dataclass(frozen=True)
class Page:
    """One ``GET /people`` answer: its people new to this read, how many it held, its total."""

    people: list[dict[str, Any]]
    read: int
    total: int


class PeopleReader:
    """Pages through every person matching ``search`` and ``status``."""

    def __init__(
        self, deliverer: Deliverer, *, search: str | None = None, status: str | None = None
    ) -> None:
        self.deliverer = deliverer
        self.filters = {k: v for k, v in (("search", search), ("status", status)) if v}

    def pages(self, on_total: Callable[[int], None] | None = None) -> Iterator[Page]:
        """Every page in order, each person once; ``on_total`` hears every new total."""
        seen = HashRuns()
        offset, total = 0, None
        while True:
            body = self._get(offset)
            people, now = body["people"], body["total"]
            if now != total and on_total is not None:
                on_total(now)
            if total is not None and now < total and offset > 0:
                logger.info("people total went from %d to %d: re-reading", total, now)
                offset, total = max(0, offset - (total - now)), now
                continue
            total = now
            yield Page(_unseen(people, seen), len(people), total)
            offset += len(people)
            if not people or offset >= total:
                return

    def _get(self, offset: int) -> dict[str, Any]:
        params = {"limit": PAGE_SIZE, "offset": offset, **self.filters}
        try:
            answer = self.deliverer.request(
                lambda: self.deliverer.client.request("GET", "/people", params=params),
                f"people page at offset {offset}",
                is_page_answer,
            )
        except GaveUp as exc:
            raise exc.error(f"GET /people at offset {offset}") from None
        if answer.status in (401, 403):
            raise auth_error(answer, "people:list")
        if not answer.ok:
            raise stop_error(answer, "GET /people")
        return cast(dict[str, Any], answer.body)  # the request loop let through only a page


def _unseen(people: list[Any], seen: HashRuns) -> list[dict[str, Any]]:
    canonical = [read_person(p) for p in people if isinstance(p, dict)]
    hashes = identity_hashes([str(p["id"]) if p.get("id") else None for p in canonical])
    earlier = seen.contains(hashes)
    fresh, ids = [], set()
    for person, key, old in zip(canonical, hashes.tolist(), earlier.tolist(), strict=True):
        if key and (old or key in ids):
            continue
        ids.add(key)
        fresh.append(person)
    seen.add(np.array(sorted(ids - {0}), dtype=np.int64))
    return fresh
