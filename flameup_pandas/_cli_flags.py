"""The flags the commands of :mod:`flameup_pandas.cli` share, and what they give.

A flag that stands for a keyword of the function a command runs has that keyword as its
``dest``, so :func:`keywords` reads the keywords from the flags by the one definition of them
(the TypedDicts of :mod:`flameup_pandas._run.options`) instead of re-listing them.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from ._run.changes import parse_limit
from ._run.progress import Progress
from ._run.sources import CHUNK_ROWS
from .exceptions import ConfigurationError

__all__ = ["keywords", "local_server", "positive", "table_source"]

LOCAL_DB = Path(".flameup") / "local.db"


def keywords(args: argparse.Namespace, *known: Any) -> dict[str, Any]:
    """The keywords of ``known`` (TypedDicts or names) the flags give (a flag not given is left
    out: the function's default holds), pairs as dicts, the progress flags as ``progress``."""
    names = {n for k in known for n in ([k] if isinstance(k, str) else k.__annotations__)}
    options: dict[str, Any] = {}
    for name, value in vars(args).items():
        if name not in names or value is None or value == []:
            continue
        if name in ("mapping", "column_types", "storage_options"):
            value = dict(value)
        elif name == "progress":
            value = Progress(every=args.progress_every) if value else False
        options[name] = value
    return options


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` above zero, else a usage error naming it."""

    def parse(text: str) -> float:
        value = math.nan
        with contextlib.suppress(ValueError):
            value = kind(text)
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be a number above 0, not {text!r}")
        return value

    return parse


def limit(text: str) -> int | float | str:
    """An argparse type: ``500`` people, or ``5%`` of the source's people."""
    try:
        return parse_limit(int(text) if text.strip().isdigit() else text.strip())
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def pair(metavar: str, *, secret: bool = False) -> Callable[[str], tuple[str, Any]]:
    """An argparse type: ``KEY=VALUE`` as a pair. A ``secret``'s value (a storage option's) may
    be empty, is JSON where it reads as JSON and is never echoed; others are stripped text."""

    def parse(text: str) -> tuple[str, Any]:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not (secret or value.strip()):
            shown = f"one without '=' or without a key ({key.strip()[:40]!r})"
            shown = shown if secret else repr(text)
            raise argparse.ArgumentTypeError(f"wants {metavar}, got {shown}")
        with contextlib.suppress(orjson.JSONDecodeError):
            value = orjson.loads(value) if secret else value.strip()
        return key.strip(), value

    return parse


FLAGS: dict[str, dict[str, Any]] = {
    "--exclude": dict(action="append", metavar="COLUMN", help="do not send this column"),
    "--column-type": dict(
        dest="column_types",
        action="append",
        type=pair("COLUMN=TYPE"),
        metavar="COLUMN=TYPE",
        help="read a CSV column as this type (string, int64, float64, bool, date32...); "
        "otherwise a column is numbers only when every cell is written as its number is",
    ),
    "--naive-timestamps": dict(
        choices=("error", "utc"),
        default="error",
        help="timestamps without a time zone: refused (error, the default) or read as UTC",
    ),
    "--rate-limit": dict(
        type=positive(float),
        metavar="N",
        help="at most N requests of ours in any minute, to leave room on the key for other "
        "jobs (default: none; the budget Flameup announces is always obeyed)",
    ),
    "--storage-option": dict(
        dest="storage_options",
        action="append",
        type=pair("KEY=VALUE", secret=True),
        metavar="KEY=VALUE",
        help="a keyword for the filesystem of every URI given (fsspec's storage options, "
        "as pandas' storage_options=), where the environment is not enough: "
        "endpoint_url=https://minio.internal:9000, profile=etl, anon=true; repeat for more. "
        "A value that reads as JSON (true, 3, {...}) is taken as that",
    ),
    "--local": dict(
        action="store_true",
        help=f"talk to a local Flameup server kept in {LOCAL_DB} (no account needed)",
    ),
    "--no-progress": dict(dest="progress", action="store_false"),
    "--progress-every": dict(
        type=positive(float),
        default=10.0,
        metavar="SECONDS",
        help="when stderr is not a terminal, log progress at most this often (default 10)",
    ),
}
"""The flags several commands share; :func:`add_flags` adds them by name."""
COLUMNS = ("--exclude", "--column-type", "--naive-timestamps")  # how a table is read
PROGRESS = ("--no-progress", "--progress-every")


def add_flags(parser: argparse.ArgumentParser, *flags: str) -> None:
    for flag in flags:
        parser.add_argument(flag, **FLAGS[flag])


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
        type=pair("FIELD=COLUMN"),
        metavar="FIELD=COLUMN",
        help="feed an API field from a column: userId=customer_no, traits.plan=tier",
    )
    add_flags(parser, *COLUMNS)


def add_run_arguments(parser: argparse.ArgumentParser, rows: str, dry_run: str) -> None:
    """The flags of ``SharedRunOptions`` and delivery's, for every sending command; ``rows``
    names what is sent, ``dry_run`` what a dry run does."""
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
    add_flags(parser, "--rate-limit")
    parser.add_argument(
        "--concurrency",
        type=positive(int),
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
    add_flags(parser, "--storage-option", "--local", *PROGRESS)


@contextlib.contextmanager
def local_server(enabled: bool) -> Iterator[dict[str, Any]]:
    """The keywords that reach a local Flameup server run for the command (none without it)."""
    if not enabled:
        yield {}
        return
    from .testing import FlameupServer

    LOCAL_DB.parent.mkdir(exist_ok=True)
    with FlameupServer(db=LOCAL_DB) as server:
        print(f"local Flameup server at {server.base_url} (data in {LOCAL_DB})", file=sys.stderr)
        yield {"api_key": server.api_key, "base_url": server.base_url}


@contextlib.contextmanager
def table_source(args: argparse.Namespace) -> Iterator[Any]:
    """The path given, or the ``--sql`` query's result streamed from DuckDB as record batches."""
    if args.sql is None:
        yield args.path
        return
    try:
        import duckdb
    except ImportError:
        raise ConfigurationError(
            "--sql needs DuckDB: pip install 'flameup-pandas[duckdb]'"
        ) from None
    database = args.duckdb  # a Path, or None: in memory
    if database is not None and not database.exists():
        raise ConfigurationError(f"no such DuckDB database: {database}")
    try:
        con = duckdb.connect(str(database) if database else ":memory:", read_only=bool(database))
    except duckdb.Error as exc:
        raise ConfigurationError(f"cannot open {database}: {_first_line(exc)}") from None
    with contextlib.closing(con):
        try:
            relation = con.sql(args.sql)
        except duckdb.Error as exc:
            raise ConfigurationError(f"the query failed: {_first_line(exc)}") from None
        if relation is None:
            raise ConfigurationError("the query returned no rows to send (is it a SELECT?)")
        yield relation.to_arrow_reader(batch_size=CHUNK_ROWS)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
