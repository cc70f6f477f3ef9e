"""pytest fixtures for testing pipelines against the local Flameup server.

Registered through the ``pytest11`` entry point, so installing flameup-pandas is enough::

    def test_pipeline(flameup_server):
        run_pipeline(base_url=flameup_server.base_url, api_key=flameup_server.api_key)
        assert len(flameup_server.people()) == 3
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ._server import FlameupServer

__all__ = ["flameup_person_shape", "flameup_server", "flameup_server_factory"]


@pytest.fixture
def flameup_person_shape() -> str:
    """The person shape of ``flameup_server``: ``"seed"``; parametrize it to try both.

    >>> @pytest.mark.parametrize("flameup_person_shape", ["seed", "overview"])
    ... def test_pipeline(flameup_server): ...
    """
    return "seed"


UNREACHED_LIMIT = 1_000_000
"""The fixture's rate limit: announced in the headers as Flameup does, never reached by a test
(a server with no limit sends no rate headers, and a client then assumes Flameup's documented
120 a minute, so a test that sends more would wait for the next minute)."""


@pytest.fixture
def flameup_server(flameup_person_shape: str) -> Iterator[FlameupServer]:
    """A fresh local Flameup server for one test: in memory, no faults, and a rate limit no
    test reaches (1,000,000 a minute, announced in the X-RateLimit-* headers)."""
    with FlameupServer(rate_limit=UNREACHED_LIMIT, person_shape=flameup_person_shape) as server:
        yield server


@pytest.fixture
def flameup_server_factory() -> Iterator[Callable[..., FlameupServer]]:
    """Start servers with any `FlameupServer` options; all are stopped after the test.

    >>> def test_rate_limited(flameup_server_factory):
    ...     server = flameup_server_factory(rate_limit=2, rate_window=1.0)
    """
    servers: list[FlameupServer] = []

    def start(**options: Any) -> FlameupServer:
        server = FlameupServer(**options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
