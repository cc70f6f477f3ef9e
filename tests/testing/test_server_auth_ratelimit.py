"""Auth (401/403) and the per-key fixed-window rate limit with its headers."""

from __future__ import annotations

import time
from typing import Any

import pytest

from flameup_pandas.testing import FlameupServer

from .conftest import Api

VALID_SHAPE = "ws_test_abc_def." + "0" * 64


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Missing Authorization header"),
        ("Basic abc", "Authorization header must be 'Bearer <API key>'"),
        ("Bearer ", "Authorization header must be 'Bearer <API key>'"),
        ("Bearer not-a-key", "Malformed API key"),
        ("Bearer ws_test_abc_def.XYZ", "Malformed API key"),
        (f"Bearer {VALID_SHAPE}", "Invalid API key"),
    ],
)
def test_a_missing_or_wrong_key_gets_401_and_touches_nothing(
    flameup_server: FlameupServer, header: str | None, message: str
) -> None:
    api = Api(flameup_server, key=None)
    headers = {} if header is None else {"Authorization": header}
    answer = api.batch({"userId": "u"}, headers=headers)
    assert answer.status_code == 401
    body = answer.json()
    assert body == {
        "success": False,
        "error": {"type": "UNAUTHORIZED", "message": message},
        "request_id": body["request_id"],
    }
    assert body["request_id"].startswith("req_")
    assert flameup_server.people().empty
    assert flameup_server.requests[-1].key_index is None


def test_the_key_has_the_documented_shape(flameup_server: FlameupServer) -> None:
    key = flameup_server.api_key
    prefix, _, secret = key.partition(".")
    kind, workspace = prefix.split("_")[1:3]
    assert key.startswith("ws_test_")
    assert kind == "test"
    assert workspace == flameup_server.workspace_id
    assert len(secret) == 64
    assert int(secret, 16) >= 0


def test_a_key_without_the_permission_gets_403(flameup_server: FlameupServer) -> None:
    reader = Api(flameup_server, key=flameup_server.add_key(permissions=("people:read",)))
    answer = reader.batch({"userId": "u"})
    assert answer.status_code == 403
    assert answer.json()["error"] == {
        "type": "FORBIDDEN",
        "message": "This API key lacks the people:write permission",
    }
    assert flameup_server.people().empty
    assert reader.call("GET", "/people/u").status_code == 404
    assert reader.call("GET", "/people").status_code == 403
    with pytest.raises(ValueError, match="unknown permissions"):
        flameup_server.add_key(permissions=("people:delete",))


def test_a_second_key_works_too(flameup_server: FlameupServer) -> None:
    other = Api(flameup_server, key=flameup_server.add_key())
    assert other.batch({"userId": "u"}).status_code == 200
    assert [r.key_index for r in flameup_server.requests] == [2]


def _headers(answer: Any) -> tuple[int, int, int]:
    h = answer.headers
    return int(h["X-RateLimit-Limit"]), int(h["X-RateLimit-Remaining"]), int(h["X-RateLimit-Reset"])


def test_rate_limit_headers_count_down_then_429(flameup_server_factory: Any) -> None:
    # A window long enough that five calls on a loaded machine never straddle two of them.
    server = flameup_server_factory(rate_limit=3, rate_window=30.0)
    api = Api(server)
    started = time.time()
    answers = [api.call("GET", "/people") for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert [_headers(a)[:2] for a in answers] == [(3, 2), (3, 1), (3, 0), (3, 0), (3, 0)]
    reset = _headers(answers[0])[2]
    assert started < reset <= started + 31  # the window's end, rounded up to a second
    assert all(_headers(a)[2] == reset for a in answers)
    assert answers[3].json() == {
        "error": "Rate limit exceeded",
        "message": "Too many requests. Please try again later.",
    }
    assert "Retry-After" not in answers[3].headers


def test_errors_carry_the_headers_and_count(flameup_server_factory: Any) -> None:
    server = flameup_server_factory(rate_limit=2, rate_window=2.0)
    api = Api(server)
    bad = api.batch({"email": "nope"})
    assert bad.status_code == 422
    assert _headers(bad)[1] == 1
    missing = api.call("GET", "/people/nobody")
    assert (missing.status_code, _headers(missing)[1]) == (404, 0)
    assert api.call("GET", "/people").status_code == 429


def test_the_window_resets_and_429s_do_not_count(flameup_server_factory: Any) -> None:
    server = flameup_server_factory(rate_limit=2, rate_window=1.0)
    api = Api(server)
    assert [api.call("GET", "/people").status_code for _ in range(4)] == [200, 200, 429, 429]
    time.sleep(1.05)
    after = [api.call("GET", "/people") for _ in range(3)]
    assert [a.status_code for a in after] == [200, 200, 429]
    assert _headers(after[0])[1] == 1


def test_each_key_has_its_own_window(flameup_server_factory: Any) -> None:
    server = flameup_server_factory(rate_limit=1, rate_window=5.0)
    first, second = Api(server), Api(server, key=server.add_key())
    assert first.call("GET", "/people").status_code == 200
    assert first.call("GET", "/people").status_code == 429
    assert second.call("GET", "/people").status_code == 200
    assert server.request_count(status=429) == 1


def test_rate_limit_off_sends_no_headers() -> None:
    with FlameupServer(rate_limit=None) as server:
        answer = Api(server).call("GET", "/people")
    assert "X-RateLimit-Limit" not in answer.headers


def test_the_request_log_never_holds_the_key(api: Api, flameup_server: FlameupServer) -> None:
    api.batch({"userId": "a"}, {"userId": "b"})
    api.call("GET", "/people/a")
    record = flameup_server.requests[0]
    assert (record.method, record.path, record.status, record.people_count) == (
        "POST",
        "/api/v1/people/batch",
        200,
        2,
    )
    assert record.key_index == 1
    assert record.stored
    assert flameup_server.api_key not in repr(flameup_server.requests)
    assert flameup_server.request_count("/people/batch") == 1
    assert flameup_server.request_count(method="get", status=200) == 1
    flameup_server.reset_requests()
    assert flameup_server.requests == []
