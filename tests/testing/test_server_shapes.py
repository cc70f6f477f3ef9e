"""person_shape: every endpoint answers people in the seed shape or the overview shape."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests

from flameup_pandas.testing import FlameupServer

from .conftest import Api

OVERVIEW_KEYS = ["id", "workspace_id", "userId", "email", "traits", "created_at", "updated_at"]


@pytest.mark.parametrize("flameup_person_shape", ["overview"])
def test_every_endpoint_answers_the_overview_shape(api: Api, flameup_server) -> None:
    batch = api.batch(
        {"userId": "u1", "email": "a@example.com", "phone": "+1", "traits": {"plan": "pro"}},
        {"email": "b@example.com", "traits": {"first_name": "Bo"}},
    ).json()
    assert batch["created_count"] == 2
    first, second = batch["people"]
    assert list(first) == OVERVIEW_KEYS
    assert first["userId"] == "u1" and first["email"] == "a@example.com"
    assert first["traits"] == {"phone": "+1", "plan": "pro"}
    assert second["userId"] is None and second["traits"] == {"first_name": "Bo"}
    assert api.call("GET", "/people/u1").json() == first
    updated = api.call("PUT", "/people/u1", json={"traits": {"locale": "fr"}}).json()
    assert updated["traits"] == {"phone": "+1", "locale": "fr", "plan": "pro"}
    created = api.call("POST", "/people", json={"userId": "u3"}).json()
    assert list(created) == OVERVIEW_KEYS and created["traits"] == {}
    listed = api.call("GET", "/people").json()["people"]
    assert [p["userId"] for p in listed] == ["u1", None, "u3"]
    # what the server stores (and shows tests) is the same either way
    assert flameup_server.person("u1")["attributes"] == {"plan": "pro"}
    assert flameup_server.person_shape == "overview"


def test_the_default_is_the_seed_shape(api: Api, flameup_server) -> None:
    person = api.batch({"userId": "u1", "traits": {"plan": "pro"}}).json()["people"][0]
    assert person["external_id"] == "u1" and person["attributes"] == {"plan": "pro"}
    assert flameup_server.person_shape == "seed"


def test_an_unknown_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="person_shape must be one of"):
        FlameupServer(person_shape="camel")


def test_serve_answers_the_shape_it_is_asked_for() -> None:
    command = [sys.executable, "-m", "flameup_pandas.testing", "--person-shape", "overview"]
    command += ["--rate-limit", "off"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as serve:
        try:
            assert serve.stdout is not None
            url = serve.stdout.readline().strip().removeprefix("FLAMEUP_BASE_URL=")
            key = serve.stdout.readline().strip().removeprefix("FLAMEUP_API_KEY=")
            answer = requests.post(
                f"{url}/people/batch",
                json={"people": [{"userId": "u1", "traits": {"plan": "pro"}}]},
                headers={"Authorization": f"Bearer {key}"},
                timeout=5,
            )
            assert answer.json()["people"][0]["userId"] == "u1"
        finally:
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(timeout=10) == 0
