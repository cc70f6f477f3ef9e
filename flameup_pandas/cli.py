"""The ``flameup-pandas`` command: upsert, plan, validate or track a parquet/CSV file or a DuckDB
query, export the workspace's people to parquet, or serve locally.

Exit codes (``docs/guides/files-and-cli.md``): 0 all went, 1 rows need attention, the run
stopped early or the change guard refused, 2 usage or configuration errors (one line, no
traceback), 130/143 after Ctrl-C/SIGTERM; ``plan --detailed-exitcode`` as Terraform's. The API
key is read from ``FLAMEUP_API_KEY`` only, never from a flag (shell history, process lists).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from ._api import export_people, plan_arrow, plan_file, unlock_state, upsert_arrow, upsert_file
from ._cli_track import add_track_command
from ._run.changes import VALUE_COLUMNS, parse_limit, summarize_plan
from ._run.options import Run
from ._run.plan import Rules
from ._run.progress import Progress
from ._run.sources import CHUNK_ROWS, open_rows, read_chunks
from ._storage import atomic_output, resolve
from ._version import __version__
from .exceptions import (
    ChangeGuardError,
    ConfigurationError,
    FlameupError,
    ReadInterrupted,
    UpsertInterrupted,
)

__all__ = ["main"]

LOCAL_DB = Path(".flameup") / "local.db"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "sql") and (problem := source_usage_problem(args)):
        parser.error(problem)
    logging.basicConfig(
        level=logging.WARNING - 10 * args.verbose, format="%(levelname)s %(message)s"
    )
    # Progress shows as log lines when stderr is not a terminal: let them through.
    logging.getLogger("flameup_pandas.progress").setLevel(logging.INFO)
    try:
        return int(args.run(args))
    except FlameupError as exc:
        print(f"flameup-pandas: error: {exc}", file=sys.stderr)
        return 2
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
            default=None,
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
    plan.add_argument(
        "--sample", type=positive(int), default=None, metavar="N", help="read only N people"
    )
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when nothing would be sent, 2 when something would, 1 on error",
    )
    add_storage_argument(plan)
    add_progress_arguments(plan)
    plan.set_defaults(run=run_plan)

    validate = commands.add_parser("validate", help="report every bad row; send nothing")
    add_table_arguments(validate)
    validate.add_argument("--limit", type=int, default=50, help="problems to print (default 50)")
    add_storage_argument(validate)
    validate.set_defaults(run=run_validate)

    add_track_command(
        commands,
        add_run_arguments,
        add_column_arguments,
        run_options,
        local_server,
        parse_column_types,
    )

    export = commands.add_parser(
        "export", help="write every person Flameup holds to a parquet file, page by page"
    )
    export.add_argument("out", type=Path, metavar="OUT.parquet", help="the parquet file to write")
    export.add_argument("--search", help="only people whose id, email or name contains this")
    export.add_argument(
        "--status", choices=("active", "unsubscribed", "bounced"), help="only people with it"
    )
    add_rate_limit_argument(export)
    add_local_argument(export)
    add_progress_arguments(export)
    export.set_defaults(run=run_export)

    unlock = commands.add_parser(
        "unlock", help="break the lock a dead run left on a sync state in object storage"
    )
    unlock.add_argument("state", help="the state's URI, e.g. s3://bucket/people.state.parquet")
    add_storage_argument(unlock)
    unlock.set_defaults(run=run_unlock)

    # The local server's own parser is the parent: its options and help, parsed here (an
    # argparse.REMAINDER of them would refuse "serve --db FILE": options before any positional).
    from .testing._serve import _parser as server_parser

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


def add_run_arguments(parser: argparse.ArgumentParser, rows: str, dry_run: str) -> None:
    """The flags of the keywords every sending command shares, meaning the same
    (:class:`~flameup_pandas._run.options.SharedRunOptions` and delivery's); ``rows``
    names what is sent, ``dry_run`` what a dry run does. :func:`run_options` reads them."""
    parser.add_argument(
        "--state",
        help=f"the state, a path or URI (s3://bucket/{rows}.state): send only the {rows} "
        "Flameup does not hold yet",
    )
    parser.add_argument("--results", help="write per-row results to this parquet file or URI")
    parser.add_argument("--dry-run", action="store_true", help=dry_run)
    parser.add_argument(
        "--max-duration",
        type=positive(float),
        metavar="SECONDS",
        help="start no request after this; the rest are skipped (rerun with --state)",
    )
    add_rate_limit_argument(parser)
    parser.add_argument(
        "--concurrency",
        type=positive(int),
        default=None,
        metavar="N",
        help="requests in flight at once (default: as many as the budget and the server's "
        "latency allow, fewer when it shows strain, at most 32)",
    )
    parser.add_argument(
        "--max-failed",
        type=int,
        default=0,
        help="rows that may need attention (invalid, rejected...) with exit code 0 (default 0)",
    )
    add_storage_argument(parser)
    add_local_argument(parser)
    add_progress_arguments(parser)


def add_rate_limit_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate-limit",
        type=positive(float),
        default=None,
        metavar="N",
        help="at most N requests of ours in any minute, to leave room on the key for other "
        "jobs (default: none; the budget Flameup announces is always obeyed)",
    )


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The shared keywords the flags of :func:`add_run_arguments` give."""
    return dict(
        state=args.state,
        results=args.results,
        dry_run=args.dry_run,
        max_duration=args.max_duration,
        rate_limit=args.rate_limit,
        concurrency=args.concurrency,
        progress=progress_of(args),
        storage_options=parse_storage_options(args.storage_options),
    )


def limit(text: str) -> int | float | str:
    """An argparse type: ``500`` people, or ``5%`` of the source's people."""
    try:
        return parse_limit(int(text) if text.strip().isdigit() else text.strip())
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` above zero, else a usage error naming it."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be a number above 0, not {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_storage_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-option",
        dest="storage_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword for the filesystem of every URI given (fsspec's storage options, "
        "as pandas' storage_options=), where the environment is not enough: "
        "endpoint_url=https://minio.internal:9000, profile=etl, anon=true; repeat for more. "
        "A value that reads as JSON (true, 3, {...}) is taken as that",
    )


def parse_storage_options(pairs: Sequence[str]) -> dict[str, Any] | None:
    """``--storage-option KEY=VALUE`` pairs as a dict (None when none): a value that reads as
    JSON is that value, any other is text. Values are never echoed (they may be secrets)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(
                "flameup-pandas: error: --storage-option wants KEY=VALUE, got one without "
                f"'=' or without a key ({key.strip()[:40]!r})"
            )
        try:
            value: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = text
        options[key.strip()] = value
    return options or None


def add_local_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--local",
        action="store_true",
        help=f"talk to a local Flameup server kept in {LOCAL_DB} (no account needed)",
    )


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        nargs="?",
        help="a parquet file or directory, or a CSV file: a path or a URI (s3://, gs://, "
        "az://, file://)",
    )
    parser.add_argument(
        "--sql",
        metavar="QUERY",
        help="instead of PATH: run this query in DuckDB and stream its result "
        "(e.g. SELECT ... FROM read_parquet('customers/*.parquet') WHERE ...)",
    )
    parser.add_argument(
        "--duckdb",
        type=Path,
        metavar="FILE",
        help="the DuckDB database --sql runs in, opened read-only (default: in memory)",
    )
    parser.add_argument(
        "--map",
        dest="mapping",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="feed an API field from a column: userId=customer_no, traits.plan=tier",
    )
    add_column_arguments(parser)


def add_column_arguments(parser: argparse.ArgumentParser) -> None:
    """``--exclude`` and ``--column-type``, for every command that reads a table."""
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="COLUMN", help="do not send this column"
    )
    parser.add_argument(
        "--column-type",
        dest="column_types",
        action="append",
        default=[],
        metavar="COLUMN=TYPE",
        help="read a CSV column as this type (string, int64, float64, bool, date32...); "
        "otherwise a column is numbers only when every cell is written as its number is",
    )
    parser.add_argument(
        "--naive-timestamps",
        choices=("error", "utc"),
        default="error",
        help="timestamps without a time zone: refused (error, the default) or read as UTC",
    )


def add_progress_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument(
        "--progress-every",
        type=positive(float),
        default=10.0,
        metavar="SECONDS",
        help="when stderr is not a terminal, log progress at most this often (default 10)",
    )


def progress_of(args: argparse.Namespace) -> Progress | bool:
    return Progress(every=args.progress_every) if args.progress else False


def parse_mapping(pairs: Sequence[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field or not column:
            raise SystemExit(f"flameup-pandas: error: --map wants FIELD=COLUMN, got {pair!r}")
        mapping[field.strip()] = column.strip()
    return mapping


def parse_column_types(pairs: list[str]) -> dict[str, str]:
    """``--column-type COLUMN=TYPE`` pairs as a dict."""
    types: dict[str, str] = {}
    for pair in pairs:
        column, sep, kind = pair.partition("=")
        if not sep or not column.strip() or not kind.strip():
            raise SystemExit(
                f"flameup-pandas: error: --column-type wants COLUMN=TYPE, got {pair!r}"
            )
        types[column.strip()] = kind.strip()
    return types


def run_upsert(args: argparse.Namespace) -> int:
    options: dict[str, Any] = dict(
        run_options(args),
        mapping=parse_mapping(args.mapping) or None,
        column_types=parse_column_types(args.column_types) or None,
        exclude=args.exclude or None,
        naive_timestamps=args.naive_timestamps,
        full_refresh=args.full_refresh,
        max_changes=args.max_changes,
        max_creates=args.max_creates,
        state_values=args.state_values,
    )
    try:
        with local_server(args.local) as target, table_source(args) as source:
            if isinstance(source, str):
                summary = upsert_file(source, **options, **target)
            else:
                options.pop("column_types")
                summary = upsert_arrow(source, **options, **target)
    except UpsertInterrupted as stop:
        return report_interrupted(stop, args.results)
    except ChangeGuardError as refused:
        print(f"flameup-pandas: {refused}", file=sys.stderr)
        return 1
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
    if summary.stopped is not None:
        print(f"flameup-pandas: stopped early: {summary.stopped}", file=sys.stderr)
        return 1
    return 1 if summary.problems > args.max_failed else 0


def run_plan(args: argparse.Namespace) -> int:
    """Print the plan's summary (and write the plan); the exit code says if anything would go."""
    options: dict[str, Any] = dict(
        mapping=parse_mapping(args.mapping) or None,
        exclude=args.exclude or None,
        naive_timestamps=args.naive_timestamps,
        state=args.state,
        progress=progress_of(args),
        storage_options=parse_storage_options(args.storage_options),
        state_values=args.state_values,
    )
    types = parse_column_types(args.column_types) or None
    against = {"against": args.against, "sample": None if args.sample is None else int(args.sample)}
    try:
        with table_source(args) as source:
            if isinstance(source, str):
                planned = plan_file(source, column_types=types, **against, **options)
            else:
                planned = plan_arrow(source, **against, **options)
    except FlameupError as exc:
        if not args.detailed_exitcode:
            raise
        print(f"flameup-pandas: error: {exc}", file=sys.stderr)
        return 1
    summary = summarize_plan(planned)
    print(summary)
    if args.out:  # a path or URI, opened as the state is (storage options included)
        for name in VALUE_COLUMNS:  # dicts of any values: kept as JSON text
            if name in planned.columns:
                planned[name] = planned[name].map(_json_text)
        where = resolve(args.out, Run(storage_options=options["storage_options"]).storage)
        with atomic_output(where) as sink:
            planned.to_parquet(sink)
        print(f"\nthe whole plan: {args.out}")
    if args.detailed_exitcode:
        return 2 if summary.would_send else 0
    return 0


def _json_text(values: Any) -> str | None:
    return None if values is None else orjson.dumps(values, default=str).decode()


def report_interrupted(stop: UpsertInterrupted, results: str | None) -> int:
    """After Ctrl-C or SIGTERM: the summary of the rows answered, then 128 + the signal."""
    print(stop.result)
    if results:
        print(f"\nper-row results so far: {results}")
    print(f"flameup-pandas: {stop}", file=sys.stderr)
    return 128 + stop.signal


@contextlib.contextmanager
def local_server(enabled: bool) -> Iterator[dict[str, Any]]:
    """Run a local Flameup server for the command's duration, its data kept in .flameup/."""
    if not enabled:
        yield {}
        return
    from .testing import FlameupServer

    LOCAL_DB.parent.mkdir(exist_ok=True)
    # Flameup's documented budget, as the real service would announce it
    with FlameupServer(db=LOCAL_DB) as server:
        print(f"local Flameup server at {server.base_url} (data in {LOCAL_DB})", file=sys.stderr)
        yield {"api_key": server.api_key, "base_url": server.base_url}


def source_usage_problem(args: argparse.Namespace) -> str | None:
    if (args.path is None) == (args.sql is None):
        return "give either a PATH or --sql QUERY (one of them)"
    if args.duckdb is not None and args.sql is None:
        return "--duckdb FILE goes with --sql QUERY"
    return None


@contextlib.contextmanager
def table_source(args: argparse.Namespace) -> Iterator[Any]:
    """The path given, or a record batch reader over the ``--sql`` query's result."""
    if args.sql is None:
        yield args.path
        return
    with duckdb_query(args.sql, args.duckdb) as reader:
        yield reader


@contextlib.contextmanager
def duckdb_query(query: str, database: Path | None) -> Iterator[Any]:
    """Run ``query`` in DuckDB; yield its result as a stream of record batches.

    DuckDB produces the result as it is read, so a query over more rows than fit in memory
    streams as a file does.
    """
    try:
        import duckdb
    except ImportError:
        raise ConfigurationError(
            "--sql needs DuckDB: pip install 'flameup-pandas[duckdb]'"
        ) from None
    if database is not None and not database.exists():
        raise ConfigurationError(f"no such DuckDB database: {database}")
    try:
        con = duckdb.connect(str(database) if database else ":memory:", read_only=bool(database))
    except duckdb.Error as exc:
        raise ConfigurationError(f"cannot open {database}: {_first_line(exc)}") from None
    try:
        try:
            relation = con.sql(query)
        except duckdb.Error as exc:
            raise ConfigurationError(f"the query failed: {_first_line(exc)}") from None
        if relation is None:
            raise ConfigurationError("the query returned no rows to send (is it a SELECT?)")
        yield relation.to_arrow_reader(batch_size=CHUNK_ROWS)
    finally:
        con.close()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def run_validate(args: argparse.Namespace) -> int:
    rules = Rules(
        mapping=parse_mapping(args.mapping) or None,
        exclude=args.exclude or None,
        naive_timestamps=args.naive_timestamps,
    )
    types = parse_column_types(args.column_types) or None
    storage = Run(storage_options=parse_storage_options(args.storage_options)).storage
    with table_source(args) as source:
        rows, problems = _report_problems(rules, source, args.limit, types, storage)
    print(
        f"\n{rows:,} rows, {problems:,} problems"
        + (f" (showing the first {args.limit})" if problems > args.limit else "")
    )
    return 1 if problems else 0


def _report_problems(
    rules: Rules,
    source: Any,
    limit: int,
    column_types: dict[str, str] | None,
    storage: Any = None,
) -> tuple[int, int]:
    """Print the first ``limit`` problems; count rows and problems. The source is read as
    ``upsert`` reads it (the same CSV types)."""
    problems = rows = 0
    rows_read = open_rows(
        source, mapping=rules.mapping, column_types=column_types, filesystem=storage
    )
    for frame in read_chunks(rows_read.batches):
        report = rules.plan(frame).report
        rows += len(frame)
        if problems < limit and len(report):
            print(report.head(limit - problems).to_string(index=False, header=problems == 0))
        problems += len(report)
    return rows, problems


def run_export(args: argparse.Namespace) -> int:
    try:
        with local_server(args.local) as target:
            count = export_people(
                args.out,
                search=args.search,
                status=args.status,
                rate_limit=args.rate_limit,
                progress=progress_of(args),
                **target,
            )
    except ReadInterrupted as stop:
        print(f"flameup-pandas: {stop}", file=sys.stderr)
        return 128 + stop.signal
    print(f"{count:,} people written to {args.out}")
    return 0


def run_unlock(args: argparse.Namespace) -> int:
    print(unlock_state(args.state, storage_options=parse_storage_options(args.storage_options)))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from .testing._serve import serve

    return serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
