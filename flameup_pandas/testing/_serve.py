"""``flameup-pandas serve``: run the local Flameup server until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from ._ratelimit import DOCUMENTED_LIMIT, RATE_POLICIES
from ._server import FlameupServer
from ._shapes import PERSON_SHAPES

__all__ = ["serve", "serve_main"]


def _rate_limit(text: str) -> int | None:
    if text.lower() in ("0", "off", "none"):
        return None
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be a positive number, or 0/off for no limit")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flameup-pandas serve",
        description="Run a local Flameup API on 127.0.0.1 until Ctrl+C (or SIGTERM).",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument(
        "--db", default=None, help="SQLite file: data and API key survive a restart"
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        default=DOCUMENTED_LIMIT,
        metavar="N",
        help=f"requests a window per key; 0 or off for none (default {DOCUMENTED_LIMIT})",
    )
    parser.add_argument(
        "--rate-window", type=float, default=60.0, metavar="SECONDS", help="default 60"
    )
    parser.add_argument(
        "--rate-policy",
        choices=RATE_POLICIES,
        default="fixed",
        help="fixed windows (Flameup's, the default), a sliding window log, or a token bucket",
    )
    parser.add_argument(
        "--per-person-errors",
        action="store_true",
        help="store the valid people of a batch and report the others, instead of a 422",
    )
    parser.add_argument(
        "--env",
        action="store_true",
        help='print the URL and key as export lines, for eval "$(flameup-pandas serve --env)" '
        "in a shell whose jobs run the server in the background",
    )
    parser.add_argument(
        "--person-shape",
        choices=PERSON_SHAPES,
        default="seed",
        help="answer people as on the batch page (seed, default) or as on the API overview",
    )
    return parser


def serve_main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; prints the base URL, the API key and the web view's URL
    first. Returns 0."""
    return serve(_parser().parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    """:func:`serve_main` with its arguments parsed (``flameup-pandas serve`` parses them as
    one of its commands, with this module's parser as the parent)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server = FlameupServer(
            rate_limit=args.rate_limit,
            db=args.db,
            per_person_errors=args.per_person_errors,
            rate_window=args.rate_window,
            port=args.port,
            person_shape=args.person_shape,
            rate_policy=args.rate_policy,
        )
        with server:
            _announce(server, args)
            while not stop.wait(0.2):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("flameup-pandas serve: stopped", file=sys.stderr, flush=True)
    return 0


def _announce(server: FlameupServer, args: argparse.Namespace) -> None:
    """The URL, the key and the web view's URL; with ``--env`` as ``export`` lines, after
    which stdout is closed, so ``eval "$(flameup-pandas serve --env &)"`` returns while the
    server runs on in the background."""
    limit = (
        "off"
        if args.rate_limit is None
        else f"{args.rate_limit}/{args.rate_window:g}s ({args.rate_policy})"
    )
    export, stop = ("export ", f"kill {os.getpid()}") if args.env else ("", "Ctrl+C")
    print(f"{export}FLAMEUP_BASE_URL={server.base_url}")
    print(f"{export}FLAMEUP_API_KEY={server.api_key}")
    print(f"{export}FLAMEUP_UI_URL={server.ui_url}")
    print(
        f"{'# ' if args.env else ''}flameup-pandas serve: rate limit {limit}, db "
        f"{args.db or 'in memory'}, {args.person_shape} person shape; stop with {stop}",
        flush=True,
    )
    if args.env:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
