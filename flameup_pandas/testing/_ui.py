"""The web view of the local server: what a pipeline sent, seen in a browser.

`WebView` is a WSGI app that `FlameupApp` hands every path outside ``/api``: the people
(``/``, ``/people/<id>``), the request log (``/requests``, ``/requests/<request id>``), the
rate-limit windows (``/rate-limit``) and the faults (``/faults``). Pages are rendered on the
server (`_pages`), work offline, and run no script: the Content-Security-Policy allows none.

It reads the same store, request log and limiter the API uses, only when a page is asked
for, so API requests pay nothing for it. The API key is never shown: keys are labelled by
number and fingerprint, and any key that a stored value happens to hold is replaced before a
page leaves. Two guards keep other sites out: pages are served only to a loopback host name
(a DNS-rebinding page cannot read them), and the forms that change state refuse a POST whose
``Origin`` is not this server's own.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from . import _pages
from ._exchanges import field_errors, touched
from ._faults import FaultInjector, Faults
from ._faults_form import form_fields, form_values, parse_form
from ._html import CSS, Part, page
from ._ratelimit import RateLimiter
from ._records import RequestLog
from ._store import ApiKey, EventFilters, Store

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["Controls", "WebView", "fingerprint"]

PAGE_SIZE = 50
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_ROUTES = Map(
    [
        Rule("/", endpoint="people", methods=["GET"]),
        Rule("/people", endpoint="people", methods=["GET"]),
        Rule("/people/<person_id>", endpoint="person", methods=["GET"]),
        Rule("/events", endpoint="events", methods=["GET"]),
        Rule("/requests", endpoint="requests", methods=["GET"]),
        Rule("/requests/<request_id>", endpoint="request", methods=["GET"]),
        Rule("/rate-limit", endpoint="rate", methods=["GET"]),
        Rule("/faults", endpoint="faults", methods=["GET"]),
        Rule("/faults", endpoint="save_faults", methods=["POST"]),
        Rule("/faults/off", endpoint="faults_off", methods=["POST"]),
        Rule("/clear", endpoint="clear", methods=["POST"]),
        Rule("/ui.css", endpoint="css", methods=["GET"]),
    ],
    strict_slashes=False,
)


def fingerprint(key: str) -> str:
    """Eight hex digits of the key's SHA-256: tells keys apart, gives nothing away."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Controls:
    """What the forms may change, supplied by the server that owns the state."""

    set_faults: Callable[[Faults | None], None]
    clear: Callable[[], int]
    """Delete the people and the request log; returns how many people were deleted."""
    api_url: Callable[[], str]


class _Refused(Exception):
    """A request this view will not serve, with the status and the reason to show."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class WebView:
    """The WSGI app of the web view over the server's store, log, limiter and faults."""

    def __init__(
        self,
        store: Store,
        log: RequestLog,
        limiter: RateLimiter,
        injector: FaultInjector,
        controls: Controls,
    ) -> None:
        self.store = store
        self.log = log
        self.limiter = limiter
        self.injector = injector
        self.controls = controls

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._respond(Request(environ))(environ, start_response)

    def _respond(self, request: Request) -> Response:
        try:
            _check_host(request)
            endpoint, args = _ROUTES.bind_to_environ(request.environ).match()
            if request.method == "POST":
                _check_origin(request)
            return getattr(self, f"_{endpoint}")(request, **args)  # type: ignore[no-any-return]
        except _Refused as refused:
            return self._html("Refused", _pages.message_page(str(refused)), refused.status)
        except NotFound:
            return self._html("Not found", _pages.message_page("No such page."), 404)
        except MethodNotAllowed as e:
            response = self._html("Method not allowed", _pages.message_page(e.description), 405)
            response.headers["Allow"] = ", ".join(e.valid_methods or ())
            return response
        except HTTPException as e:
            return self._html(e.name, _pages.message_page(e.description or e.name), e.code or 400)

    # rendering

    def _html(self, title: str, content: Part, status: int = 200, section: str = "") -> Response:
        text = self._redacted(page(title, section, content, self.controls.api_url()))
        response = Response(text, status=status, content_type="text/html; charset=utf-8")
        response.headers.update(SECURITY_HEADERS)
        return response

    def _keys(self) -> list[ApiKey]:
        return self.store.api_keys()

    def _labels(self) -> dict[int, str]:
        return {k.index: f"key {k.index} · {fingerprint(k.key)}" for k in self._keys()}

    def _redacted(self, text: str) -> str:
        """The page with every API key (or its secret half) that a value holds replaced."""
        for key in self._keys():
            secret = key.key.rpartition(".")[2]
            for found in (key.key, secret):
                if found in text:
                    text = text.replace(found, f"[API key {key.index}]")
        return text

    # pages

    def _people(self, request: Request) -> Response:
        search = request.args.get("search", "").strip()
        number = _page_number(request)
        paging = _pages.Paging(number, PAGE_SIZE, 0, {"search": search} if search else {})
        people, total = self.store.page(PAGE_SIZE, paging.offset, search=search or None)
        paging = _pages.Paging(number, PAGE_SIZE, total, paging.query)
        return self._html("People", _pages.people_page(people, search, paging), section="/")

    def _person(self, request: Request, person_id: str) -> Response:
        person = self.store.get_by_id(person_id)
        if person is None:
            raise NotFound()
        records = list(reversed(self.log.snapshot()))
        seen = touched(person, records, self.log.kept_bodies())
        title = f"Person {person['external_id'] or person['email'] or person['id']}"
        content = _pages.person_page(person, seen, self._labels())
        return self._html(title, content, section="/")

    def _events(self, request: Request) -> Response:
        user = request.args.get("user", "").strip()
        number = _page_number(request)
        paging = _pages.Paging(number, PAGE_SIZE, 0, {"user": user} if user else {})
        filters = EventFilters(user_id=user or None)
        events, total = self.store.events_page(PAGE_SIZE, paging.offset, filters)
        paging = _pages.Paging(number, PAGE_SIZE, total, paging.query)
        return self._html("Events", _pages.events_page(events, user, paging), section="/events")

    def _requests(self, request: Request) -> Response:
        records = list(reversed(self.log.snapshot()))
        paging = _pages.Paging(_page_number(request), PAGE_SIZE, len(records), {})
        shown = records[paging.offset : paging.offset + PAGE_SIZE]
        content = _pages.requests_page(shown, self._labels(), paging)
        return self._html("Requests", content, section="/requests")

    def _request(self, request: Request, request_id: str) -> Response:
        record = next((r for r in self.log.snapshot() if r.request_id == request_id), None)
        if record is None:
            raise NotFound()
        bodies = self.log.bodies(request_id)
        errors = field_errors(record.status, bodies) if bodies is not None else []
        content = _pages.request_page(record, bodies, errors, self._labels())
        title = f"{record.method} {record.path}: {_pages.status_text(record.status)}"
        return self._html(title, content, section="/requests")

    def _rate(self, request: Request) -> Response:
        records = self.log.snapshot()
        refused = [r for r in reversed(records) if r.status == 429]
        per_key = Counter(r.key_index for r in refused)
        windows = self.limiter.windows()
        rows = [
            _pages.KeyRow(
                k.index,
                f"key {k.index} · {fingerprint(k.key)}",
                " ".join(sorted(k.permissions)),
                windows.get(k.index),
                per_key[k.index],
            )
            for k in self._keys()
        ]
        limiter = self.limiter
        content = _pages.rate_page(
            limiter.limit, limiter.window, rows, refused[:20], limiter.policy
        )
        return self._html("Rate limit", content, section="/rate-limit")

    def _faults(self, request: Request) -> Response:
        notice = {"saved": "Faults saved.", "off": "Every fault is off."}.get(
            request.args.get("done", ""), ""
        )
        if "cleared" in request.args:
            notice = f"Data cleared: {request.args['cleared']} people deleted, request log emptied."
        return self._faults_form(form_values(self.injector.faults), notice=notice)

    def _faults_form(
        self, values: dict[str, str], notice: str = "", error: str = "", status: int = 200
    ) -> Response:
        down = self.injector.down
        content = _pages.faults_page(form_fields(), values, down, notice=notice, error=error)
        return self._html("Faults", content, status, section="/faults")

    def _save_faults(self, request: Request) -> Response:
        form = {name: request.form.get(name, "") for name in request.form}
        try:
            faults = parse_form(form)
        except ValueError as e:
            return self._faults_form(form, error=str(e), status=400)
        self.controls.set_faults(faults)
        return redirect("/faults?done=saved", 303)

    def _faults_off(self, request: Request) -> Response:
        self.controls.set_faults(None)
        return redirect("/faults?done=off", 303)

    def _clear(self, request: Request) -> Response:
        deleted = self.controls.clear()
        return redirect(f"/faults?cleared={deleted}", 303)

    def _css(self, request: Request) -> Response:
        response = Response(CSS, content_type="text/css; charset=utf-8")
        response.headers.update(SECURITY_HEADERS)
        return response


def _page_number(request: Request) -> int:
    raw = request.args.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise _Refused(400, f"page must be a whole number from 1, not {raw!r}")
    return int(raw)


def _check_host(request: Request) -> None:
    """Serve loopback names only, so a rebound DNS name cannot read the pages."""
    host = request.host
    name = host if host.endswith("]") or ":" not in host else host.rpartition(":")[0]
    if name not in LOOPBACK_NAMES:
        raise _Refused(421, "This view answers to 127.0.0.1 or localhost only.")


def _check_origin(request: Request) -> None:
    """Refuse a form that was not sent from one of this server's own pages."""
    own = f"{request.scheme}://{request.host}"
    origin = request.headers.get("Origin")
    if origin != own:
        raise _Refused(403, f"Refused: a change must come from this page ({own}), not {origin}.")
