"""Property-based: odd frames never crash upsert, and every row ends with a status."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flameup_pandas
from flameup_pandas import STATUSES, MappingError
from flameup_pandas.testing import FlameupServer

cells = st.one_of(
    st.none(),
    st.just(np.nan),
    st.just(""),
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.emails(),
    st.binary(max_size=4),
)
identity = st.one_of(st.none(), st.just(""), st.text(max_size=300), st.integers(), st.emails())


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(min_value=0, max_value=25))
    data = {
        "userId": draw(st.lists(identity, min_size=n, max_size=n)),
        "email": draw(
            st.lists(
                st.one_of(st.emails(), st.text(max_size=20), st.none()), min_size=n, max_size=n
            )
        ),
    }
    for name in draw(
        st.lists(
            st.sampled_from(["plan", "score", "timezone", "locale", "ünï"]), unique=True, max_size=3
        )
    ):
        data[name] = draw(st.lists(cells, min_size=n, max_size=n))
    return pd.DataFrame(data, dtype=object)


@pytest.fixture(scope="module")
def server() -> Iterator[FlameupServer]:
    with FlameupServer(rate_limit=None) as running:
        yield running


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=frames())
def test_upsert_gives_every_row_a_status_and_never_crashes(server, df):
    try:
        result = df.flameup.upsert(
            api_key=server.api_key, base_url=server.base_url, rate_limit=None, progress=False
        )
    except MappingError:
        return  # a clear error before anything is sent is a fine answer for a bad frame
    assert len(result) == len(df)
    assert result["flameup_status"].isin(STATUSES).all()
    settled = result["flameup_status"].isin(["created", "updated"])
    assert result.loc[~settled, "flameup_error"].notna().all()
    assert result.loc[settled, "flameup_id"].notna().all()
    # nothing failed for lack of delivery: the server is healthy
    assert not (result["flameup_status"] == "failed").any()


def test_several_frames_at_once_with_one_key_share_one_budget(flameup_server):
    """Three frames sent at once at 600 requests a minute: together, not each, at that rate."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    server = flameup_server
    frames_ = [pd.DataFrame({"userId": [f"f{k}-{i}" for i in range(800)]}) for k in range(3)]

    def run(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.flameup.upsert(
            api_key=server.api_key,
            base_url=server.base_url,
            rate_limit=600,
            concurrency=2,
            progress=False,
        )

    started = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(run, frames_))
    elapsed = time.monotonic() - started
    assert all((r["flameup_status"] == "created").all() for r in results)
    assert server.request_count() == 24
    # 24 requests spaced 0.1 s apart need at least 2.3 s; three separate budgets would take 0.8 s
    assert elapsed >= 2.2
    assert flameup_pandas  # the accessor came from this import
