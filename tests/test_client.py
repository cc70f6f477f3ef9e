"""FlameupClient: configuration, key hygiene, error bodies, transport errors."""

from __future__ import annotations

import http.server
import socket
import threading

import pandas as pd
import pytest
import requests

import flameup_pandas  # noqa: F401  (registers df.flameup)
from flameup_pandas import APIError, ConfigurationError, FlameupClient, TransportError
from flameup_pandas._people.person import PERSON_FIELDS
from flameup_pandas._send.client import display_url, read_error_body, why_unreachable
from flameup_pandas.testing import Faults

from .conftest import both_shapes


def test_repr_never_shows_the_key(flameup_server):
    client = FlameupClient(flameup_server.api_key, flameup_server.base_url)
    assert flameup_server.api_key not in repr(client)
    assert "ws_test_" in repr(client)


def test_whitespace_in_key_is_refused():
    with pytest.raises(ConfigurationError, match="whitespace"):
        FlameupClient("ws_test_a b", "http://127.0.0.1:1/api/v1")


def test_http_allowed_to_loopback_and_when_asked():
    FlameupClient("k", "http://localhost:1/api/v1").close()
    FlameupClient("k", "http://[::1]:1/api/v1").close()
    FlameupClient("k", "http://flameup.internal/api/v1", allow_http=True).close()
    with pytest.raises(ConfigurationError):
        FlameupClient("k", "ftp://127.0.0.1/api/v1")


@both_shapes
def test_get_person_reads_back_in_the_canonical_form_and_404_is_none(flameup_server):
    client = FlameupClient(flameup_server.api_key, flameup_server.base_url)
    assert client.get_person("nobody") is None
    answer = client.post_batch(
        b'{"people": [{"userId": "u1", "email": "u1@example.com", "phone": "+1-555-0100",'
        b' "traits": {"first_name": "Ada", "timezone": "UTC", "plan": "pro", "seats": 3}}]}'
    )
    assert answer.status == 200
    person = client.get_person("u1@example.com")
    stored = flameup_server.person("u1")
    assert person["external_id"] == "u1" and person["id"] == stored["id"]
    assert person["email"] == "u1@example.com" and person["phone"] == "+1-555-0100"
    assert person["first_name"] == "Ada" and person["timezone"] == "UTC"
    assert person["last_name"] is None
    assert person["attributes"] == {"plan": "pro", "seats": 3}
    assert person["created_at"] == stored["created_at"]
    assert list(person) == list(PERSON_FIELDS)


def test_a_404_page_that_is_not_flameups_is_an_error_not_a_missing_person(flameup_server):
    """A wrong base URL answers every GET with the web view's HTML 404: that is not "nobody
    has this id", and saying so would make a lookup report everyone as absent."""
    elsewhere = flameup_server.ui_url + "v2"
    client = FlameupClient(flameup_server.api_key, elsewhere)
    with pytest.raises(APIError) as caught:
        client.get_person("u1")
    message = str(caught.value)
    assert "GET /people/u1: an answer that is not Flameup's: HTTP 404 (text/html" in message
    assert "FLAMEUP_BASE_URL" in message and flameup_server.api_key not in message


def test_a_2xx_that_is_not_a_person_is_an_error_saying_what_came_back(flameup_server):
    flameup_server.set_faults(Faults(maintenance_rate=1.0))
    client = FlameupClient(flameup_server.api_key, flameup_server.base_url)
    with pytest.raises(APIError, match=r"not Flameup's: HTTP 200 \(text/html"):
        client.get_person("u1")


def test_401_answer_reads_the_documented_body(flameup_server):
    client = FlameupClient("ws_test_a_b." + "0" * 64, flameup_server.base_url)
    answer = client.post_batch(b'{"people": []}')
    assert answer.status == 401
    error = answer.error()
    assert error.status == 401 and error.request_id and "0" * 64 not in str(error)


def test_422_fields_are_read(flameup_server):
    client = FlameupClient(flameup_server.api_key, flameup_server.base_url)
    answer = client.post_batch(b'{"people": [{"userId": "u1", "email": "nope"}]}')
    assert answer.status == 422
    assert answer.error().fields == {"people[0].email": "Invalid email format"}


def test_no_server_is_a_transport_error_without_the_key():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = FlameupClient("ws_test_secret_x.abc", f"http://127.0.0.1:{port}/api/v1", timeout=1.0)
    with pytest.raises(TransportError) as info:
        client.post_batch(b"{}")
    assert "secret" not in str(info.value)


def test_error_body_shapes():
    assert read_error_body(None, "  plain text ") == ("plain text", {}, None)
    assert read_error_body({"error": {"code": "x"}}) == ("x", {}, None)


class _Redirector(http.server.BaseHTTPRequestHandler):
    """A misconfigured proxy: answers every request with a 307 to ``location``."""

    location = ""

    def do_POST(self) -> None:
        self.send_response(307)
        self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


def test_a_redirect_is_never_followed_and_names_where_it_pointed(flameup_server):
    """A 307 to another host stops the run; the other host receives nothing at all."""
    _Redirector.location = flameup_server.base_url + "/people/batch?token=secret#frag"
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        wrong = f"http://127.0.0.1:{proxy.server_port}/api/v1"
        df = pd.DataFrame({"userId": ["u1", "u2"], "email": ["a@example.com", "b@example.com"]})
        with pytest.raises(ConfigurationError) as caught:
            df.flameup.upsert(api_key=flameup_server.api_key, base_url=wrong, progress=False)
    finally:
        proxy.shutdown()
        proxy.server_close()
    message = str(caught.value)
    assert "redirect (HTTP 307)" in message
    assert f"to {flameup_server.base_url}/people/batch;" in message
    assert "secret" not in message and "frag" not in message
    assert "FLAMEUP_BASE_URL" in message
    assert flameup_server.request_count() == 0
    assert flameup_server.api_key not in message


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (requests.exceptions.ConnectTimeout(), "no connection within the connect timeout"),
        (requests.exceptions.SSLError(), "TLS handshake failed"),
        (requests.exceptions.ProxyError(), "the proxy could not connect"),
        (requests.ConnectionError(), "connection closed without an answer"),
        (requests.exceptions.ReadTimeout(), None),  # the server took the request: not missing
        (requests.exceptions.ChunkedEncodingError(), None),
    ],
)
def test_why_a_server_could_not_be_reached(error, reason):
    assert why_unreachable(error) == reason


def test_display_url_names_scheme_host_port_and_path_only():
    assert display_url("http://[::1]:8080/api/v1") == "http://[::1]:8080/api/v1"
    assert display_url("http://u:p@127.0.0.1/api/v1#x") == "http://127.0.0.1/api/v1"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.flameup.ai/api/v1", "https://api.flameup.ai/api/v1"),
        ("https://api.flameup.ai:443/api/v1", "https://api.flameup.ai/api/v1"),
        ("http://127.0.0.1:80/api/v1", "http://127.0.0.1/api/v1"),
        ("https://api.flameup.ai:80/api/v1", "https://api.flameup.ai:80/api/v1"),
        ("http://127.0.0.1:443/api/v1", "http://127.0.0.1:443/api/v1"),
    ],
)
def test_display_url_leaves_out_only_the_schemes_default_port(url, shown):
    assert display_url(url) == shown
