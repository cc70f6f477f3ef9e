"""The ``benchmark-report`` directive: the performance figures, read from one file.

``python -m benchmarks`` writes ``benchmarks/results.json`` (date, machine, versions, and every
line of its report: a figure beside the baseline measured in the same run). This directive
renders that file into the page at build time, so no figure in the docs is typed by hand. The
file is a dependency of the page: writing a new one rebuilds it.

    ```{benchmark-report}
    ```

    ```{benchmark-report} benchmarks/results.json
    :only: conversion pacing
    ```

    ```{benchmark-report}
    :machine:
    ```

(``:machine:``: only the sentence on when, where and with what the figures were measured.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = "benchmarks/results.json"
COLUMNS = (
    ("figure", "figure", 34),
    ("ours", "ours", 10),
    ("baseline", "baseline (same run)", 26),
    ("base", "baseline value", 10),
    ("ratio", "ratio", 8),
    ("target", "target", 12),
    ("latency", "latency added", 8),
)


def load(path: Path) -> dict[str, Any]:
    """The report ``python -m benchmarks`` wrote; a missing or partial one is a build error."""
    data = json.loads(path.read_text())
    for key in ("date", "machine", "versions", "figures"):
        if key not in data:
            raise ValueError(f"{path}: no {key!r}; rewrite it with python -m benchmarks")
    return data


def describe(data: dict[str, Any]) -> str:
    """One sentence on when, where and with what the figures were measured."""
    machine, versions = data["machine"], data["versions"]
    libraries = ", ".join(f"{name} {version}" for name, version in versions.items())
    kind = "a quick run (--quick: smaller sizes)" if data.get("quick") else "a full run"
    return (
        f"Measured {data['date']} (commit {data.get('commit', '?')}) in {kind} of "
        f"{data.get('seconds', '?')} s, on "
        f"{machine.get('nproc', '?')} cores ({machine.get('cpu', '?')}), {machine.get('ram', '?')} "
        f"RAM, load average {machine.get('load_average', '?')} before and "
        f"{data.get('load_after', '?')} after; Python {machine.get('python', '?')}, {libraries}."
    )


def table(figures: list[dict[str, Any]]) -> nodes.table:
    """A docutils table: one row per figure, its baseline and their ratio beside it."""
    group = nodes.tgroup(cols=len(COLUMNS))
    for _, _, width in COLUMNS:
        group += nodes.colspec(colwidth=width)
    head = nodes.row()
    for _, title, _ in COLUMNS:
        head += nodes.entry("", nodes.paragraph(text=title))
    group += nodes.thead("", head)
    body = nodes.tbody()
    for figure in figures:
        row = nodes.row()
        for key, _, _ in COLUMNS:
            text = str(figure.get(key, "-" if key == "latency" else "n/a"))
            if key == "figure":
                text = f"{figure.get('benchmark', '?')}: {text}"
            row += nodes.entry("", nodes.paragraph(text=text))
        body += row
    group += body
    return nodes.table("", group, classes=["benchmark-report"])


class BenchmarkReport(SphinxDirective):
    """Render a benchmark results file: a sentence on the machine, then the figures' table."""

    optional_arguments = 1
    option_spec = {"only": directives.unchanged, "machine": directives.flag}  # noqa: RUF012

    def run(self) -> list[nodes.Node]:
        path = ROOT / (self.arguments[0] if self.arguments else DEFAULT)
        self.env.note_dependency(str(path))
        data = load(path)
        if "machine" in self.options:  # the sentence alone, for the top of a page
            return [nodes.paragraph(text=describe(data))]
        only = set(self.options.get("only", "").split())
        figures = [f for f in data["figures"] if not only or f.get("benchmark") in only]
        if not figures:
            raise self.error(f"{path} has no figures for {sorted(only) or 'any benchmark'}")
        result: list[nodes.Node] = [nodes.paragraph(text=describe(data)), table(figures)]
        notes = {k: v for k, v in data.get("notes", {}).items() if not only or k in only}
        if notes:
            items = nodes.bullet_list()
            for name, note in notes.items():
                items += nodes.list_item("", nodes.paragraph(text=f"{name}: {note}"))
            result.append(items)
        return result


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("benchmark-report", BenchmarkReport)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
