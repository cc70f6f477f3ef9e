"""FlameupClient: the one module that speaks HTTP.

Above it, bytes to send and :class:`Answer` values; below it, :mod:`requests`. Transport
failures become ``TransportError`` and error bodies (three documented shapes) ``APIError``
subclasses here. Redirects are never followed. The API key never appears in a repr, log,
exception or progress bar; its fingerprint (a SHA-256) tells keys apart.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import socket
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter

from .._people.person import read_person
from .._version import __version__
from ..exceptions import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    RateLimitError,
    RequestRejectedError,
    ServerError,
    TransportError,
)
from .retry import header

__all__ = [
    "DEFAULT_BASE_URL",
    "Answer",
    "FlameupClient",
    "Timeout",
    "exact_request",
    "is_batch_answer",
    "is_error_answer",
    "is_page_answer",
    "is_person_answer",
    "path_segment",
]

logger = logging.getLogger("flameup_pandas")

DEFAULT_BASE_URL = "https://api.flameup.ai/api/v1"
API_KEY_ENV = "FLAMEUP_API_KEY"
BASE_URL_ENV = "FLAMEUP_BASE_URL"
KEY_PREFIXES = ("ws_live_", "ws_test_")
CLOSED = "connection closed without an answer"
"""The one unreachable host's reason that may follow a request sent (it may have been read)."""


@dataclass(frozen=True)
class Timeout:
    """Seconds to wait for a connection and for an answer, per request."""

    connect: float = 5.0
    read: float = 60.0


@dataclass(frozen=True)
class Answer:
    """What the server said: status, headers, and the body parsed as JSON (None if it was not)."""

    status: int
    headers: Mapping[str, str]
    body: Any
    elapsed: float = 0.0
    text: str = field(default="", repr=False)
    request: str = field(default="", repr=False)  # "POST /people/batch": for tracing

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def describe(self) -> str:
        """Status, content type and the body's first 100 characters, for an undocumented answer."""
        kind = header(self.headers, "Content-Type") or "no content type"
        return f"HTTP {self.status} ({kind}): {self.text.strip()[:100]!r}"

    def error(self) -> APIError:
        message, fields, request_id = read_error_body(self.body, self.text)
        if not isinstance(self.body, dict):
            message = f"an answer that is not Flameup's: {self.describe()}"
        return error_class(self.status)(
            message or f"HTTP {self.status}",
            status=self.status,
            fields=fields,
            request_id=request_id,
        )


# What Flameup's answers look like. A 2xx in another shape (a proxy's maintenance page, a
# captive portal, a misrouted URL answering HTML) is not Flameup's answer: nothing was read or
# stored, so the request loop retries it like a 503.


def is_batch_answer(answer: Answer) -> bool:
    """A 2xx answer to ``POST /people/batch`` in the documented shape: JSON with a people list."""
    return isinstance(answer.body, dict) and isinstance(answer.body.get("people"), list)


def is_page_answer(answer: Answer, items: str = "people") -> bool:
    """A 2xx answer to ``GET /people`` (or the events listing: ``items="events"``) in the
    documented shape: a list of ``items`` and a total.

    >>> is_page_answer(Answer(200, {}, {"people": [], "total": 0}))
    True
    >>> is_page_answer(Answer(200, {}, {"people": []})), is_page_answer(Answer(200, {}, [1]))
    (False, False)
    """
    body = answer.body if isinstance(answer.body, dict) else {}
    return isinstance(body.get(items), list) and type(body.get("total")) is int


def is_person_answer(answer: Answer) -> bool:
    """A 2xx answer to ``GET /people/{id}`` in either documented shape: a person with an id."""
    return isinstance(answer.body, dict) and answer.body.get("id") is not None


def is_error_answer(answer: Answer) -> bool:
    """An error answer in one of the three documented shapes (each has an ``error`` key). Tells
    Flameup's own 404 ("no such person") from a proxy's or a wrong host's 404 page."""
    return isinstance(answer.body, dict) and "error" in answer.body


def error_class(status: int) -> type[APIError]:
    if status in (401, 403):
        return AuthenticationError
    if status == 429:
        return RateLimitError
    if status in (400, 409, 422):
        return RequestRejectedError
    return ServerError if status >= 500 else APIError


def read_error_body(body: Any, text: str = "") -> tuple[str, dict[str, str], str | None]:
    """Read (message, fields, request_id) from any of the three documented error shapes.

    >>> read_error_body({"error": "Rate limit exceeded", "message": "Too many requests."})
    ('Rate limit exceeded: Too many requests.', {}, None)
    >>> read_error_body({"success": False, "error": {"type": "UNAUTHORIZED", "message": "bad key"},
    ...                  "request_id": "req_1"})
    ('UNAUTHORIZED: bad key', {}, 'req_1')
    >>> read_error_body({"error": {"code": "validation_error", "message": "Invalid",
    ...                  "details": {"fields": {"email": "Invalid email format"}}}})
    ('validation_error: Invalid', {'email': 'Invalid email format'}, None)
    """
    if not isinstance(body, dict):
        return (text.strip()[:500], {}, None)
    request_id = body.get("request_id")
    error = body.get("error")
    fields: dict[str, str] = {}
    if isinstance(error, dict):
        kind = error.get("type") or error.get("code")
        detail = str(error.get("message") or "")
        message = f"{kind}: {detail}" if kind and detail else str(kind or detail)
        details = error.get("details")
        raw_fields = details.get("fields") if isinstance(details, dict) else None
        if isinstance(raw_fields, dict):
            fields = {str(k): str(v) for k, v in raw_fields.items()}
    else:
        message = ": ".join(str(p) for p in (error, body.get("message")) if p)
    return (message, fields, str(request_id) if request_id else None)


def fingerprint(api_key: str, base_url: str) -> str:
    """A stable, non-reversible name for one key at one base URL (for shared budgets, state)."""
    return hashlib.sha256(f"{base_url}\n{api_key}".encode()).hexdigest()


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, *, allow_http: bool) -> str:
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigurationError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    if "?" in base_url or "#" in base_url:  # the paths put after it would land in that part
        raise ConfigurationError(
            f"base_url must end with its path, not a '?' or '#' part: {display_url(base_url)}"
        )
    if parsed.scheme == "http" and not allow_http and not is_loopback(parsed.hostname):
        raise ConfigurationError(
            f"refusing plain http:// to {parsed.hostname}: the API key would travel unencrypted. "
            "Use https://, or pass allow_http=True if you really mean it."
        )
    return base_url.rstrip("/")


class FlameupClient:
    """A connection to one Flameup workspace (one API key at one base URL).

    The key comes from ``api_key=`` or the ``FLAMEUP_API_KEY`` environment variable, the base URL
    from ``base_url=`` or ``FLAMEUP_BASE_URL`` (default ``https://api.flameup.ai/api/v1``). All
    threads share one :class:`requests.Session`, pooled for ``pool_size`` parallel requests.

    >>> client = FlameupClient(api_key="ws_test_acme_x.0123", base_url="http://127.0.0.1:9/api/v1")
    >>> client
    FlameupClient(base_url='http://127.0.0.1:9/api/v1', key='ws_test_…')
    >>> client.close()
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: Timeout | float | tuple[float, float] = Timeout(),
        allow_http: bool = False,
        pool_size: int = 16,
        session: requests.Session | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not key or not key.strip():
            raise ConfigurationError(
                f"no Flameup API key: pass api_key= or set the {API_KEY_ENV} environment variable"
            )
        if any(ch.isspace() for ch in key):
            raise ConfigurationError(
                "the Flameup API key contains whitespace; check how it was set"
            )
        url = base_url if base_url is not None else os.environ.get(BASE_URL_ENV, DEFAULT_BASE_URL)
        self.base_url = check_base_url(url, allow_http=allow_http)
        if not key.startswith(KEY_PREFIXES):
            logger.warning(
                "the API key does not look like a Flameup key (ws_live_… or ws_test_…); "
                "check FLAMEUP_API_KEY"
            )
        self.__key = key
        self.fingerprint = fingerprint(key, self.base_url)
        if isinstance(timeout, tuple):
            timeout = Timeout(*timeout)
        elif not isinstance(timeout, Timeout):
            timeout = Timeout(connect=min(float(timeout), Timeout.connect), read=float(timeout))
        self.timeout = timeout
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool_size, 1), max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.headers["User-Agent"] = f"flameup-pandas/{__version__}"
        self._session = session
        # proxies and CA bundle from the environment, read once: requests reads them per request
        self._settings = session.merge_environment_settings(self.base_url, {}, None, None, None)

    def __repr__(self) -> str:
        hint = next((p for p in KEY_PREFIXES if self.__key.startswith(p)), "") + "…"
        return f"FlameupClient(base_url={self.base_url!r}, key={hint!r})"

    def _bearer(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.__key}"
        return request

    def __enter__(self) -> FlameupClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Answer:
        """Send one request and return the answer, whatever its status; raises TransportError
        when no answer came (connection refused or dropped, timeout)."""
        started = time.monotonic()
        try:
            response = exact_request(
                self._session,
                method,
                self.base_url + path,
                timeout=(self.timeout.connect, self.timeout.read),
                settings=self._settings,
                data=body,
                params=params,
                headers={"Content-Type": "application/json"} if body is not None else None,
                auth=self._bearer,  # an explicit auth: requests looks for no .netrc
            )
            text = response.text
            body = orjson.loads(text) if text else None
        except orjson.JSONDecodeError:
            body = None
        except requests.RequestException as exc:
            unreachable = why_unreachable(exc)
            reason = unreachable or _describe_transport_error(exc)
            raise TransportError(
                f"{method} {path}: {reason} ({exc.__class__.__name__})",
                reason=reason,
                url=display_url(self.base_url),
                unreachable=unreachable is not None,
            ) from None
        if response.is_redirect or 300 <= response.status_code < 400:
            where = "nowhere (no Location header)"
            if location := response.headers.get("Location"):
                where = display_url(urllib.parse.urljoin(response.url, location))
            raise ConfigurationError(
                f"{method} {path} was answered with a redirect (HTTP {response.status_code}) to "
                f"{where}; flameup-pandas never follows redirects, so no customer data went "
                f"there. Check {BASE_URL_ENV} (or base_url=): it should be the API's own URL."
            )
        return Answer(
            status=response.status_code,
            headers=response.headers,  # requests made it case-insensitive
            body=body,
            elapsed=time.monotonic() - started,
            text=text,
            request=f"{method} {path}",
        )

    def post_batch(self, body: bytes) -> Answer:
        """POST /people/batch with an already encoded ``{"people": [...]}`` body."""
        return self.request("POST", "/people/batch", body=body)

    def get_person(self, id_or_email: str) -> dict[str, Any] | None:
        """GET /people/{id}: the person (in canonical form, :func:`read_person`) by external id or
        email, or None for Flameup's own 404. Any other answer that is not a person raises
        :class:`APIError` saying what came back. One request, no retries."""
        path = "/people/" + path_segment(id_or_email)
        answer = self.request("GET", path)
        if answer.status == 404 and is_error_answer(answer):
            return None
        if answer.ok and is_person_answer(answer):
            return read_person(answer.body)
        if answer.ok or not is_error_answer(answer):
            raise error_class(answer.status)(
                f"GET {path}: an answer that is not Flameup's: {answer.describe()}; "
                "check FLAMEUP_BASE_URL",
                status=answer.status,
            )
        raise answer.error()


def path_segment(value: str) -> str:
    """``value`` (a userId, an email, a workspace id) as one path segment naming exactly it: all
    but ASCII letters, digits, ``-_~`` percent-encoded, dots too (HTTP stacks read a segment
    ``..`` as "the folder above", so the person ``..`` would be asked for at another route)."""
    return urllib.parse.quote(value, safe="").replace(".", "%2E")


def exact_request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: Any,
    settings: Any = None,
    **fields: Any,
) -> requests.Response:
    """``session.request(method, url, **fields)``, never redirected, with the path sent as written:
    requests decodes ``%2E`` to ``.`` and urllib3 drops the ``.``/``..`` segments that result, so
    :func:`path_segment`'s escapes are put back. ``settings``: proxies and CA bundle, if read."""
    prepared = session.prepare_request(requests.Request(method, url, **fields))
    # the path quoted as requests quotes it (RFC 3986's path characters and escapes kept)
    path = urllib.parse.quote(urllib.parse.urlsplit(url).path, safe="/%!$&'()*+,;=:@~")
    prepared.url = urllib.parse.urlsplit(str(prepared.url))._replace(path=path).geturl()
    if settings is None:
        settings = session.merge_environment_settings(prepared.url, {}, None, None, None)
    return session.send(prepared, timeout=timeout, allow_redirects=False, **settings)


def display_url(base_url: str) -> str:
    """The base URL as scheme, host, port (unless the scheme's default, as a browser shows it)
    and path: no user, password, query or fragment.

    >>> display_url("https://user:secret@api.flameup.ai:443/api/v1?x=1")
    'https://api.flameup.ai/api/v1'
    """
    parsed = urllib.parse.urlsplit(base_url)
    host = parsed.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if (port := parsed.port) is not None and port != {"http": 80, "https": 443}.get(parsed.scheme):
        host = f"{host}:{port}"
    return f"{parsed.scheme}://{host}{parsed.path}"


def why_unreachable(exc: requests.RequestException) -> str | None:
    """Why no connection was made (or it closed before answering), or None: a failure after the
    server accepted the request (a read timeout) is a slow server, not a missing one."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "no connection within the connect timeout"
    if isinstance(exc, requests.exceptions.ProxyError):
        return "the proxy could not connect"
    if not isinstance(exc, requests.ConnectionError):
        return None
    causes = list(_causes(exc))
    if any(isinstance(c, urllib3.exceptions.NameResolutionError | socket.gaierror) for c in causes):
        return "name not resolved"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection refused"
    if any(isinstance(c, urllib3.exceptions.NewConnectionError) for c in causes):
        return "cannot connect"
    return CLOSED


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend((getattr(current, "reason", None), current.__cause__, current.__context__))
        todo.extend(current.args[:1])


def _describe_transport_error(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "no answer within the timeout"
    # The exception text of requests can embed the URL; it never holds headers, so no key.
    inner = exc.args[0] if exc.args else None
    detail = getattr(inner, "reason", None) or inner
    return f"{type(exc).__name__} ({detail})" if detail else type(exc).__name__
