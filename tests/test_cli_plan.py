"""The flameup-pandas plan command (exit codes, --out) and upsert --max-changes."""

from __future__ import annotations

import pandas as pd
import pytest

from flameup_pandas.cli import main

from .test_upsert import customers


@pytest.fixture
def env(flameup_server, monkeypatch):
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)
    return flameup_server


@pytest.fixture
def synced(env, tmp_path):
    """A file of 20 customers, synced with a state: (file, state)."""
    path, state = tmp_path / "c.parquet", tmp_path / "c.state.parquet"
    customers(20).to_parquet(path)
    assert main(["upsert", str(path), "--state", str(state), "--no-progress"]) == 0
    return path, state


def test_plan_detailed_exitcode_is_0_when_nothing_would_be_sent(synced, capsys):
    path, state = synced
    assert main(["plan", str(path), "--state", str(state), "--detailed-exitcode"]) == 0
    assert "unchanged 20" in capsys.readouterr().out


def test_plan_detailed_exitcode_is_2_when_something_would_be_sent(env, synced, tmp_path, capsys):
    path, state = synced
    changed = customers(20)
    changed.loc[:9, "plan"] = "gold"
    changed.to_parquet(path)
    out = tmp_path / "plan.parquet"
    env.reset_requests()
    argv = ["plan", str(path), "--state", str(state), "--out", str(out), "--no-progress"]
    assert main([*argv, "--detailed-exitcode"]) == 2
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "update 10" in printed and "plan" in printed
    written = pd.read_parquet(out)
    assert written["flameup_action"].value_counts().to_dict() == {"update": 10, "unchanged": 10}
    assert env.request_count() == 0


def test_plan_detailed_exitcode_is_1_on_error(env, tmp_path):
    missing = str(tmp_path / "none.parquet")
    assert main(["plan", missing, "--detailed-exitcode"]) == 1
    assert main(["plan", missing]) == 2


def test_upsert_max_changes_refuses_before_sending(env, synced, capsys):
    path, state = synced
    changed = customers(20)
    changed.loc[:9, "plan"] = "gold"
    changed.to_parquet(path)
    env.reset_requests()
    argv = ["upsert", str(path), "--state", str(state), "--no-progress"]
    assert main([*argv, "--max-changes", "5%"]) == 1
    assert "would update 10 of 20 people" in capsys.readouterr().err
    assert env.request_count() == 0
    assert main([*argv, "--max-changes", "10"]) == 0
    assert env.request_count() == 1


def test_max_changes_must_be_a_count_or_a_percentage(env, tmp_path):
    with pytest.raises(SystemExit) as usage:
        main(["upsert", str(tmp_path / "c.parquet"), "--max-changes", "lots"])
    assert usage.value.code == 2


def test_plan_against_flameup_with_a_sample(env, synced, caplog):
    path, state = synced
    changed = customers(20)
    changed.loc[:9, "plan"] = "gold"
    changed.to_parquet(path)
    env.reset_requests()
    argv = ["plan", str(path), "--state", str(state), "--against", "flameup", "--sample", "3"]
    assert main([*argv, "--no-progress"]) == 0
    assert env.request_count() == 1  # one page of the listing holds all 20: cheaper than 3 GETs
    assert "reading 3 people from Flameup" in caplog.text
    assert "through its listing of 20 people: 1 request" in caplog.text


def test_state_values_from_upsert_to_plan(env, tmp_path, capsys):
    """upsert --state-values keeps the values sent; plan --state-values prints before -> after
    and writes them (as JSON text) with --out."""
    path, state = tmp_path / "c.parquet", tmp_path / "c.state.parquet"
    customers(6).to_parquet(path)
    argv = ["--state", str(state), "--no-progress", "--state-values"]
    assert main(["upsert", str(path), *argv]) == 0
    changed = customers(6)
    changed.loc[:1, "plan"] = "gold"  # rows 0 (pro) and 1 (free)
    changed.to_parquet(path)
    out = tmp_path / "plan.parquet"
    capsys.readouterr()
    assert main(["plan", str(path), *argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "plan: 'pro' -> 'gold'  1 person" in printed
    assert "plan: 'free' -> 'gold'  1 person" in printed
    written = pd.read_parquet(out)
    assert written.loc[1, "flameup_before"] == '{"plan":"free"}'
    assert written.loc[1, "flameup_after"] == '{"plan":"gold"}'
