"""RateLimiter and shared_limiter: even pacing that obeys the server, tested on fake clocks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flameup_pandas._pacing import RateLimiter, shared_limiter

START = 1_000.0
WALL_OFFSET = 1_700_000_000.0 - START  # wall = monotonic + offset, a whole second at START


class FakeTime:
    """Monotonic and wall clocks that move only when someone sleeps; safe across threads.

    Each thread keeps its own "now" (what it last read plus what it slept since), and a sleep
    moves the shared clock to the latest wake-up time, as real parallel sleepers would.
    """

    def __init__(self, start: float = START) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._local = threading.local()

    def clock(self) -> float:
        with self._lock:
            self._local.now = self._now
            return self._now

    def wall(self) -> float:
        return self.clock() + WALL_OFFSET

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        with self._lock:
            woke = getattr(self._local, "now", self._now) + seconds
            self._local.now = woke
            self._now = max(self._now, woke)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def thread_now(self) -> float:
        """When the calling thread last looked or woke up: its grant time after acquire()."""
        return float(self._local.now)

    def limiter(self, rate: float | None = 120) -> RateLimiter:
        return RateLimiter(rate, clock=self.clock, wall=self.wall, sleep=self.sleep)


def _grants(fake: FakeTime, limiter: RateLimiter, n: int) -> list[float]:
    out = []
    for _ in range(n):
        limiter.acquire()
        out.append(fake.thread_now() - START)
    return out


def _reset_in(seconds: int, **extra: str) -> dict[str, str]:
    return {"X-RateLimit-Reset": str(int(START + WALL_OFFSET) + seconds), **extra}


def test_first_request_starts_at_once_then_spaced_at_60_over_rate() -> None:
    fake = FakeTime()
    limiter = fake.limiter(120)
    waits = [limiter.acquire() for _ in range(4)]
    assert waits[0] == 0.0
    assert waits[1:] == pytest.approx([0.5, 0.5, 0.5], abs=1e-5)


def test_spacing_follows_the_rate() -> None:
    fake = FakeTime()
    grants = _grants(fake, fake.limiter(3000), 5)
    assert grants == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08], abs=1e-5)


def test_idle_time_is_not_saved_up_for_a_burst() -> None:
    fake = FakeTime()
    limiter = fake.limiter(60)
    limiter.acquire()
    fake.advance(30.0)
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(1.0, abs=1e-5)


def test_remaining_zero_waits_until_reset() -> None:
    fake = FakeTime()
    limiter = fake.limiter(120)
    limiter.observe(_reset_in(30, **{"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "120"}))
    assert limiter.acquire() == pytest.approx(30.0)
    assert limiter.acquire() == pytest.approx(0.5, abs=1e-5)


def test_low_remaining_spreads_what_is_left_over_the_window() -> None:
    fake = FakeTime()
    limiter = fake.limiter(120)
    limiter.observe(_reset_in(30, **{"X-RateLimit-Remaining": "5"}))
    grants = _grants(fake, limiter, 7)
    # Five requests over the 30 s left, then the normal pace once the window has reset.
    assert grants == pytest.approx([0.0, 6.0, 12.0, 18.0, 24.0, 30.0, 30.5], abs=1e-4)


def test_ample_remaining_keeps_the_normal_pace() -> None:
    fake = FakeTime()
    limiter = fake.limiter(120)
    limiter.observe(_reset_in(30, **{"X-RateLimit-Remaining": "100"}))
    assert _grants(fake, limiter, 3) == pytest.approx([0.0, 0.5, 1.0], abs=1e-5)


def test_remaining_exactly_enough_for_our_pace_does_not_slow_us() -> None:
    fake = FakeTime()
    limiter = fake.limiter(120)
    limiter.observe(_reset_in(30, **{"X-RateLimit-Remaining": "60"}))
    assert _grants(fake, limiter, 3) == pytest.approx([0.0, 0.5, 1.0], abs=1e-5)


def test_out_of_order_answers_keep_the_lowest_remaining_of_a_window() -> None:
    fake = FakeTime()
    limiter = fake.limiter(120)
    limiter.observe(_reset_in(30, **{"X-RateLimit-Remaining": "3"}))
    limiter.observe(_reset_in(30, **{"X-RateLimit-Remaining": "40"}))  # an older answer
    limiter.observe(_reset_in(10, **{"X-RateLimit-Remaining": "90"}))  # the previous window
    assert _grants(fake, limiter, 3) == pytest.approx([0.0, 10.0, 20.0], abs=1e-4)


def test_a_lower_server_limit_is_adopted_and_a_higher_one_ignored() -> None:
    fake = FakeTime()
    limiter = fake.limiter(120)
    limiter.observe({"X-RateLimit-Limit": "500"})
    assert limiter.rate_per_minute == 120
    limiter.observe({"x-ratelimit-limit": "60"})
    assert limiter.rate_per_minute == 60
    assert _grants(fake, limiter, 3) == pytest.approx([0.0, 1.0, 2.0], abs=1e-5)


def test_garbage_headers_are_ignored() -> None:
    fake = FakeTime()
    limiter = fake.limiter(120)
    limiter.observe(
        {"X-RateLimit-Limit": "lots", "X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "x"}
    )
    assert limiter.rate_per_minute == 120
    assert _grants(fake, limiter, 2) == pytest.approx([0.0, 0.5], abs=1e-5)


def test_hold_until_delays_every_start() -> None:
    fake = FakeTime()
    limiter = fake.limiter(120)
    limiter.acquire()
    limiter.hold_until(fake.wall() + 12.0)
    assert limiter.acquire() == pytest.approx(12.0)
    limiter.hold_until(fake.wall() - 100.0)  # a hold in the past changes nothing
    assert limiter.acquire() == pytest.approx(0.5, abs=1e-5)


def test_none_rate_does_not_pace_but_obeys_the_server() -> None:
    fake = FakeTime()
    limiter = fake.limiter(None)
    assert limiter.rate_per_minute is None
    assert [limiter.acquire() for _ in range(50)] == [0.0] * 50
    limiter.hold_until(fake.wall() + 5.0)
    assert limiter.acquire() == pytest.approx(5.0)
    limiter.observe(_reset_in(60, **{"X-RateLimit-Remaining": "0"}))
    assert limiter.acquire() == pytest.approx(55.0)


def test_none_rate_spreads_a_low_remaining() -> None:
    fake = FakeTime()
    limiter = fake.limiter(None)
    limiter.observe(_reset_in(10, **{"X-RateLimit-Remaining": "4"}))
    assert _grants(fake, limiter, 4) == pytest.approx([0.0, 2.5, 5.0, 7.5])


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_rate_must_be_positive_and_finite(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_per_minute"):
        RateLimiter(rate)


def test_concurrent_acquires_get_evenly_spaced_grants() -> None:
    fake = FakeTime()
    limiter = fake.limiter(600)
    grants: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            limiter.acquire()
            with lock:
                grants.append(fake.thread_now() - START)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(grants) == 80
    assert sorted(grants) == pytest.approx([0.1 * k for k in range(80)], abs=1e-4)


def _blocking_sleep(
    fake: FakeTime, entered: threading.Event, release: threading.Event
) -> Callable[[float], None]:
    """A sleep that signals ``entered`` and then blocks until ``release`` is set."""

    def sleep(seconds: float) -> None:
        entered.set()
        assert release.wait(timeout=5)
        fake.sleep(seconds)

    return sleep


def test_a_sleeping_caller_does_not_hold_the_lock() -> None:
    fake = FakeTime()
    entered, release = threading.Event(), threading.Event()
    limiter = RateLimiter(
        60, clock=fake.clock, wall=fake.wall, sleep=_blocking_sleep(fake, entered, release)
    )
    limiter.acquire()  # at once: no sleep
    sleeper = threading.Thread(target=limiter.acquire)
    sleeper.start()
    assert entered.wait(timeout=5)
    # While that caller sleeps, everything else still gets the lock.
    limiter.observe({"X-RateLimit-Limit": "60"})
    limiter.hold_until(0.0)
    assert limiter.rate_per_minute == 60
    release.set()
    sleeper.join(timeout=5)
    assert not sleeper.is_alive()


def test_a_hold_that_arrives_during_a_sleep_is_obeyed_on_waking() -> None:
    fake = FakeTime()
    entered, release = threading.Event(), threading.Event()
    limiter = RateLimiter(
        60, clock=fake.clock, wall=fake.wall, sleep=_blocking_sleep(fake, entered, release)
    )
    limiter.acquire()
    result: list[float] = []

    def sleeper() -> None:
        result.append(limiter.acquire())
        result.append(fake.thread_now() - START)

    thread = threading.Thread(target=sleeper)
    thread.start()
    assert entered.wait(timeout=5)  # the sleeper has its slot at +1 s and sleeps
    limiter.hold_until(START + WALL_OFFSET + 20.0)
    release.set()
    thread.join(timeout=5)
    assert result == pytest.approx([20.0, 20.0])


def test_shared_limiter_is_one_per_key() -> None:
    key_a, key_b = "a" * 64, "b" * 64
    first = shared_limiter(key_a, 120)
    assert shared_limiter(key_a, 120) is first
    assert shared_limiter(key_b, 120) is not first


def test_shared_limiter_updates_the_rate() -> None:
    key = "c" * 64
    limiter = shared_limiter(key, 120)
    assert shared_limiter(key, 600) is limiter
    assert limiter.rate_per_minute == 600
    shared_limiter(key, None)
    assert limiter.rate_per_minute is None


def test_shared_limiter_refuses_a_raw_api_key() -> None:
    with pytest.raises(ValueError, match="fingerprint") as info:
        shared_limiter("ws_live_acme_x1.0123456789abcdef", 120)
    assert "ws_live" not in str(info.value)


def test_float_rounding_never_squeezes_an_extra_request_into_a_window() -> None:
    """Adding 60/200 two hundred times at this clock reading sums to 59.99999996 s."""
    fake = FakeTime(4_327_670.679050534)
    limiter = fake.limiter(200)
    grants = []
    for _ in range(201):
        limiter.acquire()
        grants.append(fake.thread_now())
    assert grants[200] - grants[0] >= 60.0


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.floats(0.0, 3.0)),
        st.tuples(st.just("observe"), st.integers(0, 400), st.integers(-5, 90)),
        st.tuples(st.just("limit"), st.integers(1, 400)),
        st.tuples(st.just("hold"), st.floats(-10.0, 10.0)),
    ),
    max_size=400,
)


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 300), ops=_OPS, start=st.floats(0.0, 1e7))
def test_no_60_second_window_holds_more_than_the_limit(
    limit: int, ops: list[tuple[Any, ...]], start: float
) -> None:
    """Whatever the callers and the server do, grants at rate L never put L+1 in any 60 s."""
    fake = FakeTime(start)
    limiter = fake.limiter(limit)
    grants: list[float] = []
    for op in ops:
        if op[0] == "acquire":
            fake.advance(float(op[1]))
            limiter.acquire()
            grants.append(fake.thread_now())
        elif op[0] == "observe":
            reset = str(int(fake.wall()) + int(op[2]))
            limiter.observe({"X-RateLimit-Remaining": str(op[1]), "X-RateLimit-Reset": reset})
        elif op[0] == "limit":
            limiter.observe({"X-RateLimit-Limit": str(op[1])})
        else:
            limiter.hold_until(fake.wall() + float(op[1]))
    assert grants == sorted(grants)
    for first, later in zip(grants, grants[limit:], strict=False):
        assert later - first >= 60.0
