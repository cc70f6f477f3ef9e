"""Helpers for the local server's tests: a thin HTTP client bound to one server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from flameup_pandas._send.client import exact_request
from flameup_pandas.testing import FlameupServer

# The fixtures come from the pytest11 entry point once the package is installed; importing
# them here keeps these tests running from a plain checkout too.
from flameup_pandas.testing.pytest_plugin import (  # noqa: F401
    flameup_person_shape,
    flameup_server,
    flameup_server_factory,
)


class Api:
    """requests against one server with its key; ``key=None`` sends no Authorization."""

    def __init__(self, server: FlameupServer, key: str | None = "default") -> None:
        self.server = server
        self.session = requests.Session()
        token = server.api_key if key == "default" else key
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The answer to ``method path``, the path sent byte for byte as written (as the
        client sends it: ``/people/%2E`` stays that, where requests would ask for ``/people/.``)."""
        url = f"{self.server.base_url}{path}"
        return exact_request(self.session, method, url, timeout=kwargs.pop("timeout", 5), **kwargs)

    def batch(self, *people: Any, **kwargs: Any) -> requests.Response:
        return self.call("POST", "/people/batch", json={"people": list(people)}, **kwargs)

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    """An `Api` on this test's ``flameup_server``."""
    client = Api(request.getfixturevalue("flameup_server"))
    yield client
    client.close()


def assert_validation_error(answer: requests.Response, fields: dict[str, str]) -> None:
    """A 422 in the documented validation shape whose fields include ``fields``."""
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["details"]["fields"].items() >= fields.items(), error["details"]["fields"]
