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


def test_several_frames_at_once_with_one_key_share_one_budget(flameup_server_factory):
    """Three frames sent at once with one key, 12 requests a second allowed: one budget, with
    every request in flight counted against it, so nobody oversteps it (no 429), and the
    three runs together need two windows or more."""
    from concurrent.futures import ThreadPoolExecutor

    server = flameup_server_factory(rate_limit=12, rate_window=1.0)
    frames_ = [pd.DataFrame({"userId": [f"f{k}-{i}" for i in range(800)]}) for k in range(3)]

    def run(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.flameup.upsert(
            api_key=server.api_key, base_url=server.base_url, concurrency=4, progress=False
        )

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(run, frames_))
    assert all((r["flameup_status"] == "created").all() for r in results)
    assert server.request_count(status=429) == 0
    assert server.request_count() == 24
    starts = sorted(r.started_at for r in server.requests)
    assert starts[-1] - starts[0] >= 1.0  # 24 requests cannot fit in one window of 12
    assert flameup_pandas  # the accessor came from this import
