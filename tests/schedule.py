"""How ``pytest -n`` shares the suite among its workers (the README's test command).

xdist's ``--dist loadfile`` keeps each file on one worker, so a module- or session-scoped
fixture (a Spark JVM, the docs site, the release build, a browser) is built once, as without
``-n``. Two things made that slow: a few tests that each start their own process (every docs
page's examples, Spark Connect) were queued behind each other on one worker, and the queue
was ordered by the number of tests in a file, so the files that take longest (few, long
tests) started last and the run waited for them at the end.

Here a test named in ``ALONE`` is a unit of its own (it shares no fixture worth keeping), a
file in ``SPLIT`` is shared among that many units (each builds its own fixtures: two Spark
JVMs cost less than one worker running every Spark test after the others finished), a test
in ``JOIN`` runs in the unit named (to share a session-scoped fixture: a Spark session), and
the units start longest first, by ``SECONDS``: the seconds each took in a run of the whole
suite with ``-n 4`` on two cores (``--durations=0``; update them when a file's time moves by
a minute). A unit not listed counts as one second a test.
"""

from __future__ import annotations

import zlib
from typing import Any

ALONE = {
    "tests/test_docs.py::test_the_examples_of_each_page_run",
    "tests/test_paths_agree.py::test_spark_connect_sends_what_every_other_path_sends",
}

SPLIT = {"tests/test_spark.py": 2}

JOIN = {
    "tests/test_paths_agree.py::test_spark_sends_what_every_other_path_sends": (
        "tests/test_spark.py#1"
    ),
}
"""Tests that run in another unit, to share its fixtures (the worker's Spark session)."""

SECONDS = {
    "tests/test_spark.py#0": 319,
    "tests/test_spark.py#1": 330,  # with test_paths_agree.py's Spark test
    "tests/test_paths_agree.py": 146,
    "tests/test_breaker.py": 150,
    "tests/test_release.py": 110,
    "tests/test_docs.py::test_the_examples_of_each_page_run[guides/spark-and-polars.md]": 104,
    "tests/test_docs.py": 102,
    "tests/test_storage.py": 94,
    "tests/test_paths_agree.py::test_spark_connect_sends_what_every_other_path_sends": 83,
    "tests/test_interrupt.py": 59,
    "tests/test_budget.py": 49,
}


def unit(nodeid: str) -> str:
    """The unit of work ``nodeid`` belongs to: its file, itself when it is in ``ALONE``, or
    one of its file's ``SPLIT`` units (by a hash of the test's name, the same in every run)."""
    file, _, rest = nodeid.partition("::")
    test = rest.split("[", 1)[0]
    if f"{file}::{test}" in JOIN:
        return JOIN[f"{file}::{test}"]
    if f"{file}::{test}" in ALONE:
        return nodeid
    if file in SPLIT:
        return f"{file}#{zlib.crc32(test.encode()) % SPLIT[file]}"
    return file


def cost(nodeid_unit: str, tests: int) -> float:
    return SECONDS.get(nodeid_unit, float(tests))


def make_scheduler(config: Any, log: Any) -> Any:
    """With ``--dist loadfile`` (pyproject.toml's), a scheduler whose units are ``unit()`` and
    start longest first; with another ``--dist``, None (xdist's own)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LongestFirst(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return unit(nodeid)

        def schedule(self) -> None:
            if self.collection is not None or not self._check_nodes_have_same_collection():
                super().schedule()  # later calls reschedule; a mismatch is reported there
                return
            self.collection = list(next(iter(self.registered_collections.values())))
            if not self.collection:
                return
            units: dict[str, dict[str, bool]] = {}
            for nodeid in self.collection:
                units.setdefault(unit(nodeid), {})[nodeid] = False
            for name in sorted(units, key=lambda u: -cost(u, len(units[u]))):
                self.workqueue[name] = units[name]
            for node in self.nodes[len(self.workqueue) :]:  # more workers than units
                self.assigned_work.pop(node)
                node.shutdown()
            for node in self.nodes:
                if self.workqueue and not node.shutting_down:
                    self._assign_work_unit(node)
            for node in self.nodes:
                self._reschedule(node)

    return LongestFirst(config, log)
