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
    add_run_arguments: Callable[[argparse.ArgumentParser, str, str], None],
    add_column_arguments: Callable[[argparse.ArgumentParser], None],
    run_options: Callable[[argparse.Namespace], dict[str, Any]],
    local_server: Callable[[bool], AbstractContextManager[dict[str, Any]]],
    parse_pairs: Callable[[list[str]], dict[str, str]],
) -> None:
    """Add the ``track`` command to the ``commands`` of the main parser; the flags it shares
    with ``upsert`` come from ``add_run_arguments`` (read by ``run_options``)."""
    track = commands.add_parser("track", help="send a file's rows to Flameup as events")
    track.add_argument("path", metavar="FILE", help="a parquet file or directory, or a CSV file")
    name = track.add_mutually_exclusive_group(required=True)
    name.add_argument("--event", help="the event name of every row")
    name.add_argument("--event-column", metavar="COLUMN", help="the column of event names")
    track.add_argument(
        "--timestamp", default="timestamp", metavar="COLUMN", help="when (default: timestamp)"
    )
    track.add_argument("--event-id-column", metavar="COLUMN", help="the events' own ids")
    add_column_arguments(track)
    track.add_argument(
        "--naive-utc",
        action="store_true",
        help="read timestamps without a time zone as UTC (default: refuse them)",
    )
    track.add_argument("--workspace-id", help="the workspace whose events listing is checked")
    add_run_arguments(track, "events", "validate, key and check the state; send nothing")

    def run(args: argparse.Namespace) -> int:
        with local_server(args.local) as target:
            summary = track_file(
                args.path,
                column_types=parse_pairs(args.column_types) or None,
                event=args.event,
                event_column=args.event_column,
                timestamp=args.timestamp,
                event_id_column=args.event_id_column,
                exclude=args.exclude,
                naive_timestamps="utc" if args.naive_utc else "error",
                workspace_id=args.workspace_id,
                **run_options(args),
                **target,
            )
        print(summary)
        if summary.results:
            print(f"per-row results: {summary.results}")
        return 1 if summary.problems > args.max_failed else 0

    track.set_defaults(run=run)
