"""The local server's rate policies (fixed, sliding, bucket): Remaining and Reset."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from flameup_pandas.testing import FlameupServer
from flameup_pandas.testing._ratelimit import RateLimiter, RateState

from .conftest import Api

T0 = 1_000.25  # not a whole second, so the rounding of Reset shows


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _limiter(policy: Any, limit: int = 3, window: float = 2.0) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(limit, window, policy, clock=clock), clock


def _seen(state: RateState | None) -> tuple[bool, int, int]:
    assert state is not None
    return state.allowed, state.remaining, state.reset


def test_fixed_window_counts_down_and_resets_at_its_end() -> None:
    limiter, clock = _limiter("fixed")
    end = math.ceil(T0 + 2)
    assert [_seen(limiter.check(0)) for _ in range(4)] == [
        (True, 2, end),
        (True, 1, end),
        (True, 0, end),
        (False, 0, end),
    ]
    clock.now = T0 + 2.0  # the window has ended: a new one opens with this request
    assert _seen(limiter.check(0)) == (True, 2, math.ceil(T0 + 4))


def test_sliding_log_frees_a_slot_when_the_oldest_request_leaves() -> None:
    limiter, clock = _limiter("sliding")
    limiter.check(0)
    clock.now += 0.5
    limiter.check(0)
    clock.now += 0.5
    assert _seen(limiter.check(0)) == (True, 0, math.ceil(T0 + 2))
    assert _seen(limiter.check(0)) == (False, 0, math.ceil(T0 + 2))
    clock.now = T0 + 2.0  # only the first request has left the window
    assert _seen(limiter.check(0)) == (True, 0, math.ceil(T0 + 2.5))
    assert _seen(limiter.check(0)) == (False, 0, math.ceil(T0 + 2.5))
    clock.now = T0 + 4.5  # all gone
    assert _seen(limiter.check(0)) == (True, 2, math.ceil(T0 + 6.5))


def test_bucket_refills_continuously_and_resets_when_full() -> None:
    limiter, clock = _limiter("bucket")  # 3 tokens, 1.5 a second
    assert _seen(limiter.check(0)) == (True, 2, math.ceil(T0 + 1 / 1.5))
    assert _seen(limiter.check(0)) == (True, 1, math.ceil(T0 + 2 / 1.5))
    assert _seen(limiter.check(0)) == (True, 0, math.ceil(T0 + 2))
    assert _seen(limiter.check(0)) == (False, 0, math.ceil(T0 + 2))
    clock.now += 1.0  # 1.5 tokens back: one request, half a token left
    assert _seen(limiter.check(0)) == (True, 0, math.ceil(clock.now + 2.5 / 1.5))
    clock.now += 10.0  # full, never more than full
    assert _seen(limiter.check(0)) == (True, 2, math.ceil(clock.now + 1 / 1.5))


@pytest.mark.parametrize("policy", ["fixed", "sliding", "bucket"])
def test_every_policy_allows_limit_at_once_and_keys_are_apart(policy: str) -> None:
    limiter, _ = _limiter(policy, limit=5)
    assert sum(_seen(limiter.check(0))[0] for _ in range(8)) == 5
    assert _seen(limiter.check(1))[:2] == (True, 4)


@pytest.mark.parametrize("policy", ["fixed", "sliding", "bucket"])
def test_no_policy_allows_more_than_its_rate_over_time(policy: str) -> None:
    """A request every 0.05 s for 20 s: allowed ones stay within limit per window (+ limit)."""
    limiter, clock = _limiter(policy, limit=10, window=2.0)
    allowed = []
    for _ in range(400):
        if _seen(limiter.check(0))[0]:
            allowed.append(clock.now)
        clock.now += 0.05
    assert 100 <= len(allowed) <= 110  # 10 per 2 s over 20 s, plus the first full budget
    if policy != "bucket":  # a bucket may allow its capacity plus the refill in 2 s
        assert all(sum(a <= t < a + 2.0 for t in allowed) <= 10 for a in allowed), (
            "more than 10 in a 2 s window"
        )


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_policy must be one of fixed, sliding, bucket"):
        RateLimiter(10, 2.0, "leaky")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # Requests at t=0, 0.5, 0.5 and 1.1. Fixed: the third is refused, and at 1.1 a fresh
        # window opens (1 left). Sliding: at 1.1 only the first has left (0 left). Bucket
        # (2 a second): a token is back by 0.5, so the third goes too; 1.2 back by 1.1.
        ("fixed", [(200, 1), (200, 0), (429, 0), (200, 1)]),
        ("sliding", [(200, 1), (200, 0), (429, 0), (200, 0)]),
        ("bucket", [(200, 1), (200, 1), (200, 0), (200, 0)]),
    ],
)
def test_the_server_keeps_the_policy_it_was_given(
    policy: Any, expected: list[tuple[int, int]]
) -> None:
    # the times of the comment above, four times over: margins a loaded machine keeps
    with FlameupServer(rate_limit=2, rate_window=4.0, rate_policy=policy) as server:
        api = Api(server)
        answers = [api.call("GET", "/people")]
        time.sleep(2.0)
        answers += [api.call("GET", "/people") for _ in range(2)]
        time.sleep(2.4)
        answers.append(api.call("GET", "/people"))
    seen = [(a.status_code, int(a.headers["X-RateLimit-Remaining"])) for a in answers]
    assert seen == expected
