"""One benchmark report: ``python -m benchmarks [--quick] [--only NAME ...] [--json FILE]``.

Runs each benchmark module's ``main(quick)`` in turn (imported only when its turn comes; a
module that fails is reported and the others still run, and the exit code is then 1) and
prints one table: every figure beside the baseline it is measured against in the same run,
and their ratio, under a description of the machine. ``--quick`` is for CI, which runs it to
check that the report still works, never to assert timings.

The same report is written as JSON to ``benchmarks/results.json`` (``--json FILE`` for another
path): the date, the machine and library versions, every line of the table, and each module's
raw figures. The docs' performance page is rendered from that one file at build time, so its
figures are never typed by hand. A run with ``--only`` covers part of the report, so it writes
no file unless ``--json`` names one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS = (
    "server",
    "conversion",
    "delivery",
    "pacing",
    "sync",
    "memory",
    "arrow",
    "read",
    "inflight",
    "validation",
    "spark",
    "storage",
    "track",
    "plan",
)
NEEDS = {"spark": "pyspark", "arrow": "duckdb", "storage": "moto"}
NA = "n/a"
RESULTS = Path(__file__).resolve().parent / "results.json"
"""Where the full report is written by default; the docs' performance page reads it."""
LIBRARIES = ("flameup_pandas", "pandas", "numpy", "pyarrow", "pandera", "orjson", "polars")
LIBRARIES_OPTIONAL = ("duckdb", "pyspark")


@dataclass(frozen=True)
class Figure:
    """One line of the report: a module's figure, its baseline, and the ratio between them.

    ``ours``, ``base`` and ``ratio`` name keys of the module's dict (``base`` may be a
    constant); ``name`` and ``baseline`` may use ``{key}`` placeholders. A missing key shows
    as n/a; a missing ratio is computed as ours / base. ``latency`` names the key of the
    seconds the local server added to every answer, where it did (the report's latency column).
    """

    name: str
    baseline: str
    ours: str
    base: str | float
    ratio: str | None = None
    target: str = "-"
    latency: str | None = None


SERVER = [
    Figure(
        "server batches of 100/s (rate limit off)",
        "Flameup's documented 120/min",
        "batches_per_second",
        2.0,
        target="> 1",
    ),
]
CONVERSION = [
    Figure(
        "conversion rows/s, {rows:,} rows",
        'to_dict("records")+json.dumps',
        "ours_rows_per_second",
        "baseline_rows_per_second",
        "speedup",
        "> 1",
    ),
    Figure(
        "upsert_file dry run rows/s, {rows:,} rows",
        "read_parquet+to_dict+json.dumps",
        "file_rows_per_second",
        "file_baseline_rows_per_second",
        "file_speedup",
        ">= 12",
    ),
    Figure(
        "same dry run with a sync state (hashes)",
        "read_parquet+to_dict+json.dumps",
        "file_state_rows_per_second",
        "file_state_baseline_rows_per_second",
        "file_state_speedup",
        "-",
    ),
    Figure(
        "that dry run s, lineage and tracing unconfigured (OTel API imported)",
        "same dry run, observer hook bypassed",
        "observers_seconds",
        "observers_baseline_seconds",
        "observers_overhead",
        "<= 1.03",
    ),
    Figure(
        "observer hook us per run, unconfigured ({observers_hook_us_per_request} us a request)",
        "that dry run us",
        "observers_hook_us_per_run",
        "observers_dry_run_us",
        "observers_hook_percent",
        "<= 3 (%)",
    ),
    Figure(
        "df.flameup.upsert(dry_run=True) rows/s (one engine)",
        'to_dict("records")+json.dumps',
        "frame_rows_per_second",
        "frame_baseline_rows_per_second",
        "frame_speedup",
        "-",
    ),
    Figure(
        "to_people() rows/s",
        'to_dict("records")+json.dumps',
        "to_people_rows_per_second",
        "to_people_baseline_rows_per_second",
        "to_people_speedup",
        ">= 5.5",
    ),
    Figure(
        "Spark executor planning rows/s",
        'to_dict("records")+json.dumps',
        "planned_rows_per_second",
        "planned_baseline_rows_per_second",
        "planned_speedup",
        "-",
    ),
]
DELIVERY = [
    Figure(
        "requests made / minimum",
        "ceil(valid rows / 100)",
        "a_requests",
        "a_min_requests",
        "a_ratio",
        "1.00",
    ),
    Figure(
        "most requests in any 60 s, rate_limit={b_limit_per_minute}, 429s: {b_http_429}",
        "the cap (or the whole job if smaller)",
        "b_most_in_a_minute",
        "b_expected_in_a_minute",
        "b_ratio",
        "1.000, 0 429s",
    ),
]
PACING = [
    Figure(
        "5,000 rows, default arguments, 120/min, 429s: {p1_http_429}",
        "even pacing s",
        "p1_seconds",
        "p1_even_seconds",
        "p1_ratio",
        "<= 1.5 s, 0 429s",
    ),
    Figure(
        "nightly resync s, {p2_changed:,} of {p2_rows:,} changed, 120/min",
        "even pacing s",
        "p2_seconds",
        "p2_even_seconds",
        "p2_ratio",
        "<= 12 s",
    ),
    Figure(
        "300 requests s, 120 per {p3_window_s} s window, 429s: {p3_http_429}",
        "even pacing s",
        "p3_seconds",
        "p3_even_seconds",
        "p3_ratio",
        "<= {p3_target_s} s",
    ),
    Figure(
        "40 requests s, sliding log 10/2 s, 429s: {p4_sliding_http_429}",
        "the policy's floor s",
        "p4_sliding_seconds",
        "p4_floor_s",
        "p4_sliding_floor_ratio",
        "<= 2.5, <= 3 429s",
    ),
    Figure(
        "40 requests s, token bucket 10/2 s, 429s: {p4_bucket_http_429}",
        "the policy's floor s",
        "p4_bucket_seconds",
        "p4_floor_s",
        "p4_bucket_floor_ratio",
        "<= 2.5, <= 3 429s",
    ),
    Figure(
        "two processes, one key, 10/2 s: rows lost {p5_rows_lost}, 429s {p5_http_429}",
        "the floor s",
        "p5_seconds",
        "p5_floor_s",
        target="both complete, 0 lost",
    ),
    Figure(
        "40 requests s, 10/5 s, server clock 30 s behind: 429s {p6_behind_http_429}, "
        "lost {p6_behind_lost}",
        "clocks agreeing s",
        "p6_behind_seconds",
        "p6_agree_seconds",
        "p6_behind_ratio",
        "<= 1.5x + 3 s, <= 4 429s",
    ),
    Figure(
        "40 requests s, 10/5 s, server clock 30 s ahead: 429s {p6_ahead_http_429}, "
        "lost {p6_ahead_lost}",
        "clocks agreeing s",
        "p6_ahead_seconds",
        "p6_agree_seconds",
        "p6_ahead_ratio",
        "<= 1.5x + 3 s, <= 4 429s",
    ),
]
SYNC = [
    Figure(
        "sync requests, {changed_rows:,} of {rows:,} rows changed",
        "full sync requests",
        "second_requests",
        "first_requests",
        "requests_ratio",
        "about 0.01",
    ),
    Figure(
        "nightly resync s, {changed_rows:,} of {rows:,} changed, 120/min",
        "a dry run of the same file s",
        "second_seconds",
        "dry_run_seconds",
        "resync_over_dry_run",
        "<= 2.5",
    ),
]
STORAGE = [
    Figure(
        "nightly resync s, {changed_rows:,} of {rows:,} changed, source and state on S3",
        "the same run on local files, s",
        "s3_resync_s",
        "local_resync_s",
        "resync_ratio",
        "<= 1.5",
    ),
    Figure(
        "store requests of that resync ({resync_sent:,} people sent)",
        "requests of a rerun with nothing to send",
        "resync_store_requests",
        "idle_store_requests",
        None,
        "flushes + a constant",
    ),
    Figure(
        "peak MiB streaming {memory_rows:,} rows from S3 (dry run)",
        "pd.read_parquet peak MiB (local file)",
        "s3_stream_peak_mib",
        "read_parquet_peak_mib",
        "s3_stream_ratio",
        "<= local ({local_stream_ratio})",
    ),
    Figure(
        "peak MiB streaming {memory_rows:,} rows from the local file (dry run)",
        "pd.read_parquet peak MiB (local file)",
        "local_stream_peak_mib",
        "read_parquet_peak_mib",
        "local_stream_ratio",
        "0.28 (issue 25)",
    ),
]
MEMORY = [
    Figure(
        "peak MiB streaming {rows:,} rows (dry run)",
        "pd.read_parquet peak MiB (each above its warm process)",
        "stream_peak_mib",
        "read_parquet_peak_mib",
        "stream_ratio",
        "< 0.20",
    ),
    Figure(
        "peak MiB streaming {send_rows:,} rows, sent",
        "pd.read_parquet peak MiB (each above its warm process)",
        "send_peak_mib",
        "send_read_parquet_peak_mib",
        "send_ratio",
        "< 0.20",
    ),
]
ARROW = [
    Figure(
        "peak MiB, upsert_arrow from DuckDB, {rows:,} rows (dry run)",
        "same query's .df() peak MiB",
        "stream_peak_mib",
        "df_peak_mib",
        "memory_ratio",
        "<= 0.20",
    ),
    Figure(
        "rows/s, upsert_arrow from DuckDB (dry run)",
        "upsert_file, same rows as parquet",
        "stream_rows_per_second",
        "file_rows_per_second",
        "speed_ratio",
        ">= 0.90",
    ),
]
READ = [
    Figure(
        "read_people s, {people:,} people, default budget, {read_requests} requests",
        "same pages, plain requests, no pacing",
        "read_seconds",
        "floor_seconds",
        "ratio",
        "<= 3 s, <= 100 req",
    ),
]
INFLIGHT = [
    Figure(
        "s, 100 requests at 120/min, defaults (up to {l1_auto_in_flight} in flight)",
        "concurrency=16 s",
        "l1_auto_seconds",
        "l1_c16_seconds",
        "l1_ratio",
        "<= 1.5x + 0.5 s",
        latency="l1_latency_s",
    ),
    Figure(
        "s, same, the previous default (concurrency=4)",
        "concurrency=16 s",
        "l1_c4_seconds",
        "l1_c16_seconds",
        latency="l1_latency_s",
    ),
    Figure(
        "s, {l2_requests_needed} requests at 3,000/min, defaults (up to {l2_auto_in_flight})",
        "concurrency=16 s",
        "l2_auto_seconds",
        "l2_c16_seconds",
        "l2_ratio",
        "<= 1.5x + 0.5 s",
        latency="l2_latency_s",
    ),
    Figure(
        "s, {l3_requests_needed} requests, 503 above 6 at once: {l3_auto_http_503} 503s, "
        "{l3_auto_lost} lost",
        "concurrency=6 s",
        "l3_auto_seconds",
        "l3_c6_seconds",
        "l3_ratio",
        "<= 1.5x + 1 s, <= 10% 503",
        latency="l3_latency_s",
    ),
]
VALIDATION = [
    Figure(
        "validate_people ms, {rows:,} rows (stricter emails)",
        "same, the previous email pattern",
        "v1_ms",
        "v1_previous_ms",
        "v1_ratio",
        "<= 1.10",
    ),
    Figure(
        "email check ms, 1% internationalised domains",
        "the previous email pattern",
        "v3_ms",
        "v3_previous_ms",
        "v3_ratio",
    ),
]

SPARK = [
    Figure(
        "spark sync requests, {changed_rows:,} of {rows:,} rows changed",
        "spark full sync requests",
        "spark_second_requests",
        "spark_first_requests",
        target="about 0.01",
    ),
    Figure(
        "spark.upsert wall s, {rows:,} rows",
        "upsert_file wall s, same rows",
        "spark_first_seconds",
        "pandas_first_seconds",
    ),
]

PLAN = [
    Figure(
        "plan s, {rows:,} rows, {changed_rows:,} changed, against a state (no request)",
        "dry run with a state s",
        "plan_seconds",
        "dry_run_seconds",
        "plan_over_dry_run",
        "<= 1.5",
    ),
    Figure(
        "state MiB with field hashes, {rows:,} people",
        "the state without them MiB",
        "state_mib_with_fields",
        "state_mib_without_fields",
        "state_ratio",
        "<= 2 (of 35.5 MiB)",
    ),
    Figure(
        "state MiB with values kept (state_values=True)",
        "the state without field hashes MiB",
        "state_mib_with_values",
        "state_mib_without_fields",
        "state_values_ratio",
        "say the size",
    ),
    Figure(
        "plan s with before -> after from the state",
        "dry run with a state s",
        "plan_values_seconds",
        "dry_run_seconds",
        "plan_values_over_dry_run",
    ),
    Figure(
        "nightly resync s with max_changes, {guard_rows:,} rows, 1% changed",
        "the same resync without it s",
        "guarded_resync_seconds",
        "resync_seconds",
        "guard_over_resync",
        "<= 1.10",
    ),
    Figure(
        "CPU s of that resync with max_changes",
        "the same resync without it, CPU s",
        "guarded_resync_cpu_seconds",
        "resync_cpu_seconds",
        "guard_cpu_over_resync",
        "<= 1.10",
    ),
]


def delivery_figures(figures: dict[str, Any]) -> list[Figure]:
    """Delivery's fixed lines plus one throughput line per concurrency it measured."""
    found = sorted(int(m.group(1)) for key in figures if (m := re.fullmatch(r"c(\d+)_ratio", key)))
    return DELIVERY + [
        Figure(
            f"throughput /min, {{c_latency_s}} s latency, x{n}, 429s: {{c{n}_http_429}}",
            "allowed rate /min",
            f"c{n}_rate_per_minute",
            "c_limit_per_minute",
            f"c{n}_ratio",
            ">= 0.90",
            latency="c_latency_s",
        )
        for n in found or [16]
    ]


TRACK = [
    Figure(
        "track events/s, {throughput_events:,} events, limit raised",
        "upsert people requests/s (batches of 100)",
        "events_per_second",
        "people_requests_per_second",
        "events_ratio",
        ">= 0.90",
    ),
    Figure(
        "track events/s, same, with a state",
        "upsert people requests/s (batches of 100)",
        "state_events_per_second",
        "people_requests_per_second",
        "state_ratio",
    ),
    Figure(
        "track events/s, same",
        "bare POST /track/s (8 threads, no library)",
        "events_per_second",
        "bare_posts_per_second",
        "bare_ratio",
    ),
    Figure(
        "POST /track requests per event sent, no faults",
        "one per event",
        "requests_per_event",
        1.0,
        None,
        "1.00",
    ),
    Figure(
        "events stored, fault soak of {soak_events} ({soak_stored_then_lost} stored-then-lost, "
        "{soak_reruns} reruns), duplicates: {soak_duplicates}",
        "events in the frame",
        "soak_stored",
        "soak_events",
        None,
        "1.000, 0 duplicates",
    ),
    Figure(
        "track s, {paced_events} events at a paced 20/s, 429s: {paced_http_429}",
        "the limit's floor s",
        "paced_seconds",
        "paced_floor_seconds",
        None,
        "0 429s",
    ),
]


LINES: dict[str, Callable[[dict[str, Any]], list[Figure]]] = {
    "server": lambda f: SERVER,
    "conversion": lambda f: CONVERSION,
    "delivery": delivery_figures,
    "pacing": lambda f: PACING,
    "sync": lambda f: SYNC,
    "memory": lambda f: MEMORY,
    "arrow": lambda f: ARROW,
    "read": lambda f: READ,
    "inflight": lambda f: INFLIGHT,
    "validation": lambda f: VALIDATION,
    "spark": lambda f: SPARK,
    "storage": lambda f: STORAGE,
    "track": lambda f: TRACK,
    "plan": lambda f: PLAN,
}


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return NA


def _fill(template: str, figures: dict[str, Any]) -> str:
    try:
        return template.format_map(_Missing(figures))
    except (ValueError, TypeError):  # a format spec (",") applied to "n/a"
        return re.sub(r"\{(\w+)[^}]*\}", lambda m: str(figures.get(m.group(1), NA)), template)


def _number(figures: dict[str, Any], key: str | float | None) -> float | None:
    value = key if isinstance(key, int | float) else figures.get(key) if key else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _show(value: float | None, digits: int = 1) -> str:
    if value is None:
        return NA
    return f"{value:,.0f}" if value >= 1000 or value == int(value) else f"{value:,.{digits}f}"


def rows_for(name: str, figures: dict[str, Any]) -> list[tuple[str, str, str, str, str, str, str]]:
    """The report lines of one module's figures: name, baseline, ours, base, ratio, target,
    and the latency the server added ("-": none)."""
    rows = []
    for fig in LINES[name](figures) if name in LINES else []:
        ours, base = _number(figures, fig.ours), _number(figures, fig.base)
        ratio = _number(figures, fig.ratio)
        if ratio is None and ours is not None and base:
            ratio = ours / base
        rows.append(
            (
                _fill(fig.name, figures),
                _fill(fig.baseline, figures),
                _show(ours),
                _show(base),
                NA if ratio is None else f"{ratio:.3f}",
                _fill(fig.target, figures),
                "-" if fig.latency is None else f"{_show(_number(figures, fig.latency), 2)} s",
            )
        )
    return rows


def format_table(results: dict[str, dict[str, Any]], notes: dict[str, str]) -> str:
    """The report: one line per figure; modules without a mapping show their numbers as-is."""
    header = ("figure", "baseline", "ours", "baseline", "ratio", "target", "latency")
    rows, extra = [], []
    for name, figures in results.items():
        mapped = rows_for(name, figures)
        rows += [(f"{name}: {row[0]}", *row[1:]) for row in mapped]
        if not mapped:
            shown = ", ".join(
                f"{k}={v}"
                for k, v in figures.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            )
            extra.append(f"{name}: {shown or 'no numeric figures'}")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            str(c).ljust(w) if i < 2 or i >= 5 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines + extra + [f"{name}: {note}" for name, note in notes.items()])


def machine() -> dict[str, Any]:
    """What the figures ran on: cores, CPU model, RAM, load, Python and library versions."""
    import pandas as pd
    import pyarrow as pa

    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or NA
    kib = _proc_field("/proc/meminfo", "MemTotal")
    return {
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu": cpu,
        "ram": f"{int(kib.split()[0]) / 2**20:.1f} GiB" if kib else NA,
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
    }


def versions() -> dict[str, str]:
    """The version of every library the figures depend on (optional ones only when installed)."""
    found = {}
    for name in LIBRARIES + LIBRARIES_OPTIONAL:
        if importlib.util.find_spec(name) is None:
            continue
        found[name] = str(getattr(importlib.import_module(name), "__version__", NA))
    return found


def commit() -> str:
    """The checkout's commit the figures were measured on (``+dirty`` with local changes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return NA
    return head + ("+dirty" if dirty else "")


def report(
    results: dict[str, dict[str, Any]],
    notes: dict[str, str],
    *,
    before: dict[str, Any],
    after: dict[str, Any],
    seconds: float,
    quick: bool,
) -> dict[str, Any]:
    """The report as JSON data: when, where, with what, every table line, and the raw figures."""
    header = ("figure", "baseline", "ours", "base", "ratio", "target", "latency")
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "quick": quick,
        "seconds": round(seconds, 1),
        "machine": before,
        "load_after": after["load_average"],
        "versions": versions(),
        "figures": [
            {"benchmark": name, **dict(zip(header, row, strict=True))}
            for name, figures in results.items()
            for row in rows_for(name, figures)
        ],
        "notes": notes,
        "results": results,
    }


def _proc_field(path: str, name: str) -> str | None:
    """The value of the first ``name: value`` line of a /proc file (None off Linux)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(name)), None)


def run(name: str, quick: bool) -> dict[str, Any]:
    """Import ``benchmarks.bench_NAME`` and return its ``main(quick)``."""
    module = importlib.import_module(f"benchmarks.bench_{name}")
    return dict(module.main(quick))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Run the benchmarks; print one report."
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, under two minutes in all (what CI runs)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only these: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="write the report as JSON to FILE (default: benchmarks/results.json, "
        "except with --only)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    before = machine()
    results: dict[str, dict[str, Any]] = {}
    notes: dict[str, str] = {}
    failed = []
    started = time.perf_counter()
    for name in args.only or BENCHMARKS:
        needed = NEEDS.get(name)
        if needed and importlib.util.find_spec(needed) is None:
            notes[name] = f"skipped: {needed} is not installed (pip install flameup-pandas[{name}])"
            continue
        print(f"running {name}{' (quick)' if args.quick else ''} ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            results[name] = run(name, args.quick)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            first_line = (str(exc).splitlines() or [""])[0]
            notes[name] = f"FAILED: {type(exc).__name__}: {first_line}"
            failed.append(name)
        print(f"  {name}: {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    after = machine()
    seconds = time.perf_counter() - started
    print(_machine_line(before, after, seconds, args.quick))
    print(format_table(results, notes))
    out = args.json or (None if args.only else RESULTS)
    if out is not None:
        data = report(results, notes, before=before, after=after, seconds=seconds, quick=args.quick)
        out.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"\nreport written to {out}", file=sys.stderr)
    return 1 if failed else 0


def _machine_line(
    before: dict[str, Any], after: dict[str, Any], seconds: float, quick: bool
) -> str:
    return (
        f"machine: {before['nproc']} cores, {before['cpu']}, {before['ram']} RAM; "
        f"Python {before['python']}, pandas {before['pandas']}, pyarrow {before['pyarrow']}; "
        f"load average {before['load_average']} before, {after['load_average']} after; "
        f"{'quick run, ' if quick else ''}{seconds:.0f} s in all\n"
    )


if __name__ == "__main__":
    sys.exit(main())
