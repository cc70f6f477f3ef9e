"""An id in a URL names exactly that person (issue 33): ``.``, ``..``, ``a/b``, ``%2E``, ``?x``,
``#``, unicode and 255 characters, as the bytes on the wire show and as Flameup reads them."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flameup_pandas
from flameup_pandas import ConfigurationError, FlameupClient
from flameup_pandas._events.rules import Event
from flameup_pandas._events.send import EventSender
from flameup_pandas._run.options import Delivery
from flameup_pandas._send.client import path_segment
from flameup_pandas._storage import resolve
from flameup_pandas.testing import FlameupServer

NASTY_IDS = [".", "..", "a/b", "%2E", "?x", "#", "名前 ü😀", "." * 255]
"""The ids of the issue: each would reach another URL, or another person, if not encoded."""

WIRE_IDS = [*NASTY_IDS, "./..", "a..", "ann@example.com", "x y+z&w=1", "%", "\\", "~-_"]

KEY = "ws_test_wire_x.0123"


def test_a_path_segment_is_letters_digits_and_escapes_only() -> None:
    for value in WIRE_IDS:
        segment = path_segment(value)
        assert re.fullmatch(r"(?:[A-Za-z0-9_~-]|%[0-9A-F]{2})+", segment), segment
        assert unquote(segment) == value
    assert path_segment(".") == "%2E" and path_segment("..") == "%2E%2E"


class WireListener:
    """A raw HTTP listener on 127.0.0.1 that keeps each request line's target as sent, and
    answers ``(status, JSON body)`` from ``answer(target)``, closing the connection."""

    def __init__(self, answer: Callable[[str], tuple[int, Any]]) -> None:
        self.answer = answer
        self.targets: list[str] = []
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/api/v1"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            with connection:
                self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        while length and len(body) < int(length[1]):
            body += connection.recv(65536)
        target = head.split(b"\r\n")[0].split(b" ")[1].decode("ascii")
        self.targets.append(target)
        status, answer = self.answer(target)
        payload = orjson.dumps(answer)
        connection.sendall(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%b" % (status, len(payload), payload)
        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in the thread
        self._socket.close()
        self._thread.join(5)
        assert not self._thread.is_alive()


def flameup_like(target: str) -> tuple[int, Any]:
    """Nobody is held, the listing claims 100,000 people (so a plan reads one at a time)."""
    path = urlsplit(target).path
    if path.endswith("/events"):
        return 200, {"events": [], "total": 0}
    if path == "/api/v1/people":
        return 200, {"people": [], "total": 100_000, "limit": 100, "offset": 0}
    return 404, {"success": False, "error": {"type": "NOT_FOUND", "message": "Person not found"}}


@pytest.fixture
def wire() -> Iterator[WireListener]:
    listener = WireListener(flameup_like)
    yield listener
    listener.close()


def named(target: str, prefix: str, suffix: str = "") -> str:
    """The id in ``target``'s path between ``prefix`` and ``suffix``, checked to be one segment
    of letters, digits and escapes (nothing a server could normalise), then decoded."""
    path = urlsplit(target).path
    assert path.startswith(prefix) and path.endswith(suffix), target
    segment = path[len(prefix) : len(path) - len(suffix)]
    assert re.fullmatch(r"(?:[A-Za-z0-9_~-]|%[0-9A-F]{2})+", segment), target
    return unquote(segment)


def query(target: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(target).query, keep_blank_values=True)


def test_get_person_sends_each_id_as_one_encoded_segment(wire: WireListener) -> None:
    with FlameupClient(KEY, wire.base_url) as client:
        for value in WIRE_IDS:
            assert client.get_person(value) is None
    assert [named(t, "/api/v1/people/") for t in wire.targets] == WIRE_IDS


@settings(max_examples=50)
@given(value=st.text(min_size=1, max_size=255))
def test_any_id_is_one_segment_on_the_wire(value: str) -> None:
    listener = WireListener(flameup_like)
    try:
        with FlameupClient(KEY, listener.base_url) as client:
            assert client.get_person(value) is None
    finally:
        listener.close()
    [target] = listener.targets
    assert named(target, "/api/v1/people/") == value


def test_a_plan_against_flameup_reads_each_id_at_its_own_url(wire: WireListener) -> None:
    """With more people held than read, the plan reads one person a request."""
    frame = pd.DataFrame({"userId": WIRE_IDS, "tag": "x"})
    planned = frame.flameup.plan(
        against="flameup", api_key=KEY, base_url=wire.base_url, rate_limit=None, progress=False
    )
    assert planned["flameup_action"].tolist() == ["create"] * len(WIRE_IDS)
    listing, *reads = wire.targets
    assert urlsplit(listing).path == "/api/v1/people"
    assert [named(t, "/api/v1/people/") for t in reads] == WIRE_IDS


@pytest.mark.parametrize("workspace", ["ws_1", "a/b", ".."])
def test_the_events_listing_names_workspace_and_user_exactly(
    wire: WireListener, workspace: str
) -> None:
    """``read_events(user_id=)`` and the lookup of an event whose answer was lost."""
    options = {"api_key": KEY, "base_url": wire.base_url, "rate_limit": None}
    for value in WIRE_IDS:
        flameup_pandas.read_events(workspace_id=workspace, user_id=value, **options)
    sender = Delivery(**options).open()
    try:
        finder = EventSender(sender.deliverer, workspace)
        for value in WIRE_IDS:
            now = dt.datetime.now(dt.UTC)
            assert finder.resolve(Event("k", value, value, now, {}, b"{}"), "lookup") is None
    finally:
        sender.close()
    assert len(wire.targets) == 2 * len(WIRE_IDS)
    for target in wire.targets:
        assert named(target, "/api/v1/workspaces/", "/events") == workspace
    assert [query(t)["user_id"] for t in wire.targets] == [[v] for v in WIRE_IDS * 2]
    assert [query(t)["event"] for t in wire.targets[len(WIRE_IDS) :]] == [[v] for v in WIRE_IDS]


def test_read_people_search_is_sent_as_written(wire: WireListener) -> None:
    wire.answer = lambda _: (200, {"people": [], "total": 0, "limit": 100, "offset": 0})
    options = {"api_key": KEY, "base_url": wire.base_url, "rate_limit": None}
    for value in WIRE_IDS:
        flameup_pandas.read_people(search=value, progress=False, **options)
    assert [query(t)["search"] for t in wire.targets] == [[v] for v in WIRE_IDS]


@pytest.mark.parametrize("others", [0, 1000], ids=["through the listing", "one a person"])
def test_a_plan_against_flameup_finds_every_stored_id(
    flameup_server: FlameupServer,
    to_server: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    others: int,
) -> None:
    """The issue's reproducer: with 1,000 other people held, ``.`` and ``..`` were ``create``."""
    if others:
        pd.DataFrame({"userId": [f"other{i}" for i in range(others)]}).flameup.upsert(**to_server)
    state = tmp_path / "people.state.parquet"
    pd.DataFrame({"userId": NASTY_IDS, "tag": "old"}).flameup.upsert(state=state, **to_server)
    changed = pd.DataFrame({"userId": NASTY_IDS, "tag": "new"})
    with caplog.at_level(logging.WARNING, logger="flameup_pandas"):
        planned = changed.flameup.plan(state=state, against="flameup", **to_server)
    assert ("one a person" in caplog.text) is bool(others)
    assert planned["flameup_action"].tolist() == ["update"] * len(NASTY_IDS)
    assert planned["flameup_before"].tolist() == [{"tag": "old"}] * len(NASTY_IDS)


def test_every_stored_id_reads_back(
    flameup_server: FlameupServer, to_server: dict[str, Any]
) -> None:
    pd.DataFrame({"userId": NASTY_IDS, "tag": NASTY_IDS}).flameup.upsert(**to_server)
    people = flameup_pandas.read_people(**to_server)
    assert sorted(people["external_id"]) == sorted(NASTY_IDS)
    with FlameupClient(flameup_server.api_key, flameup_server.base_url) as client:
        for value in NASTY_IDS:
            person = client.get_person(value)
            assert person is not None
            assert (person["external_id"], person["attributes"]) == (value, {"tag": value})


# Other values put into a URL or a path: the base URL, and file:// URIs (state, results,
# sources). Object keys of the journal and the lease are the run's own (a time, a uuid, a
# number), and the state's siblings (.lock, .journal) are its path plus a suffix.


@pytest.mark.parametrize("tail", ["?x=1", "?", "#top"])
def test_a_base_url_with_a_query_or_fragment_is_refused(tail: str) -> None:
    """Paths are put after the base URL: after a ``?`` or ``#`` they would not be a path."""
    with pytest.raises(ConfigurationError, match="must end with its path") as caught:
        FlameupClient(KEY, "http://127.0.0.1:1/api/v1" + tail)
    assert "x=1" not in str(caught.value)  # a query may hold a token


@pytest.mark.parametrize(
    "uri", ["file:///tmp/a#b.parquet", "file:///tmp/a?b.parquet", "file://host/tmp/a.parquet"]
)
def test_a_file_uri_that_would_name_another_file_is_refused(uri: str) -> None:
    """``#b.parquet`` and ``?b.parquet`` were dropped and the host ignored: ``/tmp/a``."""
    with pytest.raises(ConfigurationError, match="names a local file by its path alone"):
        resolve(uri)


def test_a_file_uri_names_the_file_its_escapes_spell(tmp_path: Path) -> None:
    escaped = resolve(f"file://{tmp_path}/a%23b%3Fc%20d.parquet")
    assert escaped.local_path == tmp_path / "a#b?c d.parquet"
    assert resolve(f"file://localhost{tmp_path}/s.parquet").local_path == tmp_path / "s.parquet"
