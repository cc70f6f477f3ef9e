"""The command line's parsers as the CLI reference shows them (``sphinx-argparse``).

sphinx-argparse reads help texts as reStructuredText, where ``customers/*.parquet`` starts an
emphasis; the texts are written for a terminal. These factories return the command's own
parsers with reST's markup characters escaped, so the page shows what ``--help`` shows.
"""

from __future__ import annotations

import argparse
import re

from flameup_pandas import cli

_MARKUP = re.compile(r"([\\*`|])|(?<=\w)_(?=\W|$)")


def escape(text: str | None) -> str | None:
    """``text`` with reST's inline markup characters escaped (None stays None)."""
    return None if text is None else _MARKUP.sub(lambda m: "\\" + m.group(0), text)


def escaped(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Escape the description, epilog and every help text of ``parser`` and its commands."""
    parser.description, parser.epilog = escape(parser.description), escape(parser.epilog)
    for action in parser._actions:
        if action.help not in (None, argparse.SUPPRESS):
            action.help = escape(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = escape(choice.help)
            for sub in set(action.choices.values()):
                escaped(sub)
    return parser


def flameup_pandas() -> argparse.ArgumentParser:
    """``flameup-pandas``: upsert, validate, export, serve (its options are the server's own)."""
    return escaped(cli.build_parser())
