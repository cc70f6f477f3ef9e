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
