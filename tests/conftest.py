"""Shared test helpers: every integration test talks HTTP to the local Flameup server."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from flameup_pandas.testing import PERSON_SHAPES, FlameupServer

from .s3 import s3, s3_endpoint  # noqa: F401 - fixtures: one loopback S3 per session

# Hypothesis profiles (docs/contributing.md). "ci", the default and always when CI is set:
# the same examples on every run (derandomize, no example database), so a change that
# touches nothing near a property test cannot fail it by luck, and no timing check (three
# suites share two cores in CI: an example that builds frames can take hundreds of ms there).
# "explore" (HYPOTHESIS_PROFILE=explore, locally): new random examples on every run, ten
# times as many, failures replayed from .hypothesis/; pin each one found with @example.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "ci"))

both_shapes = pytest.mark.parametrize("flameup_person_shape", PERSON_SHAPES)
"""Run a test against a ``flameup_server`` answering in each documented person shape.

For the tests that read Flameup's answers (matching, created vs updated, ids, read-back);
the others stay on the default shape to keep the suite quick."""


def target(server: FlameupServer, **extra: Any) -> dict[str, Any]:
    """Keywords that point upsert() at ``server`` with pacing off and no progress bar."""
    return {
        "api_key": server.api_key,
        "base_url": server.base_url,
        "rate_limit": None,
        "progress": False,
        **extra,
    }


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local[2] Spark session a worker: starting Spark (a JVM, then the Python workers its
    first tasks start) is the slow part. tests/schedule.py puts the Spark tests of other files
    on the same workers as test_spark.py's, so a run starts two JVMs for them, not one a file."""
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("flameup-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def to_server(flameup_server: FlameupServer) -> dict[str, Any]:
    return target(flameup_server)


@pytest.fixture
def lineage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[dict[str, Any]]]:
    """A loopback OpenLineage receiver on port 0; OPENLINEAGE_URL points at it. Yields the
    events received, in order."""
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/api/v1/lineage":
                received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.chdir(tmp_path)  # no openlineage.yml of the repository's
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{server.server_port}")
    before = set(os.environ)
    try:
        yield received
    finally:
        for name in set(os.environ) - before:  # the client copies OPENLINEAGE_URL into others
            del os.environ[name]
        server.shutdown()
        server.server_close()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n``: each file on one worker, a few long tests alone, longest first (schedule.py)."""
    from .schedule import make_scheduler

    return make_scheduler(config, log)
