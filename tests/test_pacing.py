"""RateLimiter and shared_limiter: budget pacing, tested on fake clocks (no real sleeping)."""

from __future__ import annotations

import email.utils
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flameup_pandas._send.pacing import MAX_WAIT, RateLimiter, shared_limiter
from flameup_pandas._send.retry import RetryPolicy
from flameup_pandas.testing._ratelimit import RateLimiter as ServerLimiter

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

    def limiter(self, rate: float | None = None, **options: Any) -> RateLimiter:
        return RateLimiter(rate, clock=self.clock, wall=self.wall, sleep=self.sleep, **options)


WALL0 = int(START + WALL_OFFSET)  # the fake wall clock at START, a whole second


def _says(remaining: Any, reset_at: Any, limit: Any = None) -> dict[str, str]:
    """Rate headers; ``reset_at`` in seconds after START (ints), or a raw header value (str)."""
    reset = reset_at if isinstance(reset_at, str) else str(WALL0 + reset_at)
    headers = {"X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": reset}
    if limit is not None:
        headers["X-RateLimit-Limit"] = str(limit)
    return headers


def _go(fake: FakeTime, limiter: RateLimiter) -> float:
    """Acquire; the start time, in seconds after START."""
    limiter.acquire()
    return fake.thread_now() - START


def _simulate(
    fake: FakeTime, limiter: RateLimiter, server: ServerLimiter, n: int
) -> tuple[list[float], int]:
    """``n`` requests one after another, each answered at once by ``server``'s policy (as the
    deliverer does: observe every answer, hold after a 429). Start times and 429s."""
    starts: list[float] = []
    refused = 0
    while len(starts) < n:
        at = _go(fake, limiter)
        state = server.check(0)
        assert state is not None
        limiter.observe(state.headers())
        if state.allowed:
            starts.append(at)
        else:
            refused += 1
            limiter.hold_until(state.reset + 1.0)  # RetryPolicy: Reset plus its 1 s margin
    return starts, refused


def _in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(target()), daemon=True)
    thread.start()
    return thread, out


def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition not reached in 5 s")


# -- the budget --------------------------------------------------------------------------------


def test_the_budget_the_server_announces_is_spent_at_once() -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    assert _go(fake, limiter) == 0.0
    limiter.observe(_says(9, 2, limit=10))
    assert [_go(fake, limiter) for _ in range(9)] == [0.0] * 9
    assert limiter.in_flight == 9
    for _ in range(9):
        limiter.observe(_says(0, 2, limit=10))
    assert limiter.in_flight == 0
    assert limiter.acquire() == pytest.approx(2.0)  # spent: the next waits for the window's end


def test_requests_in_flight_count_against_the_budget_until_answered() -> None:
    fake = FakeTime()
    limiter = fake.limiter(max_wait=3.0)
    limiter.observe(_says(2, 3))
    assert [_go(fake, limiter) for _ in range(2)] == [0.0, 0.0]
    waiter, out = _in_thread(lambda: _go(fake, limiter))
    _until(lambda: waiter.is_alive())
    limiter.release()  # one of the two got no answer: its place in the budget comes back
    waiter.join(timeout=5)
    assert out == [0.0]


def test_an_answer_about_a_newer_window_wakes_a_waiting_sender() -> None:
    fake = FakeTime()
    limiter = fake.limiter(max_wait=3.0)
    limiter.observe(_says(3, 3))
    for _ in range(3):
        limiter.acquire()
    waiter, out = _in_thread(lambda: _go(fake, limiter))
    _until(lambda: waiter.is_alive())
    limiter.observe(_says(5, 4))  # a token bucket refilled: 5 left, 2 of ours still out
    waiter.join(timeout=5)
    assert out == [0.0]
    assert limiter.in_flight == 3


def test_out_of_order_answers_keep_the_lowest_remaining_of_the_newest_window() -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    limiter.observe(_says(3, 30))
    limiter.observe(_says(40, 30))  # an older answer about the same window
    limiter.observe(_says(90, 10))  # an answer about the window before
    assert limiter.window is not None and limiter.window.remaining == 3
    assert [_go(fake, limiter) for _ in range(3)] == [0.0] * 3
    for _ in range(3):
        limiter.observe(_says(0, 30))
    assert _go(fake, limiter) == pytest.approx(30.0)


def test_the_window_length_is_learned_from_reset_never_assumed() -> None:
    """10 per 2 s: 40 requests in four windows, 6 s, where a 60 s window would take 180 s."""
    fake = FakeTime()
    server = ServerLimiter(10, 2.0, "fixed", clock=fake.wall)
    starts, refused = _simulate(fake, fake.limiter(), server, 40)
    assert refused == 0
    assert starts[-1] == pytest.approx(6.0)


def test_after_a_window_ends_one_request_goes_first_and_its_answer_tells_the_rest() -> None:
    fake = FakeTime()
    limiter = fake.limiter(max_wait=5.0)
    limiter.observe(_says(0, 2))
    first, first_out = _in_thread(lambda: _go(fake, limiter))
    _until(lambda: limiter.in_flight == 1)  # the probe is out, at the window's end
    second, second_out = _in_thread(lambda: _go(fake, limiter))
    threading.Event().wait(0.1)
    assert limiter.in_flight == 1  # the second waits for the probe's answer
    limiter.observe(_says(8, 4))
    for thread in (first, second):
        thread.join(timeout=5)
    assert first_out == [pytest.approx(2.0)]
    assert second_out == [pytest.approx(2.0)]


@pytest.mark.parametrize(
    ("policy", "floor"),
    [("fixed", 6.0), ("sliding", 6.0), ("bucket", 6.0)],
)
def test_every_server_policy_is_read_without_a_429(policy: Any, floor: float) -> None:
    """40 requests at 10 per 2 s, answered in order: zero 429s, within 1.5x the policy's floor
    (10 at once, then 10 a window: 6 s for the last one)."""
    fake = FakeTime()
    server = ServerLimiter(10, 2.0, policy, clock=fake.wall)
    starts, refused = _simulate(fake, fake.limiter(), server, 40)
    assert refused == 0
    assert floor <= starts[-1] <= 1.5 * floor


def test_a_bucket_half_drained_by_someone_else_is_shared_not_overrun() -> None:
    fake = FakeTime()
    server = ServerLimiter(10, 2.0, "bucket", clock=fake.wall)
    for _ in range(6):
        server.check(0)  # another process on the same key
    starts, refused = _simulate(fake, fake.limiter(), server, 20)
    assert refused == 0
    assert starts[-1] <= 1.5 * 4.0  # 4 left at once, then 10 every 2 s


# -- no word from the server, and our own cap ------------------------------------------------


def test_before_any_answer_the_documented_120_per_60_s_is_assumed() -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    grants = []
    for _ in range(121):
        grants.append(_go(fake, limiter))
        limiter.observe({})  # a server that sends no rate headers
    assert grants[:120] == [0.0] * 120
    assert grants[120] == pytest.approx(60.0)


def test_a_server_that_stops_sending_headers_falls_back_to_the_documented_budget() -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    limiter.observe(_says(0, 5))
    assert _go(fake, limiter) == pytest.approx(5.0)
    limiter.observe({"Content-Type": "application/json"})
    assert limiter.window is None
    assert [_go(fake, limiter) for _ in range(3)] == [pytest.approx(5.0)] * 3


def test_a_rate_limit_caps_ours_in_any_60_s_as_a_sliding_window() -> None:
    fake = FakeTime()
    limiter = fake.limiter(30)
    limiter.observe(_says(10_000, 100))
    grants = [_go(fake, limiter) for _ in range(10)]
    fake.advance(30.0)
    grants += [_go(fake, limiter) for _ in range(20)]
    grants += [_go(fake, limiter) for _ in range(11)]
    assert grants[:10] == [0.0] * 10
    assert grants[10:30] == [30.0] * 20
    assert grants[30:40] == [pytest.approx(60.0)] * 10  # the first ten have left the 60 s
    assert grants[40] == pytest.approx(90.0)


def test_a_fractional_rate_limit_keeps_its_average() -> None:
    fake = FakeTime()
    limiter = fake.limiter(2.5)  # 2 in any 48 s
    limiter.observe(_says(10_000, 100))
    assert [_go(fake, limiter) for _ in range(5)] == pytest.approx([0, 0, 48, 48, 96])


def test_the_server_budget_binds_even_under_a_higher_cap() -> None:
    fake = FakeTime()
    limiter = fake.limiter(600)
    limiter.observe(_says(0, 7))
    assert _go(fake, limiter) == pytest.approx(7.0)


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_rate_must_be_positive_and_finite(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_per_minute"):
        RateLimiter(rate)


# -- 429s ----------------------------------------------------------------------------------------


def test_a_hold_stops_every_sender() -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    limiter.observe(_says(100, 60))
    limiter.hold_until(WALL0 + 12.0)
    assert [_go(fake, limiter) for _ in range(3)] == [pytest.approx(12.0)] * 3
    assert not limiter.conservative
    fresh = FakeTime()
    late = fresh.limiter()
    late.hold_until(WALL0 - 100.0)  # a hold already over delays nothing
    assert _go(fresh, late) == 0.0


def test_a_429_storm_in_one_hold_is_not_a_recurrence_but_a_second_hold_is() -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    for _ in range(4):  # four answers of one burst, all refused
        limiter.hold_until(WALL0 + 3.0)
    assert not limiter.conservative
    assert _go(fake, limiter) == pytest.approx(3.0)
    limiter.hold_until(WALL0 + 5.0)
    assert limiter.conservative


def test_recurring_429s_pace_the_rest_of_the_run_evenly_over_the_window() -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    limiter.observe(_says(9, 2, limit=10))  # teaches a 2 s window of 10
    limiter.hold_until(WALL0 + 0.0)
    limiter.hold_until(WALL0 + 0.5)  # the first hold had ended: a recurrence
    assert limiter.conservative
    grants = []
    for _ in range(5):
        grants.append(_go(fake, limiter))
        limiter.release()
    # Limit per learned window: 10 per 2 s, 0.2 s apart (the 9 left would allow 0.17 s)
    assert grants == pytest.approx([0.5, 0.7, 0.9, 1.1, 1.3])


def test_conservative_pace_spreads_a_low_budget_over_the_time_left() -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    limiter.observe(_says(2, 10, limit=100))
    limiter.hold_until(WALL0 + 0.0)
    limiter.hold_until(WALL0 + 0.0)
    grants = []
    for _ in range(3):
        grants.append(_go(fake, limiter))
        limiter.release()
    # No answer has spent the 2 left (each request was lost): each next start waits the
    # time left over those 2, 10/2 s after the first, then 5/2 s after the second.
    assert grants == pytest.approx([0.0, 5.0, 7.5])


def test_a_new_run_starts_without_the_last_runs_429s_unless_one_is_sending() -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    limiter.hold_until(WALL0 + 0.0)
    limiter.hold_until(WALL0 + 1.0)
    limiter.acquire()
    limiter.new_run()
    assert limiter.conservative  # a request of the other run is in flight
    limiter.release()
    limiter.new_run()
    assert not limiter.conservative


# -- a server on another clock ------------------------------------------------------------------


def _simulate_on_clock(
    fake: FakeTime, limiter: RateLimiter, offset: float, n: int, *, date: bool = True
) -> tuple[list[float], int]:
    """``n`` requests under 10 per 5 s fixed windows, against a server whose clock is
    ``offset`` seconds ahead of ours, each answered at once with its ``Date`` (as the
    deliverer does: observe every answer, hold after a 429 for the wait its headers ask).
    Start times and 429s."""
    server = ServerLimiter(10, 5.0, "fixed", clock=lambda: fake.wall() + offset)
    starts: list[float] = []
    refused = 0
    while len(starts) < n:
        at = _go(fake, limiter)
        state = server.check(0)
        assert state is not None
        headers = state.headers()
        if date:
            headers["Date"] = email.utils.formatdate(fake.wall() + offset, usegmt=True)
        limiter.observe(headers)
        if state.allowed:
            starts.append(at)
        else:
            refused += 1
            wait = RetryPolicy().rate_limit_wait(headers, limiter.server_time())
            limiter.hold_until(fake.wall() + wait)
    return starts, refused


@pytest.mark.parametrize("offset", [-30.0, -3.5, 0.0, 0.4, 3.5, 30.0])
def test_reset_is_read_on_the_servers_clock_from_its_date(offset: float) -> None:
    """40 requests under 10 per 5 s: the last starts 15 s after the first when the clocks
    agree, and within a second more per window when they do not (a Date's whole seconds leave
    that much doubt, resolved on the late side), never with a 429. Before: 105 s when the
    server was 30 s ahead, and a storm of 429s when it was behind."""
    fake = FakeTime()
    starts, refused = _simulate_on_clock(fake, fake.limiter(), offset, 40)
    assert refused == 0
    assert 15.0 - 1e-6 <= starts[-1] <= 18.0 + 1e-6


def test_without_a_date_a_server_ahead_is_waited_for_as_before() -> None:
    fake = FakeTime()
    starts, refused = _simulate_on_clock(fake, fake.limiter(), 30.0, 20, date=False)
    assert refused == 0
    assert starts[-1] == pytest.approx(35.0, abs=1.0)  # Reset read on our clock: 30 s late


def test_one_odd_date_moves_nothing() -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    for _ in range(5):
        limiter.acquire()
        limiter.observe({"Date": email.utils.formatdate(fake.wall() + 30.0)}, elapsed=0.0)
    limiter.acquire()
    limiter.observe({"Date": email.utils.formatdate(fake.wall() - 86_400.0)})  # a cache's
    assert limiter.server_time() == pytest.approx(fake.wall() + 30.0, abs=1.0)


def test_dates_within_their_one_second_resolution_leave_our_clock_as_it_is() -> None:
    fake = FakeTime(START + 0.7)
    limiter = fake.limiter()
    for elapsed in (0.05, 0.3, 0.2):
        limiter.acquire()
        limiter.observe({"Date": email.utils.formatdate(fake.wall())}, elapsed=elapsed)
        fake.advance(0.4)
    assert limiter.server_time() == fake.wall()


@pytest.mark.parametrize("date", ["yesterday", "", "Mon, 99 Foo 2024 25:61:61 GMT", "1e400"])
def test_an_unreadable_date_is_ignored(date: str) -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    limiter.observe({"Date": date})
    assert limiter.server_time() == fake.wall()


# -- garbled headers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        _says("lots", 30),
        _says(-3, 30),
        _says("nan", 30),
        _says("inf", 30),
        _says("1e400", 30),
        _says(0, "yesterday"),
        _says(0, "-5"),
        _says(0, "nan"),
        _says(0, "1e400"),
        _says(0, -100),  # Reset in the past
        _says(0, 0),  # Reset now
        {"X-RateLimit-Limit": "0", "X-RateLimit-Remaining": "0"},
        {"X-RateLimit-Limit": "-1"},
        {"X-RateLimit-Remaining": "5"},  # no Reset: no telling when the budget comes back
        {"X-RateLimit-Reset": str(WALL0 + 30)},
    ],
)
def test_unreadable_headers_are_ignored_as_if_absent(headers: dict[str, str]) -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    limiter.observe(headers)
    assert limiter.window is None
    assert _go(fake, limiter) == 0.0


@pytest.mark.parametrize("reset", ["99999999999", str(WALL0 + 10**9), "3000000000.5"])
def test_a_reset_centuries_ahead_never_holds_longer_than_max_wait(reset: str) -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    limiter.observe(_says(0, reset))
    assert _go(fake, limiter) == pytest.approx(MAX_WAIT)
    limiter.observe(_says(0, reset))
    limiter.hold_until(WALL0 + 10.0**12)
    assert limiter.acquire() == pytest.approx(MAX_WAIT)


def test_after_a_reset_centuries_ahead_sane_answers_are_read_again() -> None:
    fake = FakeTime()
    limiter = fake.limiter()
    limiter.observe(_says(0, "99999999999"))
    assert _go(fake, limiter) == pytest.approx(MAX_WAIT)
    limiter.observe(_says(50, 180))  # the probe's answer: a window ending 60 s from now
    assert limiter.window is not None and limiter.window.remaining == 50
    assert [_go(fake, limiter) for _ in range(5)] == [pytest.approx(MAX_WAIT)] * 5


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.floats(0.0, 3.0), st.integers(-5, 400), st.integers(-90, 90)),
        st.tuples(st.just("garbled"), st.floats(0.0, 3.0), st.text(max_size=8)),
        st.tuples(st.just("lost"), st.floats(0.0, 3.0)),
        st.tuples(st.just("hold"), st.floats(-10.0, 1e6)),
    ),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(cap=st.integers(1, 300), ops=_OPS, start=st.floats(0.0, 1e7))
# Found in CI: a sleep's float rounding put the second start 59.99999999999999 s after the first.
@example(
    cap=1,
    ops=[("send", 1.000000000000007, 0, 0), ("send", 0.0, 0, 0), ("garbled", 0.0, "")],
    start=0.0,
)
def test_whatever_the_server_says_the_cap_holds_and_no_wait_exceeds_max_wait(
    cap: int, ops: list[tuple[Any, ...]], start: float
) -> None:
    fake = FakeTime(start)
    limiter = fake.limiter(cap)
    grants: list[float] = []
    for op in ops:
        if op[0] == "hold":
            limiter.hold_until(fake.wall() + float(op[1]))
            continue
        fake.advance(float(op[1]))
        assert limiter.acquire() <= MAX_WAIT + 1e-6
        grants.append(fake.thread_now())
        if op[0] == "send":
            reset = str(int(fake.wall()) + int(op[3]))
            limiter.observe({"X-RateLimit-Remaining": str(op[2]), "X-RateLimit-Reset": reset})
        elif op[0] == "garbled":
            limiter.observe({"X-RateLimit-Remaining": op[2], "X-RateLimit-Reset": op[2]})
        else:
            limiter.release()
    assert grants == sorted(grants)
    for first, later in zip(grants, grants[cap:], strict=False):
        assert later - first >= 60.0


# -- threads and the lock ------------------------------------------------------------------------


def _blocking_sleep(
    fake: FakeTime, entered: threading.Event, release: threading.Event
) -> Callable[[float], None]:
    """A sleep that signals ``entered`` and then blocks until ``release`` is set."""

    def sleep(seconds: float) -> None:
        entered.set()
        assert release.wait(timeout=5)
        fake.sleep(seconds)

    return sleep


def test_a_sleeping_caller_does_not_hold_the_lock_and_obeys_a_hold_on_waking() -> None:
    fake = FakeTime()
    entered, release = threading.Event(), threading.Event()
    limiter = RateLimiter(
        1, clock=fake.clock, wall=fake.wall, sleep=_blocking_sleep(fake, entered, release)
    )
    limiter.acquire()  # at once: no sleep
    limiter.release()
    sleeper, out = _in_thread(lambda: (limiter.acquire(), fake.thread_now() - START))
    assert entered.wait(timeout=5)  # it sleeps towards +60 s (one a minute)
    # While that caller sleeps, everything else still gets the lock.
    limiter.observe(_says(5, 30))
    limiter.hold_until(WALL0 + 80.0)
    release.set()
    sleeper.join(timeout=5)
    assert out == [(pytest.approx(80.0), pytest.approx(80.0))]


def test_concurrent_senders_share_one_budget() -> None:
    fake = FakeTime()
    limiter = fake.limiter(max_wait=5.0)
    limiter.observe(_says(40, 4))
    started: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            at = _go(fake, limiter)
            with lock:
                started.append(at)
            limiter.observe(_says(0, 4))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(started) == 80
    # the lowest Remaining wins: once an answer says 0, the rest wait for the reset
    assert sum(at == 0.0 for at in started) <= 40
    assert all(at == 0.0 or at == pytest.approx(4.0) for at in started)


# -- one limiter per key -------------------------------------------------------------------------


def test_shared_limiter_is_one_per_key() -> None:
    key_a, key_b = "a" * 64, "b" * 64
    first = shared_limiter(key_a, 120)
    assert shared_limiter(key_a, 120) is first
    assert shared_limiter(key_b, 120) is not first


def test_shared_limiter_updates_the_cap() -> None:
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
