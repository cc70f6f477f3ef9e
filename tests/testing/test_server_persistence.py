"""Data and key survive a restart with a database file, via the class and via the command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from flameup_pandas.testing import FlameupServer

from .conftest import Api


def test_a_db_file_keeps_people_and_key_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "flameup.db"
    with FlameupServer(rate_limit=None, db=db) as server:
        key = server.api_key
        created = Api(server).batch({"userId": "u", "traits": {"plan": "pro"}}).json()
    with FlameupServer(rate_limit=None, db=str(db)) as again:
        assert again.api_key == key
        answer = Api(again).batch({"userId": "u", "traits": {"seats": 2}}).json()
        assert answer["updated_count"] == 1
        person = answer["people"][0]
        assert person["id"] == created["people"][0]["id"]
        assert person["attributes"] == {"plan": "pro", "seats": 2}


def test_memory_servers_share_nothing() -> None:
    with FlameupServer(rate_limit=None) as one, FlameupServer(rate_limit=None) as two:
        Api(one).batch({"userId": "u"})
        assert two.person("u") is None
        assert one.api_key != two.api_key
        assert Api(two, key=one.api_key).call("GET", "/people").status_code == 401


def test_start_stop_without_a_context_manager() -> None:
    server = FlameupServer(rate_limit=None).start()
    url = server.base_url
    assert server.start() is server
    server.stop()
    server.stop()
    try:
        requests.get(url + "/people", timeout=1)
    except requests.ConnectionError:
        pass
    else:
        raise AssertionError("the server still answers after stop()")


def _serve(db: Path, *options: str) -> tuple[subprocess.Popen[str], str, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flameup_pandas.testing",
            "--db",
            str(db),
            "--port",
            "0",
            *(options or ("--rate-limit", "off")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    values = {}
    for _ in range(2):
        name, _, value = process.stdout.readline().strip().partition("=")
        values[name] = value
    return process, values["FLAMEUP_BASE_URL"], values["FLAMEUP_API_KEY"]


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.communicate(timeout=5)


def test_the_serve_command_keeps_data_and_key_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "serve.db"
    process, base_url, key = _serve(db)
    try:
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/api/v1")
        answer = requests.post(
            f"{base_url}/people/batch",
            json={"people": [{"userId": "u"}]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=5,
        )
        assert answer.status_code == 200
        assert "X-RateLimit-Limit" not in answer.headers
    finally:
        _stop(process)
    process, base_url, key_again = _serve(db)
    try:
        assert key_again == key
        person = requests.get(
            f"{base_url}/people/u", timeout=5, headers={"Authorization": f"Bearer {key}"}
        )
        assert person.status_code == 200
    finally:
        _stop(process)


def test_the_serve_command_keeps_the_rate_policy_it_is_given(tmp_path: Path) -> None:
    """A token bucket of 2 per 60 s: Remaining counts tokens, Reset is when it is full again."""
    process, base_url, key = _serve(
        tmp_path / "bucket.db", "--rate-limit", "2", "--rate-policy", "bucket"
    )
    try:
        answers = [
            requests.get(
                f"{base_url}/people", timeout=5, headers={"Authorization": f"Bearer {key}"}
            )
            for _ in range(3)
        ]
    finally:
        _stop(process)
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    # one token short: full in 30 s (a token every 30 s); two short: in 60 s
    first, last = (int(answers[i].headers["X-RateLimit-Reset"]) for i in (0, 2))
    assert 29 <= last - first <= 31
