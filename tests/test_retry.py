"""RetryPolicy: a value that decides what to retry and how long to wait (no network, no clock)."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flameup_pandas._send.retry import RetryPolicy, header, parse_reset, parse_retry_after
from flameup_pandas.exceptions import TransportError

NOW_WALL = 1_700_000_000.0


class _MaxRandom(random.Random):
    """An rng whose uniform() always returns the top of the range."""

    def uniform(self, a: float, b: float) -> float:
        return b


class _MinRandom(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def _after_errors(n: int, policy: RetryPolicy | None = None) -> RetryPolicy:
    policy = policy or RetryPolicy()
    for i in range(n):
        policy = policy.increment(status=503, now=float(i))
    return policy


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retries_429_and_server_errors(status: int) -> None:
    assert RetryPolicy().should_retry_status(status)


@pytest.mark.parametrize("status", [200, 201, 400, 401, 403, 404, 409, 422, 501])
def test_never_retries_other_4xx_or_success(status: int) -> None:
    assert not RetryPolicy().should_retry_status(status)


def test_retry_statuses_may_not_include_a_4xx() -> None:
    with pytest.raises(ValueError, match="5xx"):
        RetryPolicy(retry_statuses=frozenset({500, 422}))


def test_increment_returns_a_new_value_and_leaves_the_old_one_unchanged() -> None:
    before = RetryPolicy()
    after = before.increment(status=503, now=10.0)
    assert after is not before
    assert (before.errors, before.rate_limits, before.started) == (0, 0, None)
    assert (after.errors, after.rate_limits, after.started) == (1, 0, 10.0)
    with pytest.raises(AttributeError):
        before.errors = 3  # type: ignore[misc]


def test_increment_counts_429_apart_from_errors() -> None:
    policy = RetryPolicy().increment(status=429, now=1.0).increment(status=429, now=2.0)
    policy = policy.increment(error=TransportError("reset"), now=3.0)
    assert (policy.rate_limits, policy.errors) == (2, 1)


def test_started_is_the_first_attempt_and_stays() -> None:
    policy = RetryPolicy().increment(status=500, now=7.0).increment(status=500, now=9.0)
    assert policy.started == 7.0


def test_exhausted_after_total_errors_beyond_the_first_attempt() -> None:
    policy = _after_errors(3, RetryPolicy(total=2))
    assert _after_errors(2, RetryPolicy(total=2)).is_exhausted(now=2.0) is False
    assert policy.is_exhausted(now=3.0) is True
    assert RetryPolicy(total=0).increment(status=500, now=0.0).is_exhausted(now=0.0)


def test_exhausted_after_rate_limited_429s() -> None:
    policy = RetryPolicy(rate_limited=2, total=0)
    for i in range(2):
        policy = policy.increment(status=429, now=float(i))
        assert not policy.is_exhausted(now=float(i))
    assert policy.increment(status=429, now=3.0).is_exhausted(now=3.0)


def test_429s_do_not_spend_the_error_budget() -> None:
    policy = RetryPolicy(total=1)
    for i in range(20):
        policy = policy.increment(status=429, now=float(i))
    assert not policy.is_exhausted(now=20.0)


def test_exhausted_by_elapsed_time() -> None:
    policy = RetryPolicy(max_elapsed=60.0).increment(status=503, now=100.0)
    assert not policy.is_exhausted(now=159.9)
    assert policy.is_exhausted(now=160.0)
    assert not RetryPolicy(max_elapsed=0.0).is_exhausted(now=1e9)  # not started


def test_backoff_grows_exponentially_then_caps() -> None:
    rng = _MaxRandom()
    base = RetryPolicy(backoff_factor=0.5, backoff_max=5.0)
    caps = [_after_errors(n, base).backoff(rng) for n in range(7)]
    assert caps == [0.0, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_survives_a_huge_error_count() -> None:
    policy = RetryPolicy(total=10_000, errors=5_000)
    assert policy.backoff(_MaxRandom()) == policy.backoff_max


@given(errors=st.integers(0, 50), seed=st.integers(0, 2**32))
def test_backoff_jitter_stays_within_zero_and_the_cap(errors: int, seed: int) -> None:
    policy = RetryPolicy(total=100, errors=errors, backoff_factor=0.5, backoff_max=30.0)
    cap = 0.0 if errors == 0 else min(30.0, 0.5 * 2 ** (errors - 1))
    assert 0.0 <= policy.backoff(random.Random(seed)) <= cap


def test_backoff_jitter_spreads_waits() -> None:
    policy = _after_errors(4)
    waits = {round(policy.backoff(random.Random(seed)), 6) for seed in range(20)}
    assert len(waits) > 10


def test_retry_after_seconds() -> None:
    wait = RetryPolicy().rate_limit_wait({"Retry-After": "7"}, NOW_WALL, random.Random(0))
    assert wait == 7.0


def test_retry_after_http_date_gets_the_margin() -> None:
    headers = {"Retry-After": formatdate(NOW_WALL + 20, usegmt=True)}
    wait = RetryPolicy(reset_margin=1.0).rate_limit_wait(headers, NOW_WALL, random.Random(0))
    assert wait == pytest.approx(21.0)


def test_retry_after_in_the_past_waits_only_the_margin() -> None:
    headers = {"Retry-After": formatdate(NOW_WALL - 100, usegmt=True)}
    assert RetryPolicy(reset_margin=0.5).rate_limit_wait(headers, NOW_WALL) == pytest.approx(0.5)


def test_headers_are_read_case_insensitively() -> None:
    policy = RetryPolicy(reset_margin=1.0)
    assert policy.rate_limit_wait({"retry-after": "3"}, NOW_WALL) == 3.0
    reset = {"x-ratelimit-reset": str(int(NOW_WALL) + 10)}
    assert policy.rate_limit_wait(reset, NOW_WALL) == pytest.approx(11.0)
    assert header({"X-RATELIMIT-LIMIT": "120"}, "X-RateLimit-Limit") == "120"
    assert header({}, "Retry-After") is None


def test_ratelimit_reset_when_no_retry_after() -> None:
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW_WALL) + 42)}
    wait = RetryPolicy(reset_margin=1.0).rate_limit_wait(headers, NOW_WALL, random.Random(0))
    assert wait == pytest.approx(43.0)


def test_retry_after_wins_over_ratelimit_reset() -> None:
    headers = {"Retry-After": "5", "X-RateLimit-Reset": str(int(NOW_WALL) + 42)}
    assert RetryPolicy().rate_limit_wait(headers, NOW_WALL) == 5.0


def test_unreadable_retry_after_falls_back_to_reset() -> None:
    headers = {"Retry-After": "soon", "X-RateLimit-Reset": str(int(NOW_WALL) + 4)}
    assert RetryPolicy(reset_margin=1.0).rate_limit_wait(headers, NOW_WALL) == pytest.approx(5.0)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-RateLimit-Reset": "garbage"},
        {"X-RateLimit-Reset": str(int(NOW_WALL) - 30)},  # stale, or clocks disagree
    ],
)
def test_429_without_usable_headers_backs_off(headers: dict[str, str]) -> None:
    policy = RetryPolicy(backoff_factor=0.5, backoff_max=30.0)
    for i in range(4):
        policy = policy.increment(status=429, now=float(i))
    # Equal jitter on a cap of 0.5 * 2**3 = 4 s: between 2 and 4 seconds.
    assert policy.rate_limit_wait(headers, NOW_WALL, _MinRandom()) == pytest.approx(2.0)
    assert policy.rate_limit_wait(headers, NOW_WALL, _MaxRandom()) == pytest.approx(4.0)


def test_rate_limit_wait_is_capped() -> None:
    policy = RetryPolicy(rate_limit_wait_max=120.0)
    assert policy.rate_limit_wait({"Retry-After": "86400"}, NOW_WALL) == 120.0
    far = {"X-RateLimit-Reset": str(int(NOW_WALL) + 3600)}
    assert policy.rate_limit_wait(far, NOW_WALL) == 120.0


def test_parse_retry_after_rejects_garbage() -> None:
    assert parse_retry_after("-3", NOW_WALL) is None
    assert parse_retry_after("", NOW_WALL) is None
    assert parse_retry_after("1.5", NOW_WALL) == 1.5


def test_parse_reset_reads_unix_seconds_or_a_delta() -> None:
    assert parse_reset("1700000060", NOW_WALL) == 1_700_000_060.0
    assert parse_reset("30", NOW_WALL) == NOW_WALL + 30
    assert parse_reset("nan", NOW_WALL) is None
    assert parse_reset("-1", NOW_WALL) is None


def test_describe_names_attempts_time_and_cause() -> None:
    policy = RetryPolicy()
    for i, status in enumerate([503, 429, 500]):
        policy = policy.increment(status=status, now=100.0 + 6.15 * i)
    policy = policy.increment(error=TransportError("ws_live_secret in url?"), now=112.3)
    text = policy.describe()
    assert text.startswith("gave up after 4 attempts over 12.3 s")
    assert "last: TransportError" in text
    assert "secret" not in text


def test_policy_rejects_negative_budgets() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        RetryPolicy(total=-1)
    with pytest.raises(ValueError, match=">= 0"):
        RetryPolicy(max_elapsed=-1.0)
