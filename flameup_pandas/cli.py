"""The ``flameup-pandas`` command: upsert or validate a parquet/CSV file, or serve locally.

Exit codes: 0 every row created, updated or skipped; 1 rows were invalid, rejected or failed
(more than ``--max-failed``); 2 usage, configuration or authentication errors, printed as one
line without a traceback. The API key is read from ``FLAMEUP_API_KEY`` only, never from a flag
(flags end up in shell history and process lists).
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

from ._api import upsert_file
from ._sources import open_rows, read_chunks
from ._upsert import Rules
from .exceptions import FlameupError

__all__ = ["main"]

LOCAL_DB = Path(".flameup") / "local.db"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * args.verbose, format="%(levelname)s %(message)s"
    )
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
        description="Upsert a parquet or CSV table of customers into Flameup's people API.",
        epilog="The API key is read from FLAMEUP_API_KEY, the URL from FLAMEUP_BASE_URL.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    commands = parser.add_subparsers(title="commands", required=True)

    upsert = commands.add_parser("upsert", help="send a file's rows to Flameup")
    add_table_arguments(upsert)
    upsert.add_argument(
        "--state", type=Path, help="sync state file: send only new or changed people"
    )
    upsert.add_argument(
        "--full-refresh", action="store_true", help="ignore the state; send everything"
    )
    upsert.add_argument("--results", type=Path, help="write per-row results to this parquet file")
    upsert.add_argument("--dry-run", action="store_true", help="validate and diff, send nothing")
    upsert.add_argument(
        "--rate-limit",
        type=positive(float),
        default=120,
        help="requests a minute for this key (default 120, Flameup's documented limit)",
    )
    upsert.add_argument(
        "--concurrency", type=positive(int), default=4, help="parallel requests (default 4)"
    )
    upsert.add_argument(
        "--max-failed",
        type=int,
        default=0,
        help="rows that may be invalid/rejected/failed with exit code 0 (default 0)",
    )
    upsert.add_argument(
        "--local",
        action="store_true",
        help=f"send to a local Flameup server kept in {LOCAL_DB} (no account needed)",
    )
    upsert.add_argument("--no-progress", dest="progress", action="store_false")
    upsert.set_defaults(run=run_upsert)

    validate = commands.add_parser("validate", help="report every bad row; send nothing")
    add_table_arguments(validate)
    validate.add_argument("--limit", type=int, default=50, help="problems to print (default 50)")
    validate.set_defaults(run=run_validate)

    serve = commands.add_parser(
        "serve", help="run a local Flameup server until stopped", add_help=False
    )
    serve.add_argument("serve_args", nargs=argparse.REMAINDER)
    serve.set_defaults(run=run_serve)
    return parser


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


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="a parquet file or directory, or a CSV file")
    parser.add_argument(
        "--map",
        dest="mapping",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="feed an API field from a column: userId=customer_no, traits.plan=tier",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="COLUMN",
        help="do not send this column as a trait",
    )


def parse_mapping(pairs: Sequence[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field or not column:
            raise SystemExit(f"flameup-pandas: error: --map wants FIELD=COLUMN, got {pair!r}")
        mapping[field.strip()] = column.strip()
    return mapping


def run_upsert(args: argparse.Namespace) -> int:
    options: dict[str, Any] = dict(
        mapping=parse_mapping(args.mapping) or None,
        exclude=args.exclude or None,
        results=args.results,
        state=args.state,
        full_refresh=args.full_refresh,
        dry_run=args.dry_run,
        rate_limit=args.rate_limit,
        concurrency=args.concurrency,
        progress=args.progress,
    )
    with local_server(args.local, args.rate_limit) as target:
        summary = upsert_file(args.path, **options, **target)
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
    return 1 if summary.problems > args.max_failed else 0


@contextlib.contextmanager
def local_server(enabled: bool, rate_limit: float | None) -> Iterator[dict[str, Any]]:
    """Run a local Flameup server for the command's duration, its data kept in .flameup/."""
    if not enabled:
        yield {}
        return
    from .testing import FlameupServer

    LOCAL_DB.parent.mkdir(exist_ok=True)
    limit = None if rate_limit is None else int(rate_limit)
    with FlameupServer(rate_limit=limit, db=LOCAL_DB) as server:
        print(f"local Flameup server at {server.base_url} (data in {LOCAL_DB})", file=sys.stderr)
        yield {"api_key": server.api_key, "base_url": server.base_url}


def run_validate(args: argparse.Namespace) -> int:
    rules = Rules(mapping=parse_mapping(args.mapping) or None, exclude=args.exclude or None)
    problems = rows = 0
    for frame in read_chunks(open_rows(args.path).batches):
        report = rules.plan(frame).report
        rows += len(frame)
        if problems < args.limit and len(report):
            print(report.head(args.limit - problems).to_string(index=False, header=problems == 0))
        problems += len(report)
    print(
        f"\n{rows:,} rows, {problems:,} problems"
        + (f" (showing the first {args.limit})" if problems > args.limit else "")
    )
    return 1 if problems else 0


def run_serve(args: argparse.Namespace) -> int:
    from .testing._serve import serve_main

    return serve_main(args.serve_args)


if __name__ == "__main__":
    raise SystemExit(main())
