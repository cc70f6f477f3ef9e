"""Fault soak: 20,000 rows through ``df.flameup.upsert`` while the local server misbehaves.

Every fault is on at once (5xx before and after storing, dropped connections before and after
storing, 200 maintenance pages in HTML, latency with jitter, 429 storms). Afterwards the
server's store must hold exactly the valid rows, each once, with the values sent, and every
input row must say what became of it. The faults are seeded, so a failure repeats. Each soak
runs once per documented shape of a person in the server's answers (``seed`` and
``overview``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import flameup_pandas  # noqa: F401  (registers df.flameup)
from flameup_pandas import RetryPolicy
from flameup_pandas.testing import PERSON_SHAPES, Faults, FlameupServer

pytestmark = pytest.mark.slow

ROWS = 20_000
INVALID = 200  # 1% of the rows fail our own validation and are never sent
REJECTED = 12  # pass our validation, but the server refuses them (422 naming each one)
FAST_RETRY = RetryPolicy(backoff_factor=0.01, backoff_max=0.2)
SOAK_FAULTS = Faults(
    error_rate=0.05,
    error_after_store_rate=0.05,
    drop_rate=0.025,
    drop_after_store_rate=0.025,
    maintenance_rate=0.02,
    latency=0.002,
    latency_jitter=0.01,
    storm_rate=0.01,
    storm_length=3,
    seed=20_000,
)
# The server's limit is an enterprise one, so that only the storms answer 429 (their headers
# carry this limit, which the client adopts) and the run stays well under a minute.
LIMIT_PER_MINUTE = 6_000


def people_frame(n: int, seed: int) -> pd.DataFrame:
    """``n`` distinct people with an email, a first name and two custom traits."""
    rng = np.random.default_rng(seed)
    numbers = np.arange(n)
    return pd.DataFrame(
        {
            "userId": [f"soak-{i:05d}" for i in numbers],
            "email": [f"person{i}@example.com" for i in numbers],
            "first_name": rng.choice(["Ada", "Grace", "Alan", "Edsger", "Barbara"], n),
            "plan": rng.choice(["free", "pro", "team"], n),
            "score": rng.integers(0, 10_000, n),
        }
    )


def spoil(df: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Make ``INVALID`` rows fail our validation and ``REJECTED`` rows fail only the server's.

    Returns the positions of each. Invalid rows: an implausible email, no identity at all, or
    a userId over 255 characters. Server-rejected rows: an email whose local part is longer
    than RFC 5321's 64 characters, which our validation leaves to the server (as
    email-validator does) and the local server refuses.
    """
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(df), INVALID + REJECTED, replace=False)
    invalid, rejected = np.sort(chosen[:INVALID]), np.sort(chosen[INVALID:])
    bad_email, no_identity, long_id = np.array_split(invalid, 3)
    df.loc[bad_email, "email"] = [f"not-an-email-{i}" for i in bad_email]
    df.loc[no_identity, ["userId", "email"]] = None
    df.loc[long_id, "userId"] = [f"{i}-" + "x" * 300 for i in long_id]
    df.loc[rejected, "email"] = [f"person{i}" + "x" * 60 + "@example.com" for i in rejected]
    return invalid, rejected


def stored_values(server: FlameupServer) -> pd.DataFrame:
    """What the server holds: external_id, email, first_name and the custom traits."""
    people = server.people()
    attributes = pd.DataFrame(people["attributes"].tolist(), index=people.index)
    return pd.concat([people[["external_id", "email", "first_name"]], attributes], axis=1)


def assert_store_holds(server: FlameupServer, sent: pd.DataFrame) -> pd.DataFrame:
    """The store holds exactly the people of ``sent``, each once, with the values sent."""
    stored = stored_values(server)
    assert stored["external_id"].is_unique
    assert set(stored["external_id"]) == set(sent["userId"])
    expected = (
        sent.rename(columns={"userId": "external_id"})
        .sort_values("external_id")
        .reset_index(drop=True)
    )
    actual = stored[expected.columns].sort_values("external_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
    return stored


def batch_requests(server: FlameupServer) -> list[Any]:
    return [r for r in server.requests if r.path.endswith("/people/batch")]


@pytest.mark.parametrize("shape", PERSON_SHAPES)
def test_soak_every_valid_row_lands_once_with_its_values_under_all_faults(shape):
    df = people_frame(ROWS, seed=1)
    invalid, rejected = spoil(df, seed=2)
    server = FlameupServer(rate_limit=LIMIT_PER_MINUTE, faults=SOAK_FAULTS, person_shape=shape)
    with server:
        result = df.flameup.upsert(
            api_key=server.api_key,
            base_url=server.base_url,
            rate_limit=LIMIT_PER_MINUTE,
            concurrency=4,
            retry=FAST_RETRY,
            progress=False,
        )
        summary = result.flameup.summary().to_dict()
        log = batch_requests(server)

        # Same rows, same order, and every one of them has a status.
        assert result.index.equals(df.index)
        assert result["flameup_status"].notna().all()
        status = result["flameup_status"]
        assert (status.iloc[invalid] == "invalid").all()
        assert result["flameup_error"].iloc[invalid].notna().all()
        assert (status.iloc[rejected] == "rejected").all()
        assert result["flameup_error"].iloc[rejected].str.contains("email").all()
        valid = np.ones(ROWS, dtype=bool)
        valid[invalid] = valid[rejected] = False
        # No row failed: under these faults retries are never spent.
        assert status[valid].isin(["created", "updated"]).all(), status.value_counts()
        assert result["flameup_id"][valid].notna().all()

        # The store holds exactly the valid rows, each once, with the values sent; nothing of
        # the invalid or rejected rows got in.
        stored = assert_store_holds(server, df[valid])
        assert result["flameup_id"][valid].is_unique
        ids = dict(zip(stored["external_id"], server.people()["id"], strict=True))
        assert (result["flameup_id"][valid] == df["userId"][valid].map(ids)).all()

    # Every fault actually happened, and was survived.
    faults_seen = {r.fault for r in log}
    assert {
        "error",
        "error_after_store",
        "drop",
        "drop_after_store",
        "maintenance",
        "storm",
    } <= faults_seen
    assert summary["retries"] > 0
    assert summary["rate_limited"] > 0
    assert summary["failed"] == 0
    # The run's counters agree with what the server saw.
    assert summary["requests"] == len(log)
    assert summary["rate_limited"] == sum(r.status == 429 for r in log)
    assert summary["elapsed_s"] < 60


@pytest.mark.parametrize("shape", PERSON_SHAPES)
def test_soak_when_retries_are_spent_failed_rows_say_why_and_the_rest_land(shape):
    """Half the requests fail before storing and one retry is allowed: some batches give up.

    One sender, so the seeded fault draws meet the batches in the same order on every run.
    """
    n = 3_000
    df = people_frame(n, seed=3)
    faults = Faults(error_rate=0.3, drop_rate=0.2, latency=0.001, seed=7)
    # Batches giving up in a row would open the breaker (tests/test_breaker.py); this test is
    # about each batch that gives up, so the run is told never to stop early.
    stingy = RetryPolicy(total=1, backoff_factor=0.01, backoff_max=0.05, outage_batches=None)
    with FlameupServer(rate_limit=None, faults=faults, person_shape=shape) as server:
        result = df.flameup.upsert(
            api_key=server.api_key,
            base_url=server.base_url,
            rate_limit=None,
            concurrency=1,
            retry=stingy,
            progress=False,
        )
        summary = result.flameup.summary().to_dict()
        status = result["flameup_status"]
        failed = (status == "failed").to_numpy()
        delivered = status.isin(["created", "updated"]).to_numpy()

        assert (failed | delivered).all(), status.value_counts()
        assert failed.any() and delivered.any()
        # Whole batches of 100 gave up, each after its two attempts, and say so.
        assert failed.sum() % 100 == 0
        errors = result["flameup_error"][failed]
        assert errors.str.contains("gave up after 2 attempts").all(), errors.head()
        assert result["flameup_id"][failed].isna().all()
        # These faults all strike before storing: a failed row is not in the store, and every
        # delivered row is, once, with its values.
        assert_store_holds(server, df[delivered])
        assert summary["requests"] == len(batch_requests(server)) <= 2 * (n // 100)
    assert summary["failed"] == failed.sum()
    assert summary["elapsed_s"] < 30
