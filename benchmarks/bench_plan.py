"""Plans and field-level change detection: state size and speed, against a dry run, same run.

A customer table (``bench_sync``'s) is written to parquet, and its sync state is made as a
full sync would leave it (content hashes, and per-field hashes, for every person) without
sending anyone: sending a million people is ``bench_sync``'s job. Then the ``plan`` of 1% of
the rows is changed and the file is planned against that state three ways, each timed:

- today's dry run with a state (``upsert_file(dry_run=True, state=...)``): the baseline;
- a plan (``plan_file(state=...)``) against a state with field hashes;
- a plan against the same state written in the old form (no field hashes).

Prints the state's size in both forms and the three times. With ``--guard``, it also times
a nightly resync (1% changed) into a local Flameup server (rate limit off, so the sending is
as fast as it can be and the guard's share is the largest it can be) with and without
``max_changes``, from copies of the same state::

    python -m benchmarks.bench_plan            # 1,000,000 rows
    python -m benchmarks.bench_plan --quick    # 50,000 rows
    python -m benchmarks.bench_plan --quick --guard

``main(quick)`` returns the figures as a dict.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.bench_memory import ROW_GROUP
from benchmarks.bench_sync import CHANGED_FRACTION, change_plans, customer_table
from flameup_pandas import plan_file, upsert_file
from flameup_pandas._run.plan import Rules
from flameup_pandas._run.sources import open_rows
from flameup_pandas._run.state import STATE_SCHEMA
from flameup_pandas.testing import FlameupServer

QUICK_ROWS = 50_000  # --quick (CI checks the report works, never its timings): well under a minute


def synced_state(path: Path, values: bool = False) -> pa.Table:
    """The state a full sync of the file at ``path`` leaves: every person, as sent (ids are
    UUIDs, as Flameup's are); with ``values``, as a sync with ``state_values=True`` leaves
    it (each person's JSON kept too)."""
    parts = []
    rules = Rules()
    for frame in open_rows(path).frames():
        plan = rules.plan(frame)
        sent = plan.pending()
        fields = plan.payloads.field_hashes(sent)
        assert fields is not None
        n = len(sent)
        texts = (
            plan.payloads.hashed.take(pa.array(sent)).cast(pa.large_string())
            if values
            else pa.nulls(n, pa.large_string())
        )
        parts.append(
            pa.table(
                {
                    "identity": plan.key_array.take(pa.array(sent)).cast(pa.string()),
                    "identity_hash": pa.array(plan.identity_hashes[sent]),
                    "content_hash": pa.array(plan.payloads.content_hashes(sent)),
                    "flameup_id": pa.array([str(uuid.uuid4()) for _ in range(n)], pa.string()),
                    "synced_at": pa.array([datetime.now(UTC)] * n, STATE_SCHEMA[4].type),
                    "fields": fields.lists(),
                    "sent": texts,
                    "source_hash": pa.nulls(n, pa.int64()),  # as a state written before them
                },
                schema=STATE_SCHEMA,
            )
        )
    return pa.concat_tables(parts)


def _timed(run: Any, times: int = 2) -> tuple[float, Any]:
    """The best of ``times`` runs, and what the run returned."""
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - started)
    return round(best, 2), out


def main(quick: bool = False) -> dict[str, Any]:
    """Every figure of the report: the plan and the state's size, and the guard's cost."""
    return {**plan_figures(quick), **guard_overhead(quick)}


def plan_figures(quick: bool = False) -> dict[str, Any]:
    """A plan against a state, against today's dry run; the state's size in each form."""
    n_rows = QUICK_ROWS if quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        table = customer_table(n_rows)
        pq.write_table(table, folder / "v1.parquet", row_group_size=ROW_GROUP)
        state = synced_state(folder / "v1.parquet")
        new_form, old_form = folder / "new.state.parquet", folder / "old.state.parquet"
        pq.write_table(state, new_form, compression="zstd")
        pq.write_table(state.drop_columns(["fields", "sent"]), old_form, compression="zstd")
        with_values = folder / "values.state.parquet"
        pq.write_table(
            synced_state(folder / "v1.parquet", values=True), with_values, compression="zstd"
        )
        changed, n_changed = change_plans(table, CHANGED_FRACTION)
        pq.write_table(changed, folder / "v2.parquet", row_group_size=ROW_GROUP)
        source = folder / "v2.parquet"
        dry_seconds, summary = _timed(
            lambda: upsert_file(source, state=old_form, dry_run=True, progress=False)
        )
        plan_seconds, planned = _timed(lambda: plan_file(source, state=new_form, progress=False))
        old_seconds, planned_old = _timed(lambda: plan_file(source, state=old_form, progress=False))
        sizes = new_form.stat().st_size, old_form.stat().st_size, with_values.stat().st_size
        values_seconds, planned_values = _timed(
            lambda: plan_file(source, state=with_values, state_values=True, progress=False)
        )
    updates = planned["flameup_action"] == "update"
    return {
        "rows": n_rows,
        "changed_rows": n_changed,
        "dry_run_seconds": dry_seconds,
        "dry_run_would_send": summary.extra["would_send"],
        "plan_seconds": plan_seconds,
        "plan_updates": int(updates.sum()),
        "plan_fields_known": bool(
            all(c == ["plan"] for c in planned.loc[updates, "flameup_changes"])
        ),
        "plan_old_state_seconds": old_seconds,
        "plan_old_state_unknown": int(
            planned_old.loc[planned_old["flameup_action"] == "update", "flameup_changes"]
            .isna()
            .sum()
        ),
        "plan_over_dry_run": round(plan_seconds / max(dry_seconds, 1e-9), 2),
        "state_bytes_with_fields": sizes[0],
        "state_bytes_without_fields": sizes[1],
        "state_ratio": round(sizes[0] / sizes[1], 2),
        "state_mib_with_fields": round(sizes[0] / 2**20, 1),
        "state_mib_without_fields": round(sizes[1] / 2**20, 1),
        "state_mib_with_values": round(sizes[2] / 2**20, 1),
        "state_values_ratio": round(sizes[2] / sizes[1], 2),
        "plan_values_seconds": values_seconds,
        "plan_values_over_dry_run": round(values_seconds / max(dry_seconds, 1e-9), 2),
        "plan_values_known": bool(
            planned_values.loc[planned_values["flameup_action"] == "update", "flameup_before"]
            .notna()
            .all()
        ),
        "fields_per_person": round(
            float(np.mean([len(x) for x in state["fields"].to_pylist()[:10_000]])), 1
        ),
    }


def guard_overhead(quick: bool = False, rounds: int = 3) -> dict[str, Any]:
    """A resync's wall time and CPU time with and without ``max_changes``, from copies of one
    state (the baseline is the same resync without the guard, in the same run; the runs
    alternate and the best of ``rounds`` counts). CPU time is the process's (the local
    server's thread included): what the guard costs, whatever else the machine is running."""
    n_rows = QUICK_ROWS if quick else 1_000_000
    table = customer_table(n_rows)
    changed, _ = change_plans(table, CHANGED_FRACTION)
    with (
        tempfile.TemporaryDirectory() as tmp,
        FlameupServer(rate_limit=1_000_000, db=Path(tmp) / "flameup.db") as server,
    ):
        folder = Path(tmp)
        target = {"api_key": server.api_key, "base_url": server.base_url, "progress": False}
        pq.write_table(table, folder / "v1.parquet", row_group_size=ROW_GROUP)
        pq.write_table(changed, folder / "v2.parquet", row_group_size=ROW_GROUP)
        upsert_file(folder / "v1.parquet", state=folder / "state.parquet", **target)
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for name, extra in (("plain", {}), ("guarded", {"max_changes": 0.05})) * rounds:
            state = folder / f"{name}.state.parquet"
            shutil.copy(folder / "state.parquet", state)
            started, used = time.perf_counter(), time.process_time()
            upsert_file(folder / "v2.parquet", state=state, **target, **extra)  # type: ignore[arg-type]
            wall[name] = min(wall.get(name, float("inf")), time.perf_counter() - started)
            cpu[name] = min(cpu.get(name, float("inf")), time.process_time() - used)
    return {
        "guard_rows": n_rows,
        "resync_seconds": round(wall["plain"], 2),
        "guarded_resync_seconds": round(wall["guarded"], 2),
        "guard_over_resync": round(wall["guarded"] / wall["plain"], 3),
        "resync_cpu_seconds": round(cpu["plain"], 2),
        "guarded_resync_cpu_seconds": round(cpu["guarded"], 2),
        "guard_cpu_over_resync": round(cpu["guarded"] / cpu["plain"], 3),
    }


def _report(f: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"{f['rows']:,} rows, {f['changed_rows']:,} changed (the plan trait)",
            f"dry run with a state (baseline):      {f['dry_run_seconds']:>6} s, would send "
            f"{f['dry_run_would_send']:,}",
            f"plan, state with field hashes:        {f['plan_seconds']:>6} s "
            f"({f['plan_over_dry_run']}x the dry run), {f['plan_updates']:,} updates, "
            f"changed fields known: {f['plan_fields_known']}",
            f"plan, state in the old form:          {f['plan_old_state_seconds']:>6} s, "
            f"{f['plan_old_state_unknown']:,} updates with changes unknown",
            f"state file: {f['state_bytes_with_fields'] / 2**20:.1f} MiB with field hashes "
            f"({f['fields_per_person']} fields a person), "
            f"{f['state_bytes_without_fields'] / 2**20:.1f} MiB without "
            f"({f['state_ratio']}x); {f['state_mib_with_values']} MiB with values kept "
            f"({f['state_values_ratio']}x)",
            f"plan with before -> after (state_values=True): {f['plan_values_seconds']} s "
            f"({f['plan_values_over_dry_run']}x the dry run), values known for every update: "
            f"{f['plan_values_known']}",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 rows instead of 1,000,000")
    parser.add_argument("--guard", action="store_true", help="time max_changes on a resync")
    args = parser.parse_args()
    if args.guard:
        g = guard_overhead(quick=args.quick)
        print(
            f"resync, 1% changed, {g['guard_rows']:,} rows, local server: "
            f"{g['resync_seconds']} s; with max_changes: {g['guarded_resync_seconds']} s "
            f"({g['guard_over_resync']}x); CPU {g['resync_cpu_seconds']} s and "
            f"{g['guarded_resync_cpu_seconds']} s ({g['guard_cpu_over_resync']}x)"
        )
    else:
        print(_report(plan_figures(quick=args.quick)))
