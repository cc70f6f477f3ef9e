"""The benchmark report runner: its table and its command line (no timings asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.__main__ import BENCHMARKS, NA, RESULTS, format_table, machine, report, rows_for

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {
    "conversion": {
        "rows": 1000,
        "ours_rows_per_second": 800_000,
        "baseline_rows_per_second": 200_000,
        "speedup": 4.0,
    },
    "delivery": {
        "a_requests": 50,
        "a_min_requests": 50,
        "a_ratio": 1.0,
        "b_http_429": 0,
        "b_most_in_a_minute": 1200,
        "b_expected_in_a_minute": 1200,
        "b_limit_per_minute": 1200,
        "b_ratio": 1.0,
        "c_latency_s": 0.3,
        "c_limit_per_minute": 3000,
        "c16_rate_per_minute": 2900.0,
        "c16_ratio": 0.967,
        "c16_http_429": 0,
    },
    "pacing": {
        "p1_seconds": 0.9,
        "p1_even_seconds": 25.1,
        "p1_ratio": 0.036,
        "p1_http_429": 0,
        "p3_window_s": 60.0,
        "p3_target_s": 125.0,
        "p3_seconds": 121.0,
    },
    "sync": {
        "rows": 1000,
        "changed_rows": 10,
        "first_requests": 10,
        "second_requests": 1,
        "second_seconds": 2.4,
        "dry_run_seconds": 1.2,
        "resync_over_dry_run": 2.0,
    },
    "memory": {
        "rows": 10_000_000,
        "stream_peak_mib": 300.0,
        "read_parquet_peak_mib": 3000.0,
        "stream_ratio": 0.1,
    },
    "server": {"batches_per_second": 150.0},
    "arrow": {
        "rows": 5_000_000,
        "stream_peak_mib": 400.0,
        "df_peak_mib": 2400.0,
        "memory_ratio": 0.167,
        "stream_rows_per_second": 200_000,
        "file_rows_per_second": 190_000,
        "speed_ratio": 1.053,
    },
    "read": {"people": 10_000, "read_seconds": 1.5, "floor_seconds": 0.6, "read_requests": 100},
    "validation": {"rows": 1_000_000, "v1_ms": 420.0, "v1_previous_ms": 400.0, "v1_ratio": 1.05},
    "track": {
        "throughput_events": 1000,
        "events_per_second": 180.0,
        "people_requests_per_second": 60.0,
        "events_ratio": 3.0,
        "soak_events": 400,
        "soak_stored": 400,
        "soak_stored_then_lost": 80,
        "soak_reruns": 1,
        "soak_duplicates": 0,
    },
    "inflight": {
        "l1_latency_s": 0.25,
        "l1_auto_seconds": 2.7,
        "l1_auto_in_flight": 32,
        "l1_c16_seconds": 2.2,
        "l1_c4_seconds": 7.0,
        "l1_ratio": 1.227,
    },
}


def test_table_shows_each_figure_beside_its_baseline_and_ratio() -> None:
    table = format_table(FIGURES, {"spark": "skipped: pyspark is not installed"})
    assert 'to_dict("records")+json.dumps' in table
    assert "x16, 429s: 0" in table
    assert "5,000 rows, default arguments, 120/min, 429s: 0" in table and "0.036" in table
    assert "300 requests s, 120 per 60.0 s window" in table and "<= 125.0 s" in table
    assert "pd.read_parquet peak MiB" in table
    assert "spark: skipped: pyspark is not installed" in table
    assert "upsert_arrow from DuckDB, 5,000,000 rows" in table and "0.167" in table
    assert "read_people s, 10,000 people, default budget, 100 requests" in table
    assert "validate_people ms, 1,000,000 rows (stricter emails)" in table and "1.050" in table
    assert "track events/s, 1,000 events, limit raised" in table and "3.000" in table
    assert "80 stored-then-lost, 1 reruns), duplicates: 0" in table
    [line] = [row for row in table.splitlines() if "100 requests at 120/min, defaults" in row]
    assert "up to 32 in flight" in line and "1.227" in line and line.endswith("0.25 s")
    assert table.splitlines()[0].endswith("latency")
    sync = rows_for("sync", FIGURES["sync"])[0]
    assert sync[0] == "sync requests, 10 of 1,000 rows changed"
    assert sync[4] == "0.100"  # computed as ours / baseline when the module gives no ratio
    resync = rows_for("sync", FIGURES["sync"])[1]
    assert resync[0] == "nightly resync s, 10 of 1,000 changed, 120/min"
    assert resync[1] == "a dry run of the same file s" and resync[4] == "2.000"


def test_the_plan_lines_show_the_three_targets_of_issue_26() -> None:
    """A plan against a dry run, the state's size in each form, the guard against a resync."""
    figures = {
        "rows": 1_000_000,
        "changed_rows": 10_000,
        "plan_seconds": 3.0,
        "dry_run_seconds": 2.4,
        "plan_over_dry_run": 1.25,
        "state_mib_with_fields": 53.7,
        "state_mib_without_fields": 35.3,
        "state_ratio": 1.52,
        "state_mib_with_values": 90.0,
        "state_values_ratio": 2.55,
        "plan_values_seconds": 3.2,
        "plan_values_over_dry_run": 1.33,
        "guard_rows": 1_000_000,
        "resync_seconds": 9.0,
        "guarded_resync_seconds": 9.5,
        "guard_over_resync": 1.06,
    }
    rows = {row[0]: row for row in rows_for("plan", figures)}
    plan = rows["plan s, 1,000,000 rows, 10,000 changed, against a state (no request)"]
    assert plan[4] == "1.250" and plan[5] == "<= 1.5"
    assert rows["state MiB with field hashes, 1,000,000 people"][4] == "1.520"
    guard = rows["nightly resync s with max_changes, 1,000,000 rows, 1% changed"]
    assert guard[1] == "the same resync without it s" and guard[4] == "1.060"
    assert guard[5] == "<= 1.10"


def test_missing_keys_show_as_na_instead_of_failing() -> None:
    rows = rows_for("memory", {"rows": 5})
    assert all(NA in row for row in rows)
    assert "n/a" in format_table({"delivery": {}}, {})


def test_module_without_a_mapping_shows_its_numbers() -> None:
    assert "other: rows=3, seconds=1.5" in format_table({"other": {"rows": 3, "seconds": 1.5}}, {})


def test_help_exits_zero() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout


def test_the_report_file_says_when_where_with_what_and_each_figure_beside_its_baseline() -> None:
    data = report(FIGURES, {}, before=machine(), after=machine(), seconds=1.0, quick=True)
    json.dumps(data)  # plain JSON data
    assert {"date", "commit", "quick", "machine", "versions", "figures", "results"} <= set(data)
    assert data["versions"]["pandas"] and data["versions"]["flameup_pandas"]
    conversion = [f for f in data["figures"] if f["benchmark"] == "conversion"]
    assert conversion[0]["baseline"] == 'to_dict("records")+json.dumps'
    assert conversion[0]["ours"] == "800,000" and conversion[0]["ratio"] == "4.000"


def test_the_committed_report_covers_every_benchmark() -> None:
    """benchmarks/results.json (what the docs' performance page shows) is a whole run."""
    data = json.loads(RESULTS.read_text())
    reported = {f["benchmark"] for f in data["figures"]} | set(data["notes"])
    assert reported == set(BENCHMARKS)
    assert all(f["ours"] != NA and f["base"] != NA for f in data["figures"])
