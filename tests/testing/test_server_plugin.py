"""The pytest fixtures: a fresh server per test, and a factory for configured ones."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from flameup_pandas.testing import FlameupServer

from .conftest import Api

USER_TEST = """
import pytest

@pytest.mark.parametrize("flameup_person_shape", ["seed", "overview"])
def test_each_shape(flameup_server, flameup_person_shape):
    assert flameup_server.person_shape == flameup_person_shape

def test_one(flameup_server):
    assert flameup_server.people().empty
    assert flameup_server.base_url.endswith("/api/v1")

def test_factory(flameup_server_factory):
    server = flameup_server_factory(rate_limit=5)
    assert server.api_key.startswith("ws_test_")
"""


def test_the_fixture_gives_a_running_server(flameup_server: FlameupServer) -> None:
    assert Api(flameup_server).call("GET", "/people").status_code == 200
    headers = Api(flameup_server).call("GET", "/people").headers
    assert headers["X-RateLimit-Limit"] == "1000000"  # announced, never reached


def test_each_test_gets_a_fresh_server_part_1(flameup_server: FlameupServer) -> None:
    Api(flameup_server).batch({"userId": "leak"})


def test_each_test_gets_a_fresh_server_part_2(flameup_server: FlameupServer) -> None:
    assert flameup_server.person("leak") is None


def test_the_factory_passes_options(flameup_server_factory: Any) -> None:
    server = flameup_server_factory(rate_limit=1, rate_window=5.0)
    api = Api(server)
    assert [api.call("GET", "/people").status_code for _ in range(2)] == [200, 429]


PLUGIN = "flameup_pandas.testing.pytest_plugin"


def _installed() -> bool:
    """Whether the pytest11 entry point is registered (the package is installed)."""
    entry_points = importlib.metadata.entry_points(group="pytest11")
    return any(entry.value == PLUGIN for entry in entry_points)


def test_the_plugin_works_in_a_users_test_run(tmp_path: Path) -> None:
    """Installed: the entry point loads the plugin; from a checkout: ``-p`` loads it."""
    (tmp_path / "test_user.py").write_text(USER_TEST)
    load = [] if _installed() else ["-p", PLUGIN]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *load,
            str(tmp_path / "test_user.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
