"""upsert_file_task, the Airflow callable, against the local server (Airflow not needed)."""

from __future__ import annotations

import ast
import json
import logging
import pickle
import py_compile
from pathlib import Path

import pandas as pd
import pytest

from flameup_pandas import FlameupError
from flameup_pandas.airflow import TooManyFailedRowsError, upsert_file_task
from flameup_pandas.testing import FlameupServer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SAMPLE = EXAMPLES / "customers.parquet"
SAMPLE_VALID = 1996  # 2,000 rows - 3 invalid - 1 duplicate userId


@pytest.fixture(autouse=True)
def _flameup_env(flameup_server: FlameupServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)


def _bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "people.parquet"
    pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3", "u4"],
            "email": ["a@example.com", "not-an-email", "also@@bad", "d@example.com"],
        }
    ).to_parquet(path, index=False)
    return path


def test_returns_plain_json_serialisable_counts(tmp_path: Path) -> None:
    results = tmp_path / "out" / "results.parquet"
    out = upsert_file_task(SAMPLE, results=results, max_failed=3, rate_limit=None)
    assert json.loads(json.dumps(out)) == out
    assert all(type(v) in (int, float, str, bool) for k, v in out.items() if k != "reasons")
    assert sum(r["count"] for r in out["reasons"]) == 3  # the sample's three invalid rows
    counts = (out["rows"], out["created"], out["invalid"], out["skipped"])
    assert counts == (2000, SAMPLE_VALID, 3, 1)
    assert out["results"] == str(results)
    assert len(pd.read_parquet(results)) == 2000


def test_logs_the_summary(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="flameup_pandas.airflow"):
        upsert_file_task(SAMPLE, max_failed=3, rate_limit=None)
    assert any(f"created={SAMPLE_VALID}" in r.getMessage() for r in caplog.records)


def test_logs_progress_lines_by_default(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="flameup_pandas"):
        upsert_file_task(SAMPLE, max_failed=3, rate_limit=None)
    lines = [r.getMessage() for r in caplog.records if r.name == "flameup_pandas.progress"]
    assert lines and lines[-1].startswith("upsert: 2,000/2,000 rows (100%), 20 requests, ")
    assert not any("\r" in line for line in lines)


def test_raises_above_the_threshold_with_counts_and_results_path(tmp_path: Path) -> None:
    results = tmp_path / "results.parquet"
    with pytest.raises(TooManyFailedRowsError) as caught:
        upsert_file_task(_bad_file(tmp_path), results=results, max_failed=1, rate_limit=None)
    error = caught.value
    assert isinstance(error, FlameupError)
    assert "2 of 4 rows" in str(error)
    assert "invalid 2" in str(error)
    assert str(results) in str(error)
    assert error.summary["invalid"] == 2
    assert error.summary["created"] == 2
    assert pickle.loads(pickle.dumps(error)).summary == error.summary


def test_at_the_threshold_the_task_passes(tmp_path: Path) -> None:
    assert upsert_file_task(_bad_file(tmp_path), max_failed=2, rate_limit=None)["invalid"] == 2


def test_max_failed_share_allows_a_fraction_of_rows(tmp_path: Path) -> None:
    path = _bad_file(tmp_path)
    assert upsert_file_task(path, max_failed_share=0.5, rate_limit=None)["invalid"] == 2
    with pytest.raises(TooManyFailedRowsError):
        upsert_file_task(path, max_failed_share=0.25, rate_limit=None)


@pytest.mark.parametrize(
    ("limits", "named"),
    [({"max_failed_share": 2}, "max_failed_share"), ({"max_failed": -1}, "max_failed")],
)
def test_rejects_bad_limits_before_anything_is_sent(
    limits: dict[str, float], named: str, tmp_path: Path, flameup_server: FlameupServer
) -> None:
    with pytest.raises(ValueError, match=named):
        upsert_file_task(_bad_file(tmp_path), rate_limit=None, **limits)
    assert flameup_server.request_count() == 0


def test_rerun_with_state_sends_nothing_new(tmp_path: Path, flameup_server: FlameupServer) -> None:
    """What makes Airflow retries safe: the second run finds everything in the state."""
    state = tmp_path / "state.parquet"
    first = upsert_file_task(SAMPLE, state=state, max_failed=3, rate_limit=None)
    second = upsert_file_task(SAMPLE, state=state, max_failed=3, rate_limit=None)
    assert first["created"] == SAMPLE_VALID
    assert (second["created"], second["updated"], second["requests"]) == (0, 0, 0)
    assert (second["skipped"], second["invalid"]) == (2000 - 3, 3)
    assert len(flameup_server.people()) == SAMPLE_VALID


def test_example_dag_compiles_without_airflow(tmp_path: Path) -> None:
    dag_file = EXAMPLES / "airflow_dag.py"
    py_compile.compile(str(dag_file), cfile=str(tmp_path / "dag.pyc"), doraise=True)
    tree = ast.parse(dag_file.read_text())
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert "flameup_customers_sync" in literals
