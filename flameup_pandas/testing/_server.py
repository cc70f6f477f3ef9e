"""`FlameupServer`: the local Flameup API on 127.0.0.1, in a background thread."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ._app import API_PREFIX, FlameupApp
from ._endpoints import STATUSES
from ._faults import FaultInjector, Faults
from ._ratelimit import DOCUMENTED_LIMIT, RateLimiter, RatePolicy
from ._records import RecordedRequest, RequestLog
from ._shapes import check_shape
from ._store import ALL_PERMISSIONS, EVENT_FIELDS, EventFilters, Store
from ._ui import Controls, WebView

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PEOPLE_COLUMNS", "FlameupServer"]

HOST = "127.0.0.1"
PEOPLE_COLUMNS = (
    "id",
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "avatar_url",
    "timezone",
    "locale",
    "status",
    "attributes",
    "created_at",
    "updated_at",
    "first_seen_at",
    "last_seen_at",
)


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without a log line per request (errors are still logged), whose
    ``Date`` header is on the server's clock (``Faults.clock_offset``)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def date_time_string(self, timestamp: float | None = None) -> str:
        clock = getattr(self.server, "flameup_clock", None)
        if timestamp is None and clock is not None:
            timestamp = clock()
        return super().date_time_string(timestamp)


class FlameupServer:
    """A real HTTP server that answers like Flameup's people API, for tests and demos.

    ``rate_limit`` is requests per ``rate_window`` seconds per key (None: off, and then no
    X-RateLimit-* headers are sent), kept by ``rate_policy``: ``"fixed"`` windows (Flameup's,
    the default), a ``"sliding"`` window log or a token ``"bucket"``, each announcing its own
    ``Remaining`` and ``Reset``; ``db`` a SQLite file (None: in memory), whose data and
    API key survive a restart; ``per_person_errors`` makes a batch store its valid people and
    report the others instead of failing whole; ``faults`` injects failures (an outage too:
    ``Faults(down_after=30, down_mode="refuse")``); ``port=0`` picks a free port;
    ``person_shape`` is the documented shape every person is answered in: ``"seed"``
    (``external_id``, known traits as fields, custom ones under ``attributes``, as on the batch
    page) or ``"overview"`` (``userId`` and one ``traits`` object, as on the People API
    overview). Binds 127.0.0.1 only.

    >>> import requests
    >>> with FlameupServer(rate_limit=None) as server:
    ...     answer = requests.post(
    ...         f"{server.base_url}/people/batch",
    ...         json={"people": [{"userId": "u1", "traits": {"first_name": "Ada"}}]},
    ...         headers={"Authorization": f"Bearer {server.api_key}"},
    ...         timeout=5,
    ...     )
    ...     answer.json()["created_count"], server.person("u1")["first_name"]
    (1, 'Ada')
    """

    def __init__(
        self,
        rate_limit: int | None = DOCUMENTED_LIMIT,
        db: str | os.PathLike[str] | None = None,
        per_person_errors: bool = False,
        faults: Faults | None = None,
        rate_window: float = 60.0,
        port: int = 0,
        person_shape: str = "seed",
        rate_policy: RatePolicy = "fixed",
    ) -> None:
        check_shape(person_shape)
        self._store = Store(db)
        keys = [k for k in self._store.api_keys() if k.permissions >= set(ALL_PERMISSIONS)]
        self.api_key = keys[0].key if keys else self._store.add_key().key
        """A valid ``ws_test_...`` key with every permission."""
        self._log = RequestLog()
        self._injector = FaultInjector(faults, on_down=self._outage_began)
        limiter = RateLimiter(rate_limit, rate_window, rate_policy, clock=self._server_clock)
        controls = Controls(self.set_faults, self._clear_data, lambda: self.base_url)
        view = WebView(self._store, self._log, limiter, self._injector, controls)
        self._app = FlameupApp(self._store, limiter, self._injector, self._log, web_view=view)
        self._app.endpoints.per_person_errors = per_person_errors
        self._app.endpoints.person_shape = person_shape
        self._port = port
        self._bound: int | None = None
        """The port once bound: the server listens there again after an outage."""
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._listener = threading.RLock()
        self._recovery: threading.Timer | None = None
        self._closed = False

    def _server_clock(self) -> float:
        """Now on the server's clock: ours plus ``Faults.clock_offset``."""
        return time.time() + self._injector.faults.clock_offset

    # lifecycle

    def start(self) -> FlameupServer:
        """Bind and serve in a daemon thread; returns the server itself."""
        if self._closed:
            raise RuntimeError("this FlameupServer was stopped; create a new one")
        if self._bound is None:
            self._listen()
        return self

    def stop(self) -> None:
        """Stop serving, let answers in flight finish (up to 5 s), close the database."""
        if self._closed:
            return
        self._closed = True
        self._cancel_recovery()
        if self._bound is not None:
            self._stop_listening()
            self._app.wait_idle(timeout=5)
        self._store.close()

    def _listen(self) -> None:
        with self._listener:
            if self._server is not None or self._closed:
                return
            port = self._port if self._bound is None else self._bound
            server = make_server(
                HOST, port, self._app, threaded=True, request_handler=_QuietHandler
            )
            server.flameup_clock = self._server_clock  # type: ignore[attr-defined]
            self._server, self._bound = server, int(server.port)
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"flameup-server-{server.port}",
                daemon=True,
            )
            self._thread.start()

    def _stop_listening(self) -> None:
        """Close the listening socket: new connections are refused from now on."""
        with self._listener:
            server, self._server = self._server, None
            if server is None:
                return
            server.shutdown()
            if self._thread is not None:
                self._thread.join(timeout=5)
            server.server_close()

    # outages (Faults.down_after)

    @property
    def down(self) -> bool:
        """Whether an outage of the faults is under way."""
        return self._injector.down

    def _outage_began(self, faults: Faults) -> None:
        if faults.down_mode == "refuse":
            self._stop_listening()
        if faults.down_for is not None:
            self._cancel_recovery()
            self._recovery = threading.Timer(faults.down_for, self._recover)
            self._recovery.daemon = True
            self._recovery.start()

    def _recover(self) -> None:
        self._injector.end_outage()
        self._listen()

    def _cancel_recovery(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
            self._recovery = None

    def __enter__(self) -> FlameupServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # where it listens

    @property
    def port(self) -> int:
        if self._bound is None:
            raise RuntimeError("the server is not started; call start() or use `with`")
        return self._bound

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v1``."""
        return f"http://{HOST}:{self.port}{API_PREFIX}"

    @property
    def ui_url(self) -> str:
        """``http://127.0.0.1:PORT/``: the web view of what the server holds and was asked."""
        return f"http://{HOST}:{self.port}/"

    @property
    def workspace_id(self) -> str:
        return self._store.workspace_id

    # configuration while running

    @property
    def faults(self) -> Faults:
        return self._injector.faults

    def set_faults(self, faults: Faults | None) -> None:
        """Replace the faults (None: none); the random draws restart from their seed.

        An outage under way ends: the server answers (and listens) again.
        """
        self._cancel_recovery()
        self._injector.faults = faults or Faults()
        if self._bound is not None:
            self._listen()

    @property
    def per_person_errors(self) -> bool:
        return self._app.endpoints.per_person_errors

    @per_person_errors.setter
    def per_person_errors(self, value: bool) -> None:
        self._app.endpoints.per_person_errors = value

    @property
    def person_shape(self) -> str:
        """``"seed"`` or ``"overview"``: the shape every person is answered in."""
        return self._app.endpoints.person_shape

    def add_key(self, permissions: Sequence[str] = ALL_PERMISSIONS) -> str:
        """A new valid key of the same workspace, with its own rate-limit window.

        ``permissions`` out of ``people:read``, ``people:write``, ``people:list``,
        ``events:write`` and ``events:read``; a key
        without the one an endpoint needs gets 403.
        """
        unknown = set(permissions) - set(ALL_PERMISSIONS)
        if unknown:
            raise ValueError(f"unknown permissions: {sorted(unknown)}")
        key = self._store.add_key(permissions)
        self._app.add_key(key)
        return key.key

    # what it stores

    def people(self) -> pd.DataFrame:
        """Every stored person, oldest first, one row each (``attributes`` holds dicts)."""
        import pandas as pd

        rows = self._store.all()
        return pd.DataFrame(
            [{c: row[c] for c in PEOPLE_COLUMNS} for row in rows], columns=list(PEOPLE_COLUMNS)
        )

    def events(self) -> pd.DataFrame:
        """Every stored event, oldest first, one row each (``parameters`` holds dicts): ``id``,
        ``workspace_id``, ``person_id``, ``user_id`` (the external id or email it was sent
        with), ``event``, ``parameters``, ``timestamp``, ``created_at``."""
        import pandas as pd

        events, _ = self._store.events_page(-1, 0, EventFilters())
        return pd.DataFrame(events, columns=list(EVENT_FIELDS))

    def person(self, identifier: str) -> dict[str, Any] | None:
        """The person object with this external id (else email), or None."""
        return self._store.get(identifier)

    def set_status(self, identifier: str, status: str) -> dict[str, Any]:
        """Give a stored person another status (``active``, ``unsubscribed``, ``bounced``), as
        an unsubscribe link or a bounce would; returns the person."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        person = self._store.set_status(identifier, status)
        if person is None:
            raise KeyError(identifier)
        return person

    def remove(self, identifier: str) -> None:
        """Delete a stored person (by external id, else email), as the dashboard would."""
        if not self._store.remove(identifier):
            raise KeyError(identifier)

    # what it was asked

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the request log, oldest first."""
        return self._log.snapshot()

    def request_count(
        self,
        path_suffix: str | None = None,
        status: int | None = None,
        method: str | None = None,
    ) -> int:
        """How many recorded requests match every filter given."""
        return sum(
            1
            for r in self._log.snapshot()
            if (path_suffix is None or r.path.endswith(path_suffix))
            and (status is None or r.status == status)
            and (method is None or r.method == method.upper())
        )

    def request_bodies(self, path_suffix: str | None = None) -> list[bytes]:
        """The bodies of the latest requests (up to 200), oldest first; ``path_suffix``
        keeps only the requests whose path ends with it (``"/people/batch"``)."""
        paths = {r.request_id: r.path for r in self._log.snapshot()}
        return [
            bodies.request
            for request_id, bodies in self._log.kept_bodies().items()
            if path_suffix is None or paths.get(request_id, "").endswith(path_suffix)
        ]

    def reset_requests(self) -> None:
        """Forget the recorded requests (stored people stay)."""
        self._log.clear()

    def _clear_data(self) -> int:
        """The web view's "clear data": delete the people, forget the requests (keys stay)."""
        deleted = self._store.clear_people()
        self._log.clear()
        return deleted

    def __repr__(self) -> str:
        where = self.base_url if self._bound is not None and not self._closed else "stopped"
        return f"<FlameupServer {where}>"
