"""``flameup-pandas track FILE``: send a parquet or CSV file's rows as events.

Exit codes as for ``upsert``: 0 when every row is sent or skipped; 1 when a row is invalid,
rejected, failed or uncertain (more than ``--max-failed``); 2 for usage and configuration
errors (printed by :func:`flameup_pandas.cli.main`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from ._events.api import track_file

__all__ = ["add_track_command"]


def add_track_command(
    commands: Any,
    add_shared: Callable[[argparse.ArgumentParser], None],
    local_server: Callable[[bool], AbstractContextManager[dict[str, Any]]],
    parse_pairs: Callable[[list[str]], dict[str, str]],
) -> None:
    """Add the ``track`` command to the ``commands`` of the main parser."""
    track = commands.add_parser("track", help="send a file's rows to Flameup as events")
    track.add_argument("path", metavar="FILE", help="a parquet file or directory, or a CSV file")
    name = track.add_mutually_exclusive_group(required=True)
    name.add_argument("--event", help="the event name of every row")
    name.add_argument("--event-column", metavar="COLUMN", help="the column of event names")
    track.add_argument(
        "--timestamp", default="timestamp", metavar="COLUMN", help="when (default: timestamp)"
    )
    track.add_argument("--event-id-column", metavar="COLUMN", help="the events' own ids")
    track.add_argument(
        "--exclude", action="append", default=[], metavar="COLUMN", help="a column not to send"
    )
    track.add_argument(
        "--column-type",
        dest="column_types",
        action="append",
        default=[],
        metavar="COLUMN=TYPE",
        help="read a CSV column as TYPE (as for upsert)",
    )
    track.add_argument(
        "--naive-utc",
        action="store_true",
        help="read timestamps without a time zone as UTC (default: refuse them)",
    )
    track.add_argument(
        "--state", help="the events state (a path or URI): never send an event twice"
    )
    track.add_argument("--workspace-id", help="the workspace whose events listing is checked")
    track.add_argument("--max-duration", type=float, metavar="SECONDS", help="stop after this")
    track.add_argument("--results", help="write per-row results to this parquet file")
    track.add_argument(
        "--dry-run", action="store_true", help="validate, key and check the state; send nothing"
    )
    track.add_argument("--rate-limit", type=float, default=None, metavar="N")
    track.add_argument(
        "--concurrency", type=int, default=None, metavar="N", help="events in flight at once"
    )
    track.add_argument("--no-progress", dest="progress", action="store_false")
    track.add_argument(
        "--max-failed", type=int, default=0, help="rows that may not settle, with exit code 0"
    )
    add_shared(track)

    def run(args: argparse.Namespace) -> int:
        with local_server(args.local) as target:
            summary = track_file(
                args.path,
                column_types=parse_pairs(args.column_types) or None,
                results=args.results,
                event=args.event,
                event_column=args.event_column,
                timestamp=args.timestamp,
                event_id_column=args.event_id_column,
                exclude=args.exclude,
                naive_timestamps="utc" if args.naive_utc else "error",
                state=args.state,
                workspace_id=args.workspace_id,
                max_duration=args.max_duration,
                dry_run=args.dry_run,
                rate_limit=args.rate_limit,
                concurrency=args.concurrency,
                progress=args.progress,
                **target,
            )
        print(summary)
        if summary.results:
            print(f"per-row results: {summary.results}")
        return 1 if summary.problems > args.max_failed else 0

    track.set_defaults(run=run)
