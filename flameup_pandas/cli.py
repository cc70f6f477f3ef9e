"""The ``flameup-pandas`` command: upsert, plan, validate or track a parquet/CSV file or a DuckDB
query, export the workspace's people to parquet, or serve locally.

Exit codes (``docs/guides/files-and-cli.md``): 0 all went, 1 rows need attention, the run
stopped early or the change guard refused, 2 usage or configuration errors (one line, no
traceback), 130/143 after Ctrl-C/SIGTERM; ``plan --detailed-exitcode`` as Terraform's. The API
key is read from ``FLAMEUP_API_KEY`` only, never from a flag (shell history, process lists).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from ._api import export_people, plan_arrow, plan_file, unlock_state, upsert_arrow, upsert_file
from ._cli_flags import (
    COLUMNS,
    PROGRESS,
    add_flags,
    add_run_arguments,
    add_table_arguments,
    keywords,
    limit,
    local_server,
    positive,
    table_source,
)
from ._events.api import track_file
from ._run.changes import VALUE_COLUMNS, summarize_plan
from ._run.options import DeliveryOptions, Options, RuleOptions, Run, TrackOptions
from ._run.plan import Rules
from ._run.result import Summary
from ._run.sources import open_rows, read_chunks
from ._storage import atomic_output, resolve
from ._version import __version__
from .exceptions import ChangeGuardError, FlameupError, ReadInterrupted, UpsertInterrupted

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "sql") and (args.path is None) == (args.sql is None):
        parser.error("give either a PATH or --sql QUERY (one of them)")
    if getattr(args, "duckdb", None) is not None and args.sql is None:
        parser.error("--duckdb FILE goes with --sql QUERY")
    logging.basicConfig(
        level=logging.WARNING - 10 * args.verbose, format="%(levelname)s %(message)s"
    )
    # Progress shows as log lines when stderr is not a terminal: let them through.
    logging.getLogger("flameup_pandas.progress").setLevel(logging.INFO)
    try:
        return int(args.run(args))
    except ChangeGuardError as refused:
        print(f"flameup-pandas: {refused}", file=sys.stderr)
        return 1
    except FlameupError as exc:
        print(f"flameup-pandas: error: {exc}", file=sys.stderr)
        return 1 if getattr(args, "detailed_exitcode", False) else 2  # there, 2 means changes
    except (UpsertInterrupted, ReadInterrupted) as stop:  # 128 + the signal
        if isinstance(stop, UpsertInterrupted):  # after the summary of the rows answered
            print(stop.result)
            if getattr(args, "results", None):
                print(f"\nper-row results so far: {args.results}")
        print(f"flameup-pandas: {stop}", file=sys.stderr)
        return 128 + stop.signal
    except KeyboardInterrupt:
        print("flameup-pandas: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flameup-pandas",
        description="Upsert a parquet or CSV table, or a DuckDB query's result, of customers "
        "into Flameup's people API; export the people Flameup holds.",
        epilog="The API key is read from FLAMEUP_API_KEY, the URL from FLAMEUP_BASE_URL.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", required=True)

    upsert = commands.add_parser("upsert", help="send a file's (or a query's) rows to Flameup")
    add_table_arguments(upsert)
    add_run_arguments(upsert, "people", "validate and diff, send nothing")
    upsert.add_argument(
        "--full-refresh", action="store_true", help="ignore the state; send everything"
    )
    for flag, what in (("--max-changes", "updated"), ("--max-creates", "created")):
        upsert.add_argument(
            flag,
            type=limit,
            metavar="N|P%",
            help=f"plan first, and send nothing if more people would be {what} than N (or "
            "than P%% of the source's people)",
        )
    upsert.add_argument(
        "--state-values",
        action="store_true",
        help="keep in the state the values each person is sent with, so a plan shows "
        "before -> after (the state grows several times)",
    )
    upsert.set_defaults(run=run_upsert)

    plan = commands.add_parser(
        "plan", help="what an upsert would do, row by row and field by field; sends nothing"
    )
    add_table_arguments(plan)
    plan.add_argument("--state", help="the sync state to plan against (a path or URI)")
    plan.add_argument("--out", help="write the whole plan to this parquet file (a path or URI)")
    plan.add_argument(
        "--state-values",
        action="store_true",
        help="show each changed field's value before -> after, from a state kept with "
        "upsert --state-values",
    )
    plan.add_argument(
        "--against",
        choices=("state", "flameup"),
        default="state",
        help="flameup: also read each person a run would send from Flameup (one request "
        "each; the cost is printed first) and compare field by field",
    )
    plan.add_argument("--sample", type=positive(int), metavar="N", help="read only N people")
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when nothing would be sent, 2 when something would, 1 on error",
    )
    add_flags(plan, "--storage-option", *PROGRESS)
    plan.set_defaults(run=run_plan)

    validate = commands.add_parser("validate", help="report every bad row; send nothing")
    add_table_arguments(validate)
    validate.add_argument("--limit", type=int, default=50, help="problems to print (default 50)")
    add_flags(validate, "--storage-option")
    validate.set_defaults(run=run_validate)

    track = commands.add_parser("track", help="send a file's rows to Flameup as events")
    track.add_argument("path", metavar="FILE", help="a parquet file or directory, or a CSV file")
    name = track.add_mutually_exclusive_group(required=True)
    name.add_argument("--event", help="the event name of every row")
    name.add_argument("--event-column", metavar="COLUMN", help="the column of event names")
    track.add_argument(
        "--timestamp", default="timestamp", metavar="COLUMN", help="when (default: timestamp)"
    )
    track.add_argument("--event-id-column", metavar="COLUMN", help="the events' own ids")
    add_flags(track, *COLUMNS)
    track.add_argument(
        "--naive-utc",
        dest="naive_timestamps",
        action="store_const",
        const="utc",
        help="read timestamps without a time zone as UTC (default: refuse them)",
    )
    track.add_argument("--workspace-id", help="the workspace whose events listing is checked")
    add_run_arguments(track, "events", "validate, key and check the state; send nothing")
    track.set_defaults(run=run_track)

    export = commands.add_parser(
        "export", help="write every person Flameup holds to a parquet file, page by page"
    )
    export.add_argument("out", type=Path, metavar="OUT.parquet", help="the parquet file to write")
    export.add_argument("--search", help="only people whose id, email or name contains this")
    export.add_argument(
        "--status", choices=("active", "unsubscribed", "bounced"), help="only people with it"
    )
    add_flags(export, "--rate-limit", "--local", *PROGRESS)
    export.set_defaults(run=run_export)

    unlock = commands.add_parser(
        "unlock", help="break the lock a dead run left on a sync state in object storage"
    )
    unlock.add_argument("state", help="the state's URI, e.g. s3://bucket/people.state.parquet")
    add_flags(unlock, "--storage-option")
    unlock.set_defaults(run=run_unlock)

    # The local server's own parser is the parent: its options and help, parsed here (an
    # argparse.REMAINDER of them would refuse "serve --db FILE": options before any positional).
    from .testing._serve import _parser as server_parser
    from .testing._serve import serve as run_serve

    server = server_parser()
    serve = commands.add_parser(
        "serve",
        parents=[server],
        add_help=False,
        help="run a local Flameup server until stopped",
        description=server.description,
    )
    serve.set_defaults(run=run_serve)
    return parser


def run_upsert(args: argparse.Namespace) -> int:
    options = keywords(args, Options)
    with local_server(args.local) as target, table_source(args) as source:
        if isinstance(source, str):
            summary = upsert_file(source, **keywords(args, "column_types"), **options, **target)
        else:
            summary = upsert_arrow(source, **options, **target)
    print(summary)
    if args.dry_run:
        would = summary.extra.get("would_send", 0)
        print(f"\ndry run: would send {would:,} people in {math.ceil(would / 100):,} requests")
        for person in summary.sample:
            print(orjson.dumps(person).decode())
        if would > len(summary.sample):
            print(f"… and {would - len(summary.sample):,} more")
    if args.results:
        print(f"\nper-row results: {args.results}")
    return exit_code(summary, args.max_failed)


def run_track(args: argparse.Namespace) -> int:
    with local_server(args.local) as target:
        summary = track_file(args.path, **keywords(args, TrackOptions, "column_types"), **target)
    print(summary)
    if summary.results:
        print(f"per-row results: {summary.results}")
    return exit_code(summary, args.max_failed)


def exit_code(summary: Summary, max_failed: int) -> int:
    if summary.stopped is not None:
        print(f"flameup-pandas: stopped early: {summary.stopped}", file=sys.stderr)
        return 1
    return 1 if summary.problems > max_failed else 0


def run_plan(args: argparse.Namespace) -> int:
    options = keywords(args, Options, "against", "sample")
    with table_source(args) as source:
        if isinstance(source, str):
            planned = plan_file(source, **keywords(args, "column_types"), **options)
        else:
            planned = plan_arrow(source, **options)
    summary = summarize_plan(planned)
    print(summary)
    if args.out:  # a path or URI, opened as the state is (storage options included)
        for name in VALUE_COLUMNS:  # dicts of any values: kept as JSON text
            if name in planned.columns:
                planned[name] = planned[name].map(_json_text)
        where = resolve(args.out, Run(**keywords(args, "storage_options")).storage)
        with atomic_output(where) as sink:
            planned.to_parquet(sink)
        print(f"\nthe whole plan: {args.out}")
    return 2 if args.detailed_exitcode and summary.would_send else 0


def _json_text(values: Any) -> str | None:
    return None if values is None else orjson.dumps(values, default=str).decode()


def run_validate(args: argparse.Namespace) -> int:
    """Print the first ``--limit`` problems (the source read as ``upsert`` reads it)."""
    rules = Rules(**keywords(args, RuleOptions))
    storage = Run(**keywords(args, "storage_options")).storage
    problems = rows = 0
    with table_source(args) as source:
        types = keywords(args, "column_types")
        rows_read = open_rows(source, mapping=rules.mapping, filesystem=storage, **types)
        for frame in read_chunks(rows_read.batches):
            report = rules.plan(frame).report
            rows += len(frame)
            if problems < args.limit and len(report):
                shown = report.head(args.limit - problems)
                print(shown.to_string(index=False, header=problems == 0))
            problems += len(report)
    cut = f" (showing the first {args.limit})" if problems > args.limit else ""
    print(f"\n{rows:,} rows, {problems:,} problems{cut}")
    return 1 if problems else 0


def run_export(args: argparse.Namespace) -> int:
    with local_server(args.local) as target:
        options = keywords(args, DeliveryOptions, "search", "status", "progress")
        count = export_people(args.out, **options, **target)
    print(f"{count:,} people written to {args.out}")
    return 0


def run_unlock(args: argparse.Namespace) -> int:
    print(unlock_state(args.state, **keywords(args, "storage_options")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
