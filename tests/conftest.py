"""Shared test helpers: every integration test talks HTTP to the local Flameup server."""

from __future__ import annotations

from typing import Any

import pytest

from flameup_pandas.testing import FlameupServer


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
