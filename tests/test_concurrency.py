"""InFlight: how many requests may be in flight at once (AIMD), on a fake clock; then the
deliverer against the local server with latency, and one that sheds load above six at once."""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd

import flameup_pandas  # noqa: F401  (registers df.flameup)
from flameup_pandas import RetryPolicy
from flameup_pandas._send.pacing import MAX_IN_FLIGHT, START, InFlight, Slot
from flameup_pandas.testing import Faults, FlameupServer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def round_trip(places: InFlight, clock: Clock, latency: float = 0.25) -> int:
    """Fill every place, answer them all healthy ``latency`` later; the limit after."""
    slots = [places.enter() for _ in range(places.limit)]
    clock.now += latency
    for slot in slots:
        places.leave(slot, latency=latency)
    return places.limit


def test_slow_start_doubles_every_round_trip_up_to_the_ceiling() -> None:
    clock = Clock()
    places = InFlight(clock=clock)
    assert places.limit == START == 4
    limits = [round_trip(places, clock) for _ in range(5)]
    assert limits == [8, 16, 32, 32, 32]
    assert places.peak == MAX_IN_FLIGHT


def test_strain_halves_the_limit_once_per_round_trip() -> None:
    clock = Clock()
    places = InFlight(clock=clock)
    for _ in range(3):
        round_trip(places, clock)
    before = places.limit
    slots = [places.enter() for _ in range(before)]
    clock.now += 0.1
    for slot in slots:  # every request of the round trip meets a 503
        places.leave(slot, strain=True)
    assert places.limit == before // 2


def test_after_a_cut_the_limit_grows_by_about_one_place_a_round_trip() -> None:
    clock = Clock()
    places = InFlight(clock=clock)
    for _ in range(2):
        round_trip(places, clock)
    places.leave(places.enter(), strain=True)
    assert places.limit == 8
    clock.now += 1
    assert [round_trip(places, clock) for _ in range(4)] == [8, 9, 10, 11]


def test_latency_rising_sharply_cuts_the_limit() -> None:
    clock = Clock()
    places = InFlight(clock=clock)
    for _ in range(3):
        round_trip(places, clock, latency=0.25)
    before = places.limit
    slots = [places.enter() for _ in range(before)]
    clock.now += 2.0
    for slot in slots:
        places.leave(slot, latency=2.0)
    assert places.limit < before


def test_latency_that_varies_without_rising_sharply_cuts_nothing() -> None:
    clock = Clock()
    places = InFlight(clock=clock)
    for latency in (0.25, 0.3, 0.22, 0.35, 0.26, 0.4):
        round_trip(places, clock, latency=latency)
    assert places.limit == MAX_IN_FLIGHT


def test_a_limit_not_in_use_does_not_grow() -> None:
    """One request at a time (the rate budget or the work holds the run back): no growth."""
    clock = Clock()
    places = InFlight(clock=clock)
    for _ in range(20):
        slot = places.enter()
        clock.now += 0.25
        places.leave(slot, latency=0.25)
    assert places.limit == START


def test_answers_to_requests_sent_before_a_cut_do_not_grow_or_cut_it() -> None:
    clock = Clock()
    places = InFlight(clock=clock)
    early = [places.enter() for _ in range(4)]
    clock.now += 0.1
    places.leave(early[0], strain=True)
    for slot in early[1:]:
        places.leave(slot, strain=True)
    assert places.limit == 2


def test_a_fixed_concurrency_never_changes() -> None:
    clock = Clock()
    places = InFlight(7, clock=clock)
    for _ in range(5):
        round_trip(places, clock)
    places.leave(places.enter(), strain=True)
    assert places.limit == 7 and places.fixed == 7


def test_a_request_waits_for_a_place_and_a_stop_ends_the_wait() -> None:
    places = InFlight(1)
    held = places.enter()
    got: list[Slot | None] = []
    waiter = threading.Thread(target=lambda: got.append(places.enter()), daemon=True)
    waiter.start()
    waiter.join(timeout=0.3)
    assert waiter.is_alive() and places.in_flight == 1
    places.leave(held, latency=0.1)
    waiter.join(timeout=5)
    assert got and got[0] is not None and places.in_flight == 1
    stop = threading.Event()
    stopped: list[Slot | None] = []
    other = threading.Thread(target=lambda: stopped.append(places.enter(stop)), daemon=True)
    other.start()
    stop.set()
    places.wake()
    other.join(timeout=5)
    assert stopped == [None] and places.in_flight == 1


# -- against the local server -----------------------------------------------------------------


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"userId": [f"u{i:05d}" for i in range(n)], "plan": ["pro"] * n})


def where(server: FlameupServer, **extra: Any) -> dict[str, Any]:
    return {"api_key": server.api_key, "base_url": server.base_url, "progress": False, **extra}


def test_with_latency_the_default_puts_more_requests_in_flight_within_the_budget() -> None:
    """0.25 s a request at Flameup's 120 a minute, 100 requests in a fresh window: the budget
    allows them all at once, so the run grows past the four it used to keep in flight."""
    faults = Faults(latency=0.25)
    with FlameupServer(faults=faults) as server:
        result = frame(10_000).flameup.upsert(**where(server))
        summary = result.flameup.summary().to_dict()
        assert (result["flameup_status"] == "created").all()
        assert server.request_count(status=429) == 0
    assert 4 < summary["in_flight"] <= MAX_IN_FLIGHT  # (a busy machine slows the growth)
    assert summary["concurrency"] == "adaptive"


def test_concurrency_n_fixes_the_number_in_flight() -> None:
    with FlameupServer(faults=Faults(latency=0.1)) as server:
        result = frame(3_000).flameup.upsert(**where(server, concurrency=3))
        summary = result.flameup.summary().to_dict()
    assert summary["in_flight"] == 3 and summary["concurrency"] == 3


def test_a_server_shedding_load_above_six_gets_few_503s_and_loses_nothing() -> None:
    faults = Faults(overload_above=6, latency=0.1)
    retry = RetryPolicy(backoff_factor=0.05, backoff_max=0.2)
    with FlameupServer(faults=faults) as server:
        result = frame(6_000).flameup.upsert(**where(server, retry=retry))
        assert (result["flameup_status"] == "created").all()
        assert len(server.people()) == 6_000
        # A sender that kept 32 in flight would have most of its requests shed; backing off
        # at each 503 keeps it to a few (6 of 66 is usual; a loaded machine's stalls add one
        # or two, so the bound is 15%).
        shed = server.request_count(status=503)
        assert shed <= 0.15 * server.request_count()
