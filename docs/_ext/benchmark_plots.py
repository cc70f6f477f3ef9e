"""The ``benchmark-plot`` directive: the performance page's plots, drawn at build time.

Each plot is drawn with matplotlib from the raw figures of ``benchmarks/results.json`` (the
file ``python -m benchmarks`` writes, the same the figures' table is rendered from) and put
in the page as inline SVG, so a new results file redraws every plot on the next build and no
image is kept in the repository. A figure the file lacks is a build warning that names it.

    ```{benchmark-plot} resync
    ```

Plots: ``resync`` (the nightly resync against its baselines), ``throughput`` (rows a second
of each path against the hand-written baseline), ``memory`` (peak memory against holding the
table with ``pd.read_parquet``), ``pacing`` (when each request of a 5,000-row upsert went,
under budget pacing and under even pacing).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from benchmark_report import DEFAULT, ROOT, load
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

OURS, BASE = "#d9480f", "#868e96"  # flameup orange; the baseline in grey

RESYNC = (
    ("pacing", "p2_seconds", "p2_even_seconds", "budget pacing | even pacing"),
    ("storage", "s3_resync_s", "local_resync_s", "source and state on S3 | local files"),
    ("plan", "guarded_resync_seconds", "resync_seconds", "max_changes set | not set"),
)
THROUGHPUT = (
    ("conversion", "frame_rows_per_second", "df.flameup.upsert(dry_run=True)"),
    ("conversion", "file_rows_per_second", "upsert_file, dry run"),
    ("conversion", "file_state_rows_per_second", "upsert_file with a state, dry run"),
    ("arrow", "stream_rows_per_second", "upsert_arrow from DuckDB, dry run"),
    ("conversion", "planned_rows_per_second", "Spark executor planning"),
    ("conversion", "to_people_rows_per_second", "to_people()"),
    ("conversion", "baseline_rows_per_second", 'to_dict("records") + json.dumps'),
)
MEMORY = (
    ("memory", "stream_peak_mib", "read_parquet_peak_mib", "upsert_file, dry run ({rows:,} rows)"),
    ("memory", "send_peak_mib", "send_read_parquet_peak_mib", "upsert_file, sent ({send_rows:,})"),
    ("arrow", "stream_peak_mib", "df_peak_mib", "upsert_arrow from DuckDB ({rows:,})"),
    ("storage", "s3_stream_peak_mib", "read_parquet_peak_mib", "from S3 ({memory_rows:,})"),
)


class Missing(Exception):
    """A figure the results file does not hold."""


def value(results: dict[str, Any], benchmark: str, key: str) -> Any:
    found = results.get(benchmark, {}).get(key)
    if found is None:
        raise Missing(f"{benchmark}: {key}")
    return found


def resync(results: dict[str, Any], plt: Any) -> Any:
    rows = []
    for benchmark, ours, base, labels in RESYNC:
        try:
            rows.append(
                (
                    labels.split(" | "),
                    value(results, benchmark, ours),
                    value(results, benchmark, base),
                )
            )
        except Missing:
            continue
    if not rows:
        raise Missing("the resync figures (pacing p2, storage, plan)")
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(7, 1.3 * len(rows) + 0.6), squeeze=False, layout="constrained"
    )
    for ax, (labels, ours, base) in zip(axes[:, 0], rows, strict=True):
        ax.barh([1, 0], [ours, base], color=[OURS, BASE])
        ax.set_yticks([1, 0], labels)
        ax.bar_label(ax.containers[0], fmt="%.2f s", padding=3)
        ax.set_xlim(0, max(ours, base) * 1.25)
        ax.spines[["top", "right"]].set_visible(False)
    axes[-1, 0].set_xlabel("seconds (shorter is better)")
    return fig


def throughput(results: dict[str, Any], plt: Any) -> Any:
    bars = []
    for benchmark, key, label in THROUGHPUT:
        try:
            bars.append((label, value(results, benchmark, key)))
        except Missing:
            continue
    if not bars:
        raise Missing("conversion: rows_per_second")
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(bars) + 0.8), layout="constrained")
    ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:,.0f}k")
    labels, speeds = zip(*reversed(bars), strict=True)
    colors = [BASE if "json.dumps" in label else OURS for label in labels]
    ax.barh(labels, speeds, color=colors)
    ax.bar_label(ax.containers[0], labels=[f"{s:,.0f}" for s in speeds], padding=3)
    ax.set_xlim(0, max(speeds) * 1.2)
    ax.set_xlabel("rows a second (longer is better)")
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def memory(results: dict[str, Any], plt: Any) -> Any:
    rows = []
    for benchmark, ours, base, label in MEMORY:
        try:
            figures = results[benchmark]
            rows.append(
                (
                    label.format(**figures),
                    value(results, benchmark, ours),
                    value(results, benchmark, base),
                )
            )
        except (Missing, KeyError):
            continue
    if not rows:
        raise Missing("memory: stream_peak_mib")
    fig, ax = plt.subplots(figsize=(7, 0.75 * len(rows) + 1.1), layout="constrained")
    positions = range(len(rows))
    ours = [r[1] for r in rows]
    base = [r[2] for r in rows]
    ax.barh([p + 0.2 for p in positions], ours, height=0.4, color=OURS, label="streaming")
    ax.barh(
        [p - 0.2 for p in positions],
        base,
        height=0.4,
        color=BASE,
        label="pd.read_parquet (or .df())",
    )
    ax.set_yticks(list(positions), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.bar_label(ax.containers[0], fmt="%.0f MiB", padding=3)
    ax.bar_label(ax.containers[1], fmt="%.0f MiB", padding=3)
    ax.set_xlim(0, max(ours + base) * 1.25)
    ax.set_xlabel("peak memory, MiB (shorter is better)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def pacing(results: dict[str, Any], plt: Any) -> Any:
    ours = value(results, "pacing", "p1_times")
    even = value(results, "pacing", "p1_even_times")
    fig, ax = plt.subplots(figsize=(7, 3), layout="constrained")
    for times, color, label in (
        (ours, OURS, "budget pacing (the default)"),
        (even, BASE, "even pacing"),
    ):
        ax.step(sorted(times), range(1, len(times) + 1), where="post", color=color, label=label)
    ax.set_xlabel("seconds from the call (reading and encoding the frame included)")
    ax.set_ylabel("requests sent (100 people each)")
    ax.legend(loc="lower right", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


PLOTS: dict[str, Callable[[dict[str, Any], Any], Any]] = {
    "resync": resync,
    "throughput": throughput,
    "memory": memory,
    "pacing": pacing,
}


def svg(fig: Any, name: str) -> str:
    """The figure as SVG text: fonts as text, ids salted by plot (several share a page)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


class BenchmarkPlot(SphinxDirective):
    """One plot of the results file, inline, under a line saying what run it comes from."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        name = self.arguments[0]
        if name not in PLOTS:
            raise self.error(f"no plot {name!r}: one of {sorted(PLOTS)}")
        path = ROOT / DEFAULT
        self.env.note_dependency(str(path))
        data = load(path)
        try:
            fig = PLOTS[name](data.get("results", {}), plt)
        except Missing as missing:
            logger.warning(
                f"{path.name} has no {missing} for the {name} plot: rerun python -m benchmarks",
                location=self.get_location(),
            )
            return []
        try:
            drawn = svg(fig, name)
        finally:
            plt.close(fig)
        figure = nodes.container(classes=["benchmark-plot"])
        figure += nodes.raw("", drawn, format="html")
        return [figure]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("benchmark-plot", BenchmarkPlot)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
