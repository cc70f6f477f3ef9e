"""Shared test helpers: every integration test talks HTTP to the local Flameup server."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings

from flameup_pandas.testing import PERSON_SHAPES, FlameupServer

from .s3 import s3, s3_endpoint  # noqa: F401 - fixtures: one loopback S3 per session

# CI runs three suites side by side on two cores: an example that builds frames can take
# hundreds of milliseconds there, so hypothesis's per-example deadline would only flake.
settings.register_profile("flameup", deadline=None)
settings.load_profile("flameup")

# The README's test command runs the suite on pytest-xdist workers (--dist loadgroup). A
# module- or session-scoped fixture is built once per worker that runs a test using it: the
# tests sharing one that costs seconds or minutes go to one worker together, so it is built
# once (the docs site, a JVM, the release build, a kernel, a browser). Cheap ones (a local
# server, moto) are built on each worker, and their tests spread.
SHARED_FIXTURES = {
    "site": "docs-site",  # tests/test_docs.py: the Sphinx build, the browser on it
    "spark": "spark",  # tests/test_spark.py, test_paths_agree.py: a local[2] JVM
    "dist": "release",  # tests/test_release.py: python -m build
    "executed": "notebook",  # tests/test_notebook.py: a kernel runs the notebook
    "browser": "browser",  # tests/testing/test_ui_browser.py: headless Chromium
}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        group = next((g for name, g in SHARED_FIXTURES.items() if name in fixtures), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


both_shapes = pytest.mark.parametrize("flameup_person_shape", PERSON_SHAPES)
"""Run a test against a ``flameup_server`` answering in each documented person shape.

For the tests that read Flameup's answers (matching, created vs updated, ids, read-back);
the others stay on the default shape to keep the suite quick."""


def target(server: FlameupServer, **extra: Any) -> dict[str, Any]:
    """Keywords that point upsert() at ``server`` with pacing off and no progress bar."""
    return {
        "api_key": server.api_key,
        "base_url": server.base_url,
        "rate_limit": None,
        "progress": False,
        **extra,
    }


@pytest.fixture
def to_server(flameup_server: FlameupServer) -> dict[str, Any]:
    return target(flameup_server)
