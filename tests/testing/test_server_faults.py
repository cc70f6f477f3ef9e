"""Each injected fault, over real HTTP, and that seeded faults repeat exactly."""

from __future__ import annotations

import email.utils
import errno
import time
from typing import Any

import pytest
import requests

from flameup_pandas.testing import Faults, FlameupServer

from .conftest import Api


def test_errors_store_nothing(flameup_server: FlameupServer, api: Api) -> None:
    flameup_server.set_faults(Faults(error_rate=1.0, seed=1))
    statuses = set()
    for i in range(12):
        answer = api.batch({"userId": f"u{i}"})
        statuses.add(answer.status_code)
        body = answer.json()
        if answer.status_code == 500:
            assert body["success"] is False
            assert body["error"]["type"] == "INTERNAL_ERROR"
        else:
            assert body == {
                "error": "Service Unavailable",
                "message": "The service is temporarily unavailable",
            }
    assert statuses == {500, 503}
    assert flameup_server.people().empty
    assert {r.fault for r in flameup_server.requests} == {"error"}


def test_error_after_store_loses_the_answer_not_the_data(
    flameup_server: FlameupServer, api: Api
) -> None:
    flameup_server.set_faults(Faults(error_after_store_rate=1.0))
    answer = api.batch({"userId": "u", "traits": {"plan": "pro"}})
    assert answer.status_code == 500
    assert flameup_server.person("u")["attributes"] == {"plan": "pro"}  # type: ignore[index]
    assert flameup_server.requests[-1].stored


def test_a_drop_closes_the_connection_without_an_answer(
    flameup_server: FlameupServer, api: Api
) -> None:
    flameup_server.set_faults(Faults(drop_rate=1.0))
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        api.batch({"userId": "u"})
    assert time.monotonic() - started < 2
    assert flameup_server.people().empty
    record = flameup_server.requests[-1]
    assert (record.status, record.fault, record.stored) == (None, "drop", False)


def test_a_drop_after_store_keeps_the_data(flameup_server: FlameupServer, api: Api) -> None:
    flameup_server.set_faults(Faults(drop_after_store_rate=1.0))
    with pytest.raises(requests.ConnectionError):
        api.batch({"userId": "u"})
    assert flameup_server.person("u") is not None
    flameup_server.set_faults(None)
    assert api.call("GET", "/people/u").status_code == 200


def test_a_maintenance_page_is_a_200_in_html_that_stores_nothing(
    flameup_server: FlameupServer, api: Api
) -> None:
    flameup_server.set_faults(Faults(maintenance_rate=1.0))
    answer = api.batch({"userId": "u"})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "maintenance" in answer.text
    assert flameup_server.people().empty
    record = flameup_server.requests[-1]
    assert (record.status, record.fault, record.stored) == (200, "maintenance", False)


def test_latency_is_added_before_every_answer(flameup_server: FlameupServer, api: Api) -> None:
    flameup_server.set_faults(Faults(latency=0.2, latency_jitter=0.1, seed=3))
    for _ in range(3):
        started = time.monotonic()
        assert api.call("GET", "/people").status_code == 200
        assert 0.2 <= time.monotonic() - started < 1.0
    started = time.monotonic()
    assert Api(flameup_server, key=None).call("GET", "/people").status_code == 401
    assert time.monotonic() - started >= 0.2


def test_a_timeout_on_latency_still_stores(flameup_server: FlameupServer, api: Api) -> None:
    flameup_server.set_faults(Faults(latency=0.6))
    with pytest.raises(requests.Timeout):
        api.batch({"userId": "u"}, timeout=0.2)
    assert flameup_server.person("u") is not None


def test_storms_alternate_retry_after_and_rate_limit_headers(
    flameup_server_factory: Any,
) -> None:
    server = flameup_server_factory(rate_limit=None, faults=Faults(storm_rate=1.0, storm_length=2))
    api = Api(server)
    answers = [api.call("GET", "/people") for _ in range(4)]
    assert [a.status_code for a in answers] == [429] * 4
    assert [a.headers.get("Retry-After") for a in answers] == ["1", "1", None, None]
    for answer in answers:
        assert answer.json()["error"] == "Rate limit exceeded"
        assert answer.headers["X-RateLimit-Remaining"] == "0"
        assert int(answer.headers["X-RateLimit-Reset"]) <= time.time() + 2


def test_a_storm_hits_one_key_and_is_not_counted(flameup_server_factory: Any) -> None:
    server = flameup_server_factory(rate_limit=2, rate_window=5.0)
    api, other = Api(server), Api(server, key=server.add_key())
    server.set_faults(Faults(storm_rate=1.0, storm_length=3))
    assert api.call("GET", "/people").status_code == 429
    server.set_faults(Faults(storm_rate=0.0))
    assert other.call("GET", "/people").status_code == 200
    assert [api.call("GET", "/people").status_code for _ in range(3)] == [200, 200, 429]


def test_a_storm_lasts_storm_length_requests(flameup_server_factory: Any) -> None:
    server = flameup_server_factory(rate_limit=None)
    api = Api(server)
    # With this seed the first request starts a storm and no later one does.
    for seed in range(100):
        server.set_faults(Faults(storm_rate=0.2, storm_length=3, seed=seed))
        statuses = [api.call("GET", "/people").status_code for _ in range(6)]
        if statuses[0] == 429:
            break
    assert statuses[:3] == [429, 429, 429]


def _statuses(faults: Faults) -> list[int | None]:
    with FlameupServer(rate_limit=None, faults=faults) as server:
        api = Api(server)
        out: list[int | None] = []
        for i in range(30):
            try:
                out.append(api.batch({"userId": f"u{i}"}, timeout=5).status_code)
            except requests.ConnectionError:
                out.append(None)
        api.close()
        return out


def test_seeded_faults_repeat_exactly() -> None:
    faults = Faults(
        error_rate=0.2,
        error_after_store_rate=0.1,
        drop_rate=0.1,
        drop_after_store_rate=0.1,
        storm_rate=0.1,
        storm_length=2,
        seed=42,
    )
    first = _statuses(faults)
    assert first == _statuses(faults)
    assert {200, 429, None} <= set(first)
    assert _statuses(Faults(error_rate=0.5, seed=1)) != _statuses(Faults(error_rate=0.5, seed=2))


@pytest.mark.parametrize(
    "faults",
    [
        {"error_rate": 1.5},
        {"error_rate": 0.6, "drop_rate": 0.6},
        {"maintenance_rate": 0.5, "drop_after_store_rate": 0.6},
        {"latency": -1},
        {"storm_length": 0},
        {"down_after": -1},
        {"down_for": -0.5},
        {"down_mode": "explode"},
    ],
)
def test_impossible_faults_are_refused(faults: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        Faults(**faults)


def _refused(error: BaseException) -> bool:
    """Whether a requests error was caused by a refused connection (ECONNREFUSED)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or getattr(seen, "errno", None) == (
            errno.ECONNREFUSED
        ):
            return True
        inner = getattr(seen, "reason", None)
        seen = inner if isinstance(inner, BaseException) else seen.__context__
    return False


def _wait_until(condition: Any, limit: float = 10.0) -> bool:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_down_after_n_requests_drops_every_connection_until_the_faults_change(
    flameup_server: FlameupServer, api: Api
) -> None:
    flameup_server.set_faults(Faults(down_after=3))
    assert [api.batch({"userId": f"u{i}"}).status_code for i in range(3)] == [200] * 3
    for _ in range(2):  # the open connection and a new one alike
        with pytest.raises(requests.ConnectionError) as info:
            api.batch({"userId": "late"})
        assert not _refused(info.value)
    assert flameup_server.down
    assert [r.fault for r in flameup_server.requests] == [None] * 3 + ["down"] * 2
    assert flameup_server.person("late") is None
    flameup_server.set_faults(None)
    assert not flameup_server.down
    assert api.batch({"userId": "late"}).status_code == 200


def test_down_in_refuse_mode_stops_listening_and_comes_back_on_the_same_port(
    flameup_server: FlameupServer,
) -> None:
    port = flameup_server.port
    flameup_server.set_faults(Faults(down_after=2, down_mode="refuse"))
    api = Api(flameup_server)
    assert [api.batch({"userId": f"u{i}"}).status_code for i in range(2)] == [200, 200]
    with pytest.raises(requests.ConnectionError):
        api.batch({"userId": "late"})  # the request that meets the outage: dropped
    fresh = Api(flameup_server)
    with pytest.raises(requests.ConnectionError) as info:
        fresh.batch({"userId": "late"})
    assert _refused(info.value)
    flameup_server.set_faults(None)
    assert flameup_server.port == port
    assert fresh.batch({"userId": "late"}).status_code == 200
    api.close()
    fresh.close()


@pytest.mark.parametrize("mode", ["drop", "refuse"])
def test_down_for_brings_the_server_back_by_itself(
    flameup_server: FlameupServer, mode: Any
) -> None:
    flameup_server.set_faults(Faults(down_after=0, down_for=0.3, down_mode=mode))
    api = Api(flameup_server)
    with pytest.raises(requests.ConnectionError):
        api.batch({"userId": "u"})
    assert _wait_until(lambda: not flameup_server.down)
    answers = []
    for _ in range(50):  # a refused server may take a moment to listen again
        try:
            answers.append(api.batch({"userId": "u"}).status_code)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    assert answers == [200]
    # one outage per faults value: it never goes down again
    assert [api.batch({"userId": "u"}).status_code for _ in range(3)] == [200] * 3
    api.close()


def test_a_server_stops_cleanly_while_down(flameup_server_factory: Any) -> None:
    server = flameup_server_factory(
        rate_limit=None, faults=Faults(down_after=0, down_mode="refuse")
    )
    with pytest.raises(requests.ConnectionError):
        Api(server).batch({"userId": "u"})
    assert server.down
    server.stop()
    assert "stopped" in repr(server)


def test_above_the_overload_threshold_requests_are_shed_with_503(
    flameup_server: FlameupServer,
) -> None:
    """Three requests at once against ``overload_above=2``: two are answered, one is shed
    (503, nothing stored), and a request after them is answered again."""
    import concurrent.futures

    flameup_server.set_faults(Faults(overload_above=2, latency=0.5))
    apis = [Api(flameup_server) for _ in range(3)]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda i: apis[i].batch({"userId": f"u{i}"}), range(3)))
    assert sorted(a.status_code for a in answers) == [200, 200, 503]
    shed = next(a for a in answers if a.status_code == 503)
    assert shed.json()["error"] == "Service Unavailable"
    assert "X-RateLimit-Remaining" not in shed.headers  # not counted by the rate limit
    assert len(flameup_server.people()) == 2
    assert [r.fault for r in flameup_server.requests].count("overload") == 1
    flameup_server.set_faults(Faults(overload_above=2))
    assert apis[0].batch({"userId": "u9"}).status_code == 200
    for api in apis:
        api.close()


@pytest.mark.parametrize("offset", [-30.0, 0.0, 30.0])
def test_a_clock_offset_moves_the_date_and_the_reset_alike(
    flameup_server_factory: Any, offset: float
) -> None:
    server = flameup_server_factory(rate_limit=10, rate_window=5.0)
    server.set_faults(Faults(clock_offset=offset))
    api = Api(server)
    sent = time.time()
    answer = api.batch({"userId": "u"})
    date = email.utils.parsedate_to_datetime(answer.headers["Date"]).timestamp()
    reset = int(answer.headers["X-RateLimit-Reset"])
    assert sent + offset - 1 <= date <= time.time() + offset
    assert 0 < reset - date <= 6  # the window's end, five seconds on the server's clock
    api.close()
