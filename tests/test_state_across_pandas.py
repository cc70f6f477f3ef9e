"""A sync state written under one pandas major is read under the other with no resend.

``tests/data/state-pandas2.parquet`` was written by a run under pandas 2.2 (numpy 1.26) and
``state-pandas3.parquet`` by one under pandas 3; CI runs this file on both, so each fixture is
read by the other major. Both hold the people of :func:`people_frame`, with missing values
in every kind of column. To write them again (only if the payload rules change on purpose):
``python -m tests.test_state_across_pandas`` under each pandas.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import flameup_pandas
from flameup_pandas.testing import FlameupServer
from tests.conftest import target

DATA = Path(__file__).parent / "data"
FIXTURES = ("state-pandas2.parquet", "state-pandas3.parquet")


def people_frame() -> pd.DataFrame:
    """Six people; missing identities and traits as None, NaN, pd.NA and NaT, in many dtypes."""
    ids = ["u1", None, "u3", np.nan, " u5 ", pd.NA]
    emails = [None, "b@example.com", "c@example.com", "d@example.com", pd.NA, "f@example.com"]
    return pd.DataFrame(
        {
            "user_id": pd.Series(ids, dtype=object),
            "email": pd.Series(emails, dtype="string[pyarrow]"),
            "first_name": pd.Series(["Ada", None, " Cy ", pd.NaT, "Eve", np.nan], dtype=object),
            "plan": pd.Series(["pro", None, "free", "pro", np.nan, "free"], dtype="category"),
            "city": pd.Series(["Oslo", "Lima", None, "Pune", "Rome", np.nan], dtype="str"),
            "score": [1.5, np.nan, 3.0, None, 5.0, 6.25],
            "seats": pd.array([1, None, 3, 4, None, 6], dtype="Int64"),
            "signed_up": pd.to_datetime(
                ["2024-01-02T03:04:05Z", None, "2024-03-04T05:06:07.25Z", None, "2024-05-06", None],
                format="ISO8601",
                utc=True,
            ),
        }
    )


@pytest.mark.parametrize("fixture", FIXTURES)
def test_a_state_from_either_pandas_major_sends_no_one_again(tmp_path, fixture):
    state = tmp_path / "state.parquet"
    shutil.copyfile(DATA / fixture, state)
    with FlameupServer(rate_limit=None) as server:
        result = people_frame().flameup.upsert(state=state, **target(server))
        assert server.request_count(path_suffix="/people/batch") == 0
    assert result["flameup_status"].tolist() == ["skipped"] * 6
    assert result["flameup_error"].tolist() == ["unchanged since last sync"] * 6
    assert result["flameup_id"].notna().all()


@pytest.mark.parametrize("fixture", FIXTURES)
def test_a_file_run_reads_either_state_with_no_resend(tmp_path, fixture):
    """The file path reads strings through arrow, which pandas 2 and 3 map to different dtypes."""
    source = tmp_path / "people.parquet"
    people_frame().to_parquet(source)
    state = tmp_path / "state.parquet"
    shutil.copyfile(DATA / fixture, state)
    with FlameupServer(rate_limit=None) as server:
        summary = flameup_pandas.upsert_file(source, state=state, **target(server))
        assert server.request_count(path_suffix="/people/batch") == 0
    assert summary.counts["skipped"] == 6


def write_fixture() -> Path:
    """Run people_frame() into a fresh state under this pandas; the file it wrote."""
    major = pd.__version__.split(".", 1)[0]
    path = DATA / f"state-pandas{major}.parquet"
    path.unlink(missing_ok=True)
    with FlameupServer(rate_limit=None) as server:
        result = people_frame().flameup.upsert(state=path, **target(server))
    assert result["flameup_status"].tolist() == ["created"] * 6, result
    path.with_name(path.name + ".lock").unlink()
    return path


if __name__ == "__main__":
    sys.stdout.write(f"wrote {write_fixture()} under pandas {pd.__version__}\n")
