"""The flameup-pandas command: exit codes, messages, --local, --dry-run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from flameup_pandas.cli import main

from .test_upsert import customers


@pytest.fixture
def env(flameup_server, monkeypatch):
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)
    return flameup_server


def test_upsert_exit_0_when_every_row_lands(env, tmp_path, capsys):
    path = tmp_path / "c.parquet"
    customers(30).to_parquet(path)
    assert main(["upsert", str(path), "--no-progress", "--rate-limit", "6000"]) == 0
    out = capsys.readouterr().out
    assert "created" in out and "30" in out
    assert len(env.people()) == 30


def test_upsert_exit_1_on_bad_rows_unless_allowed(env, tmp_path):
    path = tmp_path / "c.parquet"
    df = customers(5)
    df.loc[0, "email"] = "bad"
    df.to_parquet(path)
    assert main(["upsert", str(path), "--no-progress"]) == 1
    assert main(["upsert", str(path), "--no-progress", "--max-failed", "1"]) == 0


def test_map_option(env, tmp_path):
    path = tmp_path / "c.parquet"
    customers(2).rename(columns={"user_id": "customer_no"}).to_parquet(path)
    assert (
        main(
            [
                "upsert",
                str(path),
                "--no-progress",
                "--map",
                "userId=customer_no",
                "--map",
                "traits.tier=plan",
            ]
        )
        == 0
    )
    assert env.person("u0")["attributes"]["tier"] == "pro"


def test_bad_key_exits_2_with_one_line_and_no_traceback(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FLAMEUP_API_KEY", "ws_test_a_b." + "e" * 64)
    path = tmp_path / "c.parquet"
    customers(2).to_parquet(path)
    assert main(["upsert", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "e" * 64 not in err


def test_missing_file_and_bad_mapping_exit_2(env, tmp_path, capsys):
    assert main(["upsert", str(tmp_path / "none.parquet")]) == 2
    path = tmp_path / "c.parquet"
    customers(2).to_parquet(path)
    assert main(["upsert", str(path), "--map", "userId=nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["upsert"])
    assert info.value.code == 2


def test_validate_reports_and_sends_nothing(env, tmp_path, capsys):
    path = tmp_path / "c.parquet"
    df = customers(4)
    df.loc[2, "email"] = "bad"
    df.to_parquet(path)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "email" in out and "1 problems" in out
    assert env.requests == []


def test_dry_run_prints_what_would_be_sent(env, tmp_path, capsys):
    path = tmp_path / "c.parquet"
    customers(150).to_parquet(path)
    assert main(["upsert", str(path), "--dry-run", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "would send 150 people in 2 requests" in out
    assert '{"userId":"u0","email":"person0@example.com"' in out
    assert "… and 145 more" in out
    assert env.requests == []


def test_local_mode_needs_no_account_and_keeps_its_data(tmp_path):
    path = tmp_path / "c.parquet"
    customers(20).to_parquet(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAMEUP_")}
    command = [
        sys.executable,
        "-m",
        "flameup_pandas.cli",
        "upsert",
        str(path),
        "--local",
        "--no-progress",
        "--rate-limit",
        "6000",
    ]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    first = run()
    assert first.returncode == 0, first.stderr
    assert (tmp_path / ".flameup" / "local.db").exists()
    again = run()
    assert again.returncode == 0, again.stderr
    assert "updated" in again.stdout


def test_version_is_the_package_version(capsys):
    import flameup_pandas

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"flameup-pandas {flameup_pandas.__version__}\n"


def test_serve_takes_the_local_servers_options(tmp_path):
    """`flameup-pandas serve --db FILE --rate-limit N ...` (options first: once refused)."""
    db = tmp_path / "local.db"
    command = [sys.executable, "-m", "flameup_pandas.cli", "serve", "--db", str(db)]
    command += ["--rate-limit", "7", "--person-shape", "overview"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        assert server.stdout is not None
        try:
            lines = [server.stdout.readline() for _ in range(4)]
        finally:
            server.terminate()
        assert server.wait(timeout=60) == 0
    assert lines[0].startswith("FLAMEUP_BASE_URL=http://127.0.0.1:")
    assert "rate limit 7/60s (fixed)" in lines[3] and "overview person shape" in lines[3]
    assert db.exists()


def test_serve_env_prints_export_lines_then_lets_a_shell_go_on():
    """`eval "$(flameup-pandas serve --env &)"`: export lines, then stdout closes (so the
    shell's command substitution returns) while the server keeps answering."""
    command = [sys.executable, "-m", "flameup_pandas.cli", "serve", "--env"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        assert server.stdout is not None
        try:
            printed = server.stdout.read()  # returns at EOF: the server closed its stdout
            values = dict(
                line.removeprefix("export ").split("=", 1)
                for line in printed.splitlines()
                if line.startswith("export ")
            )
            answer = requests.get(
                f"{values['FLAMEUP_BASE_URL']}/people",
                headers={"Authorization": f"Bearer {values['FLAMEUP_API_KEY']}"},
                timeout=10,
            )
            assert server.poll() is None and answer.status_code == 200
        finally:
            server.terminate()
        assert server.wait(timeout=60) == 0
    assert set(values) == {"FLAMEUP_BASE_URL", "FLAMEUP_API_KEY", "FLAMEUP_UI_URL"}
    assert f"kill {server.pid}" in printed.splitlines()[-1]
