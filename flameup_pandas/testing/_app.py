"""The WSGI application: routing, auth, rate limit and faults around the endpoints.

Paths outside ``/api`` go to the web view (`flameup_pandas.testing._ui`) when there is one:
they are not API requests, so they meet no fault or rate limit and are not recorded.

Order of checks for a request: an outage (the connection is closed, nothing else happens);
then, under ``/api/v1``: the key (401, nothing else happens), the fault draw, an overload
(503 when more requests than ``Faults.overload_above`` are being answered), a 429 storm, the
rate limit (a 429 is not counted), the route (404/405), the key's permission (403), pre-store
faults (500/503, a dropped connection or a 200 maintenance page), the endpoint, then
post-store faults. Injected latency is slept after the endpoint ran, just before the
answer, so a client that times out has still had its data stored.

Every answer's ``Date`` header is on the server's clock (``Faults.clock_offset`` from ours; the
server's request handler writes it), the clock its ``X-RateLimit-Reset`` is on too.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn

from werkzeug.wrappers import Request

from ._answers import Answer, envelope_error, maintenance_page, rate_limited, simple_error
from ._endpoints import Endpoints, Exchange, Handler
from ._event_endpoints import EventEndpoints
from ._faults import FaultDecision, FaultInjector, Outcome
from ._ratelimit import RateLimiter
from ._records import Bodies, RecordedRequest, RequestLog
from ._store import ApiKey, Store

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["API_PREFIX", "FlameupApp"]

API_PREFIX = "/api/v1"
KEY_PATTERN = re.compile(r"ws_(?:live|test)_[A-Za-z0-9]+_[A-Za-z0-9]+\.[0-9a-f]{64}")


class ConnectionDropped(ConnectionError):
    """Raised out of the WSGI app after its socket was shut: werkzeug then stays silent."""


class FlameupApp:
    """The local Flameup API as a WSGI callable."""

    def __init__(
        self,
        store: Store,
        limiter: RateLimiter,
        injector: FaultInjector,
        log: RequestLog,
        per_person_errors: bool = False,
        web_view: WSGIApplication | None = None,
    ) -> None:
        self.store = store
        self.limiter = limiter
        self.injector = injector
        self.log = log
        self.endpoints = Endpoints(store, per_person_errors)
        self.events = EventEndpoints(store)
        self.web_view = web_view
        self._keys: dict[str, ApiKey] = {k.key: k for k in store.api_keys()}
        self._idle = threading.Condition()
        self._active = 0
        self._load = threading.Lock()
        self._answering = 0  # API requests being answered (for Faults.overload_above)

    def add_key(self, key: ApiKey) -> None:
        self._keys = {**self._keys, key.key: key}

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being answered; False if still busy after ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with self._idle:
            self._active += 1
        try:
            if self.web_view is not None and not _is_api(environ.get("PATH_INFO", "")):
                return self.web_view(environ, start_response)
            return self._serve(environ, start_response)
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def _serve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started, clock = time.time(), time.perf_counter()
        request = Request(environ)
        ex = Exchange(
            method=request.method,
            path=request.path,
            body=request.get_data(),
            args=dict(request.args),
            request_id=f"req_{uuid.uuid4().hex[:24]}",
            authorization=request.headers.get("Authorization", ""),
            segments=_segments(environ),
        )
        trace = _Trace()
        answer = self._answer(ex, trace)
        record = trace.record(ex, answer, started, time.perf_counter() - clock)
        if answer is None:
            self.log.add(record, Bodies(ex.body, None))
            _drop(environ)
        body = answer.encode()
        self.log.add(record, Bodies(ex.body, body))
        headers = [
            ("Content-Type", answer.content_type),
            ("Content-Length", str(len(body))),
            ("X-Request-Id", ex.request_id),
            *answer.headers.items(),
        ]
        start_response(answer.status_line(), headers)
        return [body]

    def _answer(self, ex: Exchange, trace: _Trace) -> Answer | None:
        if self.injector.meets_outage():
            trace.fault = "down"
            return None
        if not ex.path.startswith(API_PREFIX + "/"):
            return simple_error(404, "Not Found", f"No route for {ex.path}")
        ex.path = ex.path[len(API_PREFIX) :]
        key = self._authenticate(ex)
        if isinstance(key, Answer):
            time.sleep(self.injector.faults.latency)
            return key
        trace.key_index = key.index
        decision = self.injector.decide(key.index)
        if not self._take_load():
            trace.fault = "overload"
            time.sleep(decision.delay)
            return _server_error(503, ex)
        try:
            answer = self._limited(ex, key, decision, trace)
            time.sleep(decision.delay)
            return answer
        finally:
            with self._load:
                self._answering -= 1

    def _take_load(self) -> bool:
        """Count one more request being answered; False (not counted) when that would be more
        than ``Faults.overload_above``: the server sheds it."""
        limit = self.injector.faults.overload_above
        with self._load:
            if limit is not None and self._answering >= limit:
                return False
            self._answering += 1
            return True

    def _authenticate(self, ex: Exchange) -> ApiKey | Answer:
        header = ex.authorization
        scheme, _, token = header.partition(" ")
        if not header:
            message = "Missing Authorization header"
        elif scheme.lower() != "bearer" or not token.strip():
            message = "Authorization header must be 'Bearer <API key>'"
        elif not KEY_PATTERN.fullmatch(token.strip()):
            message = "Malformed API key"
        elif (key := self._keys.get(token.strip())) is None:
            message = "Invalid API key"
        else:
            return key
        return envelope_error(401, "UNAUTHORIZED", message, ex.request_id)

    def _limited(
        self, ex: Exchange, key: ApiKey, decision: FaultDecision, trace: _Trace
    ) -> Answer | None:
        if decision.storm is not None:
            trace.fault = "storm"
            return _storm_answer(self.limiter, decision)
        rate = self.limiter.check(key.index)
        headers = rate.headers() if rate is not None else {}
        if rate is not None and not rate.allowed:
            return rate_limited(headers)
        answer = self._routed(ex, key, decision, trace)
        if answer is not None:
            answer.headers.update(headers)
        return answer

    def _routed(
        self, ex: Exchange, key: ApiKey, decision: FaultDecision, trace: _Trace
    ) -> Answer | None:
        route = self._route(ex)
        if isinstance(route, Answer):
            return route
        handler, permission, identifier = route
        if permission not in key.permissions:
            message = f"This API key lacks the {permission} permission"
            return envelope_error(403, "FORBIDDEN", message, ex.request_id)
        outcome = decision.outcome
        if outcome is not Outcome.NORMAL:
            trace.fault = outcome.value
        if outcome is Outcome.ERROR:
            return _server_error(decision.error_status, ex)
        if outcome is Outcome.DROP:
            return None
        if outcome is Outcome.MAINTENANCE:
            return maintenance_page()
        answer = handler(ex, identifier)
        trace.stored = ex.method in ("POST", "PUT") and answer.status < 300
        if outcome is Outcome.ERROR_AFTER_STORE:
            return _server_error(500, ex)
        return None if outcome is Outcome.DROP_AFTER_STORE else answer

    def _route(self, ex: Exchange) -> tuple[Handler, str, str | None] | Answer:
        e, path, method = self.endpoints, ex.path, ex.method
        match ex.segments:
            case ("people", "batch") if method == "POST":
                return e.batch, "people:write", None
            case ("people",):
                if method in ("GET", "HEAD"):
                    return e.list_people, "people:list", None
                if method == "POST":
                    return e.create, "people:write", None
                return _not_allowed(method, path)
            case ("people", str(identifier)) if identifier:
                if method in ("GET", "HEAD"):
                    return e.get, "people:read", identifier
                if method == "PUT":
                    return e.update, "people:write", identifier
                return _not_allowed(method, path)
        return self._event_route(ex) or simple_error(
            404, "Not Found", f"No route for {API_PREFIX}{path}"
        )

    def _event_route(self, ex: Exchange) -> tuple[Handler, str, str | None] | Answer | None:
        """The events routes: ``/track`` and ``/workspaces/{id}/events``; None for others."""
        e, path, method = self.events, ex.path, ex.method
        match ex.segments:
            case ("track",):
                if method == "POST":
                    return e.track, "events:write", None
                return _not_allowed(method, path)
            case ("workspaces", str(workspace), "events") if workspace:
                if method in ("GET", "HEAD"):
                    return e.list_events, "events:read", workspace
                if method == "POST":
                    return e.track_legacy, "events:write", workspace
                return _not_allowed(method, path)
        return None


def _segments(environ: WSGIEnvironment) -> tuple[str, ...]:
    """The segments below ``/api/v1`` of the path as sent (werkzeug's own path is decoded
    whole, so ``a%2Fb`` would be two segments there), each decoded."""
    raw = environ.get("RAW_URI") or urllib.parse.quote(environ["PATH_INFO"], encoding="latin-1")
    path = urllib.parse.urlsplit(raw.encode("latin-1").decode("utf-8", "replace")).path
    if not path.startswith(API_PREFIX + "/"):
        return ()
    return tuple(urllib.parse.unquote(s) for s in path[len(API_PREFIX) + 1 :].split("/"))


class _Trace:
    """What the request log needs to know beyond the answer."""

    def __init__(self) -> None:
        self.key_index: int | None = None
        self.fault: str | None = None
        self.stored = False

    def record(
        self, ex: Exchange, answer: Answer | None, started: float, duration: float
    ) -> RecordedRequest:
        return RecordedRequest(
            method=ex.method,
            path=API_PREFIX + ex.path if ex.path.startswith(_API_PATHS) else ex.path,
            status=None if answer is None else answer.status,
            people_count=ex.people_count() if ex.method in ("POST", "PUT") else 0,
            key_index=self.key_index,
            started_at=started,
            duration=duration,
            fault=self.fault,
            request_id=ex.request_id,
            stored=self.stored,
        )


_API_PATHS = ("/people", "/track", "/workspaces/")
"""Paths already stripped of API_PREFIX by the time a request is recorded."""


def _is_api(path: str) -> bool:
    """Whether a path is the API's: everything else belongs to the web view."""
    return path == "/api" or path.startswith("/api/")


def _storm_answer(limiter: RateLimiter, decision: FaultDecision) -> Answer:
    storm = decision.storm
    assert storm is not None
    wait = storm.retry_after if storm.retry_after is not None else 1.0
    headers = limiter.storm_state(wait).headers()
    if storm.retry_after is not None:
        headers["Retry-After"] = f"{storm.retry_after:g}"
    return rate_limited(headers)


def _server_error(status: int, ex: Exchange) -> Answer:
    if status == 503:
        return simple_error(503, "Service Unavailable", "The service is temporarily unavailable")
    return envelope_error(500, "INTERNAL_ERROR", "An internal error occurred", ex.request_id)


def _not_allowed(method: str, path: str) -> Answer:
    return simple_error(405, "Method Not Allowed", f"{method} is not allowed on {API_PREFIX}{path}")


def _drop(environ: dict[str, Any]) -> NoReturn:
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    raise ConnectionDropped("connection dropped on purpose (fault injection)")
