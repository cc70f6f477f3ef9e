"""Every code block in README.md runs, so the front door cannot rot.

``python`` blocks run in order in one namespace, in a scratch folder holding the sample file,
with FLAMEUP_API_KEY and FLAMEUP_BASE_URL pointing at a local server (a block importing Airflow
would only be compiled: ``.ci/airflow`` runs examples/airflow_dag.py under Airflow itself); a
``test_*`` function they define is then called with a fresh server, as pytest would.
``console`` blocks hold the README's two commands: the test command is what CI itself runs, so
here the main job runs (its install step is the one CI has just done) and must exit 0. The
README stays a front door (at most 150 lines) whose links lead to pages that exist; the long
form lives in docs/ (tests/test_docs.py).
"""

from __future__ import annotations

import inspect
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from flameup_pandas.testing import FlameupServer

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(kind: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [body for lang, body in BLOCK.findall(text) if lang == kind]


@pytest.fixture
def scratch(tmp_path, monkeypatch, flameup_server_factory):
    # A server that announces its budget, as Flameup does (one without rate headers is held to
    # the documented 120 a minute, and the README's blocks together send more than that).
    flameup_server = flameup_server_factory(rate_limit=1_000_000)
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "customers.parquet", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)
    return flameup_server


def test_python_blocks_run_in_order(scratch):
    namespace: dict[str, object] = {"__name__": "readme"}
    code = blocks("python")
    assert len(code) >= 3
    for body in code:
        compiled = compile(body, "README.md", "exec")
        if "from airflow" in body:
            continue  # needs Airflow: .ci/airflow runs the same DAG shape under Airflow itself
        exec(compiled, namespace)
    assert len(scratch.people()) > 1900
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert tests, "the README shows a test against the flameup_server fixture"
    for test in tests:
        assert inspect.isfunction(test)
        assert set(inspect.signature(test).parameters) <= {"flameup_server"}
        with FlameupServer(rate_limit=1_000_000) as server:
            test(flameup_server=server)


def test_the_readme_is_a_front_door_whose_links_hold():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [link for link in links if not urlsplit(link).scheme]
    assert len(local) >= 10
    for link in local:
        assert (ROOT / urlsplit(link).path).is_file(), link


def test_main_command_runs(tmp_path):
    commands = [line for body in blocks("console") for line in body.splitlines() if line]
    main = next(c for c in commands if "flameup-pandas upsert" in c)
    cli_part = main.split("&&")[-1].strip()
    args = shlex.split(cli_part)[1:]
    assert args[0] == "upsert"
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    run = subprocess.run(
        [sys.executable, "-m", "flameup_pandas.cli", *args, "--no-progress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "created" in run.stdout
    assert (tmp_path / ".flameup" / "results.parquet").exists()


def test_test_command_is_what_ci_runs():
    commands = [line for body in blocks("console") for line in body.splitlines() if line]
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text()
