"""Peak memory of streaming a large parquet file through ``upsert_file`` vs ``pd.read_parquet``.

Generates a 9-column customer table (user_id, email, first_name, last_name, timezone, locale,
plan, lifetime_value, signed_up_at) as parquet in row groups of 100,000 rows, cached in the
temp dir by size, then measures each job in a fresh subprocess (peaks never mix) by the
child's own high-water mark (``VmHWM`` in ``/proc/self/status``) above its memory once warm:
each child first runs its job on a 1,000-row file (every import and first use done: pandas and
pyarrow for the baseline, the package too for ours), then resets its mark, so the figures
compare what each job holds for the data, not the interpreters and libraries loaded (the
totals are kept too: ``*_total_mib``):

- ``read_parquet``: ``pd.read_parquet(path)``, the baseline;
- ``dry_run``: ``upsert_file(path, dry_run=True, results=...)`` on the same file: reading,
  validation, conversion and results, everything but the network;
- ``send``: ``upsert_file(path, results=...)`` for real against a local Flameup server (rate
  limit off) running in this process, on a smaller file (the full file would be 100,000
  requests, about ten minutes).

Run ``python -m benchmarks.bench_memory`` (10,000,000 rows; 1,000,000 sent) or ``--quick``
(1,000,000 rows; 20,000 sent). ``main(quick)`` returns the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NEVER_REACHED = 1_000_000
"""The local server's rate limit: announced in its headers, as Flameup does, never reached (a
server without one sends no rate headers, and the client then assumes the documented 120 a
minute)."""

ROW_GROUP = 100_000
TARGET_RATIO = 0.2
CACHE = Path(tempfile.gettempdir()) / "flameup-bench"
FIRST = [
    "Ada",
    "Bo",
    "Chidi",
    "Dana",
    "Eitan",
    "Fatima",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemi",
    "Luca",
    "Mei",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
]
LAST = [
    "Lee",
    "Okafor",
    "Silva",
    "Novak",
    "Garcia",
    "Kim",
    "Müller",
    "Rossi",
    "Haddad",
    "Nakamura",
    "Smith",
    "Kowalski",
    "Ivanova",
    "Dubois",
    "Osei",
    "Larsen",
]
ZONES = [
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Africa/Lagos",
    "Australia/Sydney",
    "UTC",
]
LOCALES = ["en-US", "en-GB", "de-DE", "fr-FR", "ja-JP", "pt-BR", "es-ES", "hi-IN"]
PLANS = ["free", "starter", "pro", "team", "enterprise"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net"]
STATUSES = ("created", "updated", "skipped", "invalid", "rejected", "failed")
SIGNUP_START = np.datetime64("2018-01-01T00:00:00", "us")


def customers(start: int, n_rows: int, seed: int = 0) -> pa.Table:
    """Rows ``start`` .. ``start + n_rows`` of the customer table (same rows for the same seed)."""
    rng = np.random.default_rng([seed, start])
    ids = np.arange(start, start + n_rows)
    first = np.asarray(FIRST)[rng.integers(0, len(FIRST), n_rows)]
    last = np.asarray(LAST)[rng.integers(0, len(LAST), n_rows)]
    domain = np.asarray(DOMAINS)[rng.integers(0, len(DOMAINS), n_rows)]
    value = np.round(rng.gamma(2.0, 150.0, n_rows), 2)
    signed_up = SIGNUP_START + rng.integers(0, 7 * 365 * 86_400, n_rows) * np.timedelta64(1, "s")
    return pa.table(
        {
            "user_id": pa.array([f"u{i}" for i in ids.tolist()], pa.string()),
            "email": pa.array(
                [
                    f"{f.lower()}.{g.lower()}{i}@{d}"
                    for f, g, i, d in zip(
                        first.tolist(), last.tolist(), ids.tolist(), domain.tolist(), strict=True
                    )
                ],
                pa.string(),
            ),
            "first_name": pa.array(first, pa.string()),
            "last_name": pa.array(last, pa.string()),
            "timezone": pa.array(
                np.asarray(ZONES)[rng.integers(0, len(ZONES), n_rows)], pa.string()
            ),
            "locale": pa.array(
                np.asarray(LOCALES)[rng.integers(0, len(LOCALES), n_rows)], pa.string()
            ),
            "plan": pa.array(np.asarray(PLANS)[rng.integers(0, len(PLANS), n_rows)], pa.string()),
            "lifetime_value": pa.array(value, pa.float64(), mask=rng.random(n_rows) < 0.05),
            "signed_up_at": pa.array(signed_up, pa.timestamp("us")).cast(pa.timestamp("us", "UTC")),
        }
    )


def customer_file(n_rows: int, directory: Path = CACHE) -> Path:
    """The cached parquet file of ``n_rows`` customers, written chunk by chunk if missing."""
    path = directory / f"customers-{n_rows}.parquet"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = None
    try:
        for start in range(0, n_rows, ROW_GROUP):
            table = customers(start, min(ROW_GROUP, n_rows - start))
            writer = writer or pq.ParquetWriter(partial, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=ROW_GROUP)
    finally:
        if writer is not None:
            writer.close()
    os.replace(partial, path)
    return path


def _status_mib(field: str) -> float:
    """A ``/proc/self/status`` memory line (VmHWM, VmRSS) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child(mode: str, path: str, results: str) -> dict[str, Any]:
    """Run one job in this (fresh) process, after the same job on a small file; its peak RSS
    above the memory it had then (``peak_mib``), and what it did."""
    import pandas as pd

    warm = Path(results).with_name("warm.parquet")
    pq.write_table(customers(0, 1_000), warm)
    if mode == "read_parquet":
        pd.read_parquet(warm)
    else:
        from flameup_pandas import upsert_file

        upsert_file(warm, results=results, dry_run=True, progress=False)
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark starts again here
    before = _status_mib("VmRSS")
    started = time.perf_counter()
    if mode == "read_parquet":
        rows = len(pd.read_parquet(path))
        figures: dict[str, Any] = {"rows": rows}
    else:
        summary = upsert_file(
            path, results=results, dry_run=mode == "dry_run", rate_limit=None, progress=False
        ).to_dict()
        figures = {
            "counts": {k: summary[k] for k in STATUSES if summary.get(k)},
            "requests": summary.get("requests"),
        }
    figures["seconds"] = round(time.perf_counter() - started, 2)
    figures["rss_before_mib"] = round(before, 1)
    figures["total_mib"] = round(_status_mib("VmHWM"), 1)
    figures["peak_mib"] = round(figures["total_mib"] - before, 1)
    return figures


def measure(mode: str, path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``mode`` run in a subprocess of its own; its figures (peak_mib is the child's VmHWM)."""
    with tempfile.TemporaryDirectory(prefix="flameup-bench-") as tmp:
        command = [
            sys.executable,
            "-m",
            "benchmarks.bench_memory",
            "--child",
            mode,
            str(path),
            str(Path(tmp) / "results.parquet"),
        ]
        done = subprocess.run(
            command,
            cwd=Path(__file__).resolve().parents[1],
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure_send(path: Path) -> dict[str, Any]:
    """The real-send child against a local server (rate limit off) served from this process."""
    from flameup_pandas.testing import FlameupServer

    with (
        tempfile.TemporaryDirectory(prefix="flameup-bench-db-") as tmp,
        FlameupServer(rate_limit=NEVER_REACHED, db=Path(tmp) / "flameup.db") as server,
    ):
        return measure(
            "send", path, {"FLAMEUP_API_KEY": server.api_key, "FLAMEUP_BASE_URL": server.base_url}
        )


def main(quick: bool = False) -> dict[str, Any]:
    """Generate (or reuse) the files, measure the three jobs; the figures as a dict."""
    rows, sent_rows = (1_000_000, 20_000) if quick else (10_000_000, 1_000_000)
    started = time.perf_counter()
    big, small = customer_file(rows), customer_file(sent_rows)
    generate_s = time.perf_counter() - started
    baseline = measure("read_parquet", big)
    dry = measure("dry_run", big)
    send_baseline = measure("read_parquet", small)
    send = measure_send(small)
    return {
        "rows": rows,
        "columns": 9,
        "file_mib": round(big.stat().st_size / 2**20, 1),
        "generate_seconds": round(generate_s, 1),
        "read_parquet_peak_mib": baseline["peak_mib"],
        "read_parquet_total_mib": baseline["total_mib"],
        "read_parquet_seconds": baseline["seconds"],
        "stream_peak_mib": dry["peak_mib"],
        "stream_total_mib": dry["total_mib"],
        "stream_total_ratio": round(dry["total_mib"] / baseline["total_mib"], 3),
        "stream_seconds": dry["seconds"],
        "stream_rss_before_mib": dry["rss_before_mib"],
        "stream_ratio": round(dry["peak_mib"] / baseline["peak_mib"], 3),
        "stream_counts": dry["counts"],
        "send_rows": sent_rows,
        "send_read_parquet_peak_mib": send_baseline["peak_mib"],
        "send_peak_mib": send["peak_mib"],
        "send_seconds": send["seconds"],
        "send_requests": send["requests"],
        "send_counts": send["counts"],
        "send_ratio": round(send["peak_mib"] / send_baseline["peak_mib"], 3),
        "target_ratio": TARGET_RATIO,
    }


def _report(figures: dict[str, Any]) -> str:
    rows, sent = figures["rows"], figures["send_rows"]
    return "\n".join(
        [
            f"{'job (peak RSS above the process once warm)':<44}{'peak RSS':>12}{'ratio':>8}"
            f"{'seconds':>10}",
            f"{f'pd.read_parquet, {rows:,} rows':<44}{figures['read_parquet_peak_mib']:>8,.0f} MiB"
            f"{1:>8.2f}{figures['read_parquet_seconds']:>10}",
            f"{f'upsert_file dry_run, {rows:,} rows':<44}{figures['stream_peak_mib']:>8,.0f} MiB"
            f"{figures['stream_ratio']:>8.3f}{figures['stream_seconds']:>10}",
            f"{f'pd.read_parquet, {sent:,} rows':<44}"
            f"{figures['send_read_parquet_peak_mib']:>8,.0f} MiB{1:>8.2f}",
            f"{f'upsert_file sent, {sent:,} rows':<44}{figures['send_peak_mib']:>8,.0f} MiB"
            f"{figures['send_ratio']:>8.3f}{figures['send_seconds']:>10}",
            f"target: streaming peak under {figures['target_ratio']} of read_parquet's; "
            f"file {figures['file_mib']} MiB; streaming process RSS once warm "
            f"{figures['stream_rss_before_mib']} MiB; whole processes' peaks "
            f"{figures['stream_total_mib']:,.0f} / {figures['read_parquet_total_mib']:,.0f} MiB "
            f"({figures['stream_total_ratio']}); {figures['send_requests']} requests sent",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1,000,000 rows (20,000 sent) instead of 10,000,000 (1,000,000)",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("MODE", "PATH", "RESULTS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
    else:
        print(_report(main(quick=args.quick)))
