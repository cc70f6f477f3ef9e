"""Every code block in README.md runs, so the front door cannot rot.

``python`` blocks run in order in one namespace, in a scratch folder holding the sample file,
with FLAMEUP_API_KEY and FLAMEUP_BASE_URL pointing at a local server (a block importing Airflow
would only be compiled: ``.ci/airflow`` runs examples/airflow_dag.py under Airflow itself); a
``test_*`` function they define is then called with a fresh server, as pytest would.
``console`` blocks hold the README's two commands: the test command is what CI itself runs, so
here the main job runs (its install step is the one CI has just done) and must exit 0. The
README stays a front door (at most 150 lines) whose links are absolute (a package index shows
it away from the repository) and lead to pages that exist: the docs site's to a page of docs/,
the repository's to a file of it, both read from the project URLs of pyproject.toml. Its
performance figures are those of benchmarks/results.json. The long form lives in docs/
(tests/test_docs.py).
"""

from __future__ import annotations

import inspect
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
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
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    docs, source = urls["Documentation"], urls["Source"].rstrip("/") + "/blob/main/"
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert [link for link in links if not urlsplit(link).scheme] == [], "relative links"
    checked = 0
    for link in links:
        path = urlsplit(link).path
        if link.startswith(docs):
            page = path.removeprefix(urlsplit(docs).path).removesuffix(".html")
            assert any((ROOT / "docs" / f"{page}{s}").is_file() for s in (".md", ".ipynb")), link
        elif link.startswith(source):
            assert (ROOT / path.split("/blob/main/", 1)[1]).is_file(), link
        else:
            continue
        checked += 1
    assert checked >= 10


README_FIGURES = (
    "(commit {commit}, {day}, {machine[nproc]} shared cores): the nightly resync of "
    "{pacing[p2_rows]:,} rows with {pacing[p2_changed]:,} changed took {pacing[p2_seconds]:.2f} s "
    "({pacing[p2_even_seconds]:.2f} s under even pacing); an `upsert_file` dry run turns "
    "{conversion[file_rows_per_second]:,.0f} rows a second into people "
    "({conversion[file_speedup]:.1f}x `read_parquet` + `to_dict` + `json.dumps`); streaming "
    "{memory[rows]:,} rows peaked at {memory[stream_ratio]:.2f} of `pd.read_parquet`'s memory"
)
"""The README's performance sentence, filled from benchmarks/results.json."""


def test_the_readme_quotes_the_benchmark_results_file():
    """The figures the README gives are those of the results file the docs draw from: after a
    new benchmark run, this test prints the sentence to paste."""
    data = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    expected = README_FIGURES.format(day=data["date"][:10], **data, **data["results"])
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert expected in readme, f"the README should say: {expected}"


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
