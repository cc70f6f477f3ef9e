"""Sources, the sync state and the results file on object storage: a real S3 API (moto's
server) on loopback, and fsspec's memory filesystem for the same code path GCS and Azure take.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

# The test extra installs moto and s3fs: a missing one is a failure here, never a skip.
import fsspec
import moto  # noqa: F401
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from flameup_pandas import ConfigurationError, StateError, unlock_state, upsert, upsert_file
from flameup_pandas._people.identity import identity_hashes
from flameup_pandas._run.state import SyncState
from flameup_pandas._send.delivery import PersonOutcome
from flameup_pandas._storage import (
    JournalObjects,
    Lease,
    LockedError,
    Store,
    StoreRetry,
    resolve,
)
from flameup_pandas.cli import main
from flameup_pandas.testing import FlameupServer

from .conftest import target
from .test_upsert import customers

QUICK = StoreRetry(attempts=3, backoff=0.05, backoff_max=0.2, deadline=5)


# -- locations ---------------------------------------------------------------------------


def test_an_unknown_scheme_is_refused_naming_the_supported_ones_and_the_extras():
    with pytest.raises(ConfigurationError, match=r"s3://, gs://, az://.*flameup-pandas\[s3\]"):
        resolve("ftp://host/state.parquet")
    with pytest.raises(ConfigurationError, match="not a local path or a supported URI"):
        resolve("s3:/bucket/state.parquet")  # what Path("s3://bucket/...") would have made


def test_file_uris_and_plain_paths_are_local(tmp_path):
    assert resolve(f"file://{tmp_path}/s.parquet").local_path == tmp_path / "s.parquet"
    assert resolve(tmp_path / "s.parquet").local


def test_a_uri_on_another_filesystem_than_the_one_given_is_refused():
    memory = fsspec.filesystem("memory")
    with pytest.raises(ConfigurationError, match="not on the filesystem given"):
        resolve("s3://bucket/state.parquet", memory)


def test_no_local_directory_is_made_from_a_uri(s3, flameup_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = s3.uri("people.state.parquet")
    customers(30).flameup.upsert(state=state, **target(flameup_server))
    assert sorted(os.listdir(tmp_path)) == []
    assert len(s3.read_parquet("people.state.parquet")) == 30


# -- sources, state and results on S3 ------------------------------------------------------


def test_file_state_and_results_on_s3_then_a_rerun_sends_nothing(s3, flameup_server):
    source = s3.put_frame(customers(450), "in/customers.parquet")
    keywords = {
        "state": s3.uri("sync/state.parquet"),
        "results": s3.uri("sync/results.parquet"),
        **target(flameup_server),
    }
    first = upsert_file(source, **keywords)
    assert first.counts["created"] == 450
    results = s3.read_parquet("sync/results.parquet")
    assert sorted(results["row"]) == list(range(450))
    assert len(s3.read_parquet("sync/state.parquet")) == 450
    assert not [k for k in s3.keys("sync/") if ".journal" in k or ".lock" in k]

    flameup_server.reset_requests()
    s3.wire.reset()
    second = upsert_file(source, **keywords)
    assert second.counts["skipped"] == 450
    assert flameup_server.request_count() == 0
    # nothing to send: the state is read once, and only the lease is written (and released)
    assert s3.wire.count("GET", "sync/state.parquet") == 1
    assert (
        s3.wire.count("PUT", "sync/state.parquet?")
        + s3.wire.count("PUT", "sync/state.parquet HTTP")
        == 0
    )
    assert s3.wire.count("PUT", ".journal") == 0
    assert s3.wire.count("PUT", "state.parquet.lock/") == 1


def test_a_run_with_nothing_to_send_reads_the_state_once_and_writes_only_its_lease(
    s3, flameup_server
):
    """The store's requests of a run with nothing to send are a constant: the same for 450
    rows as for 3,000; one read of the state; the only writes are the lease taken and
    released (no state, no journal object)."""
    asked = []
    for n in (450, 3000):
        source = s3.put_frame(customers(n), f"in/c{n}.parquet")
        keywords = {"state": s3.uri(f"s{n}/state.parquet"), **target(flameup_server)}
        upsert_file(source, **keywords)
        s3.wire.reset()
        assert upsert_file(source, **keywords).counts["skipped"] == n
        store = [(m, p) for m, p in s3.wire.requests if "/in/" not in p]
        reads = [p for m, p in store if m == "GET" and "list-type=" not in p]
        assert reads == [f"/{s3.bucket}/s{n}/state.parquet"]
        writes = [(m, p) for m, p in store if m in ("PUT", "POST", "DELETE")]
        assert [m for m, _ in writes] == ["PUT", "POST"], writes
        assert f"/s{n}/state.parquet.lock/" in writes[0][1]  # the lease, created
        assert writes[1][1].endswith("?delete")  # and released
        asked.append(sorted(m for m, _ in store))
    assert asked[0] == asked[1]


def test_storage_options_on_the_command_line_open_every_uri_and_are_never_shown(
    s3, flameup_server, monkeypatch, capsys
):
    """The environment points nowhere and holds no keys: --storage-option gives the endpoint
    and the keys, and the source, state and results are on S3 (upsert, validate, unlock
    alike); the secret is never printed, not even in an error."""
    source = s3.put_frame(customers(40), "cli/c.parquet")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    s3fs.S3FileSystem.clear_instance_cache()  # no filesystem made from the fixture's variables
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)
    secret = "s3cr3t-never-shown"
    options = [f"endpoint_url={s3.url}", "key=cli-key", f"secret={secret}", "use_ssl=false"]
    given = [arg for pair in options for arg in ("--storage-option", pair)]
    state, results = s3.uri("cli/state.parquet"), s3.uri("cli/results.parquet")
    run = ["upsert", source, "--state", state, "--results", results, "--no-progress", *given]
    assert main(run) == 0
    fs = s3fs.S3FileSystem(endpoint_url=s3.url, key="cli-key", secret=secret)
    assert pq.read_table(fs.open(f"{s3.bucket}/cli/results.parquet")).num_rows == 40
    assert pq.read_table(fs.open(f"{s3.bucket}/cli/state.parquet")).num_rows == 40
    flameup_server.reset_requests()
    assert main(run) == 0
    assert flameup_server.request_count() == 0
    assert main(["validate", source, *given]) == 0
    assert (
        main(["plan", source, "--state", state, "--out", s3.uri("cli/plan.parquet"), *given]) == 0
    )
    assert pq.read_table(fs.open(f"{s3.bucket}/cli/plan.parquet")).num_rows == 40
    assert main(["unlock", state, *given]) == 0
    assert main(["upsert", s3.uri("cli/none.parquet"), "--no-progress", *given]) == 2
    out, err = capsys.readouterr()
    assert "was not locked" in out
    assert f"no such file or directory: {s3.uri('cli/none.parquet')}" in err
    assert secret not in out + err


def test_storage_options_and_a_filesystem_are_one_or_the_other(s3):
    with pytest.raises(ConfigurationError, match="not both"):
        upsert_file(
            s3.uri("x.parquet"),
            filesystem=s3.fs,
            storage_options={"anon": True},
            dry_run=True,
            progress=False,
        )


def test_requests_to_the_store_grow_with_journal_flushes_not_rows(s3, flameup_server):
    """A run of 30 batches, journal flushed every 10: 3 journal objects written, read back once,
    deleted in one request; the state written once."""
    source = s3.put_frame(customers(3000), "in/c.parquet")
    state = s3.uri("s/state.parquet")
    with SyncState.open(state, flush_batches=10, flush_seconds=60) as sync:
        sync.record_outcomes(["u:x"], np.array([1]), [PersonOutcome("created", "id-x")])
    s3.wire.reset()
    summary = upsert_file(source, state=state, **target(flameup_server))
    assert summary.counts["created"] == 3000
    journal_puts = s3.wire.count("PUT", "state.parquet.journal/")
    assert 1 <= journal_puts <= 30 // 20 + 2  # flushed by count (20) or time, plus the last
    assert s3.wire.count("PUT", "/s/state.parquet") >= 1
    state = [(m, p) for m, p in s3.wire.requests if "/in/" not in p]
    # lease (list, create, check, release), state (read, write), journal (list, flushes, delete)
    assert len(state) <= 14 + journal_puts, "\n".join(f"{m} {p}" for m, p in state)


def test_a_csv_and_a_hive_partitioned_folder_are_read_from_s3(s3, flameup_server):
    frame = customers(40)
    frame["user_id"] = [f"00{i}" for i in range(40)]
    with s3.fs.open(f"{s3.bucket}/in/c.csv", "w") as handle:
        frame.to_csv(handle, index=False)
    for plan, part in frame.groupby("plan"):
        s3.put_frame(part.drop(columns="plan"), f"in/hive/plan={plan}/part.parquet")
    csv_run = upsert_file(s3.uri("in/c.csv"), dry_run=True, progress=False)
    assert csv_run.extra["would_send"] == 40
    assert {p["userId"] for p in csv_run.sample} <= {f"00{i}" for i in range(40)}
    hive_run = upsert_file(s3.uri("in/hive"), dry_run=True, progress=False)
    assert hive_run.extra["would_send"] == 40
    assert all("plan" in p["traits"] for p in hive_run.sample)


def test_a_missing_object_is_a_configuration_error_naming_the_uri(s3):
    with pytest.raises(ConfigurationError, match=f"no such file or directory: s3://{s3.bucket}"):
        upsert_file(s3.uri("nothing.parquet"), dry_run=True, progress=False)


def test_state_written_today_on_a_disk_reads_the_same_from_s3(s3, flameup_server, tmp_path):
    local = tmp_path / "state.parquet"
    customers(25).flameup.upsert(state=local, **target(flameup_server))
    s3.fs.put_file(str(local), f"{s3.bucket}/copied/state.parquet")
    flameup_server.reset_requests()
    again = customers(25).flameup.upsert(
        state=s3.uri("copied/state.parquet"), **target(flameup_server)
    )
    assert (again["flameup_status"] == "skipped").all()
    assert flameup_server.request_count() == 0


# -- the lock ------------------------------------------------------------------------------


def test_two_runs_on_one_state_the_second_is_told_who_holds_it(s3):
    state = s3.uri("locked/state.parquet")
    with SyncState.open(state), pytest.raises(StateError, match=r"in use by another run: .* pid"):
        SyncState.open(state)
    with SyncState.open(state):  # released on close
        pass


def test_of_runs_racing_for_the_lock_exactly_one_wins(s3):
    store = Store(s3.fs)
    folder = f"{s3.bucket}/race/state.parquet.lock"
    won: list[Lease] = []
    lost: list[Exception] = []
    start = threading.Barrier(6)

    def contend() -> None:
        start.wait()
        try:
            won.append(Lease.take(store, folder, "race", seconds=30))
        except LockedError as exc:
            lost.append(exc)

    threads = [threading.Thread(target=contend) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(won) == 1 and len(lost) == 5
    won[0].release()


def test_a_dead_runs_lease_expires_and_the_next_run_takes_over(s3):
    state = s3.uri("dead/state.parquet")
    store = Store(s3.fs)
    # 3 s: on a loaded machine (CI runs three suites on two cores) the take and the open below
    # took 2 s, past a shorter lease; the sleep ends when the lease's own record says it does
    # (it is written once the take has listed the folder: a clock started before the take
    # ended early in a loaded CI run)
    dead = Lease.take(store, f"{s3.bucket}/dead/state.parquet.lock", state, seconds=3.0)
    with pytest.raises(LockedError, match="lease until"):
        SyncState.open(state)
    expires = datetime.fromisoformat(dead.record["expires"])
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    with SyncState.open(state), pytest.raises(LockedError, match="taken over"):
        dead.check()  # the dead run, were it to wake, writes nothing more


def test_unlock_breaks_a_stale_lock_at_once(s3):
    state = s3.uri("stale/state.parquet")
    stale = Lease.take(Store(s3.fs), f"{s3.bucket}/stale/state.parquet.lock", state, seconds=600)
    assert "broke the lock" in unlock_state(state)
    with SyncState.open(state):
        pass
    with pytest.raises(LockedError):
        stale.renew()
    assert "was not locked" in unlock_state(state)


def test_the_lease_is_renewed_while_a_run_lives(s3):
    state = s3.uri("renew/state.parquet")
    # a lease of 3 s (renewed about every second) leaves room for a loaded machine's stalls
    with SyncState.open(state, lease=3.0, flush_seconds=0.2):
        time.sleep(4.5)  # beyond the lease: only renewals keep it
        with pytest.raises(LockedError, match="in use"):
            SyncState.open(state, lease=3.0)


# -- killed runs and store faults --------------------------------------------------------


def test_a_run_that_never_closed_has_its_journal_folded_by_the_next(s3):
    state = s3.uri("killed/state.parquet")
    sync = SyncState.open(state, flush_batches=1)
    sync.record_outcomes(["u:a", "u:b"], np.array([1, 2]), [PersonOutcome("created", "a")] * 2)
    assert [k for k in s3.keys("killed/") if k.endswith(".jsonl")]
    sync._keeper._stop.set()  # type: ignore[attr-defined]  # dies: no fold, no release
    unlock_state(state)
    with SyncState.open(state) as again:
        unchanged, ids = again.lookup(identity_hashes(["u:a", "u:b"]), np.array([1, 3]))
    assert list(unchanged) == [True, False] and list(ids) == ["a", "a"]
    assert not [k for k in s3.keys("killed/") if k.endswith(".jsonl")]


def test_store_faults_are_retried_and_the_state_lands(s3):
    calls = {"n": 0}

    def every_other_put(method: str, path: str) -> bool:
        calls["n"] += method == "PUT"
        return method == "PUT" and calls["n"] % 2 == 1

    s3.wire.fail = every_other_put
    fs = s3fs.S3FileSystem(config_kwargs={"retries": {"max_attempts": 1}})
    state = f"{s3.bucket}/faulty/state.parquet"
    with SyncState.open(state, filesystem=fs, retry=QUICK, flush_batches=1) as sync:
        sync.record_outcomes(["u:a"], np.array([7]), [PersonOutcome("created", "a")])
    assert s3.wire.faults >= 2
    s3.wire.reset()
    assert len(s3.read_parquet("faulty/state.parquet")) == 1


def test_a_store_that_stays_down_stops_the_run_and_loses_nothing_flushed(s3):
    fs = s3fs.S3FileSystem(config_kwargs={"retries": {"max_attempts": 1}})
    state = f"{s3.bucket}/down/state.parquet"
    sync = SyncState.open(state, filesystem=fs, retry=QUICK, flush_batches=1, flush_seconds=0.1)
    sync.record_outcomes(["u:a"], np.array([1]), [PersonOutcome("created", "a")])
    s3.wire.fail = lambda method, path: True
    sync._keeper.journal.every_batches = 100  # type: ignore[attr-defined]
    sync.record_outcomes(["u:b"], np.array([2]), [PersonOutcome("created", "b")])
    deadline = time.monotonic() + 20
    with pytest.raises(StateError, match="cannot be kept"):  # noqa: PT012
        while time.monotonic() < deadline:
            sync.record_outcomes(["u:c"], np.array([3]), [PersonOutcome("created", "c")])
            time.sleep(0.05)
    with pytest.raises(StateError):
        sync.close()
    s3.wire.reset()  # the store is back
    unlock_state(state, filesystem=fs)
    with SyncState.open(state, filesystem=fs) as again:
        unchanged, _ = again.lookup(identity_hashes(["u:a", "u:b"]), np.array([1, 2]))
    assert unchanged[0]  # flushed before the outage: kept


def _cli(server: FlameupServer, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flameup_pandas.cli", *args],
        env={
            **os.environ,
            **env,
            "FLAMEUP_API_KEY": server.api_key,
            "FLAMEUP_BASE_URL": server.base_url,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_sigkill_mid_run_with_everything_on_s3_then_unlock_and_rerun_completes(s3):
    rows = 6000
    source = s3.put_frame(customers(rows), "kill/c.parquet")
    state = s3.uri("kill/state.parquet")
    args = ("upsert", source, "--state", state, "--no-progress", "--concurrency", "2")
    with FlameupServer(rate_limit=15, rate_window=1.0) as server:
        first = _cli(server, s3.env, *args)
        deadline = time.monotonic() + 180  # the wait ends at the first journal object
        while time.monotonic() < deadline and first.poll() is None:
            if any(k.endswith(".jsonl") for k in s3.keys("kill/state.parquet.journal")):
                break
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        acknowledged = server.request_count(status=200)
        assert acknowledged < rows // 100, "the kill should land mid-run"
        journal = [k for k in s3.keys("kill/") if k.endswith(".jsonl")]
        assert journal, "a journal object was flushed before the kill"

        blocked = _cli(server, s3.env, *args)
        _, err = blocked.communicate(timeout=60)
        assert blocked.returncode == 2 and "in use by another run" in err
        assert "flameup-pandas unlock" in err

        unlock = _cli(server, s3.env, "unlock", state)
        out, err = unlock.communicate(timeout=60)
        assert unlock.returncode == 0 and "broke the lock" in out, err

        server.reset_requests()
        second = _cli(server, s3.env, *args)
        _, err = second.communicate(timeout=180)
        assert second.returncode == 0, err
        stored = server.people()
        assert len(stored) == rows and stored["external_id"].is_unique
        resent = server.request_count(status=200)
        # the flushed journal is not sent again; at most what was unflushed or in flight is
        assert resent < rows // 100
        assert resent <= rows // 100 - acknowledged + 20 + 2 + 1
    assert len(s3.read_parquet("kill/state.parquet")) == rows


# -- the code path of GCS and Azure, on fsspec's memory filesystem ----------------------------


def test_a_state_on_s3_without_source_hashes_learns_them_in_one_rerun(s3, flameup_server):
    """A state written before source hashes (or by Spark): the first rerun keeps them, written
    with the state though nothing was sent; the next rerun writes only its lease again."""
    source = s3.put_frame(customers(200), "in/learn.parquet")
    keywords = {"state": s3.uri("learn/state.parquet"), **target(flameup_server)}
    upsert_file(source, **keywords)
    with s3.fs.open(f"{s3.bucket}/learn/state.parquet", "rb") as handle:
        table = pq.read_table(handle)
    erased = table.set_column(
        table.schema.get_field_index("source_hash"), "source_hash", pa.nulls(200, pa.int64())
    )
    with s3.fs.open(f"{s3.bucket}/learn/state.parquet", "wb") as handle:
        pq.write_table(erased, handle)
    assert upsert_file(source, **keywords).counts["skipped"] == 200
    assert s3.read_parquet("learn/state.parquet")["source_hash"].notna().all()
    s3.wire.reset()
    assert upsert_file(source, **keywords).counts["skipped"] == 200
    assert s3.wire.count("PUT", "learn/state.parquet HTTP") == 0


@pytest.fixture
def memory() -> Any:
    return fsspec.filesystem("memory", skip_instance_cache=True, global_store=False)


def test_memory_filesystem_source_state_and_results(memory, flameup_server):
    with memory.open("/in/c.parquet", "wb") as handle:
        customers(120).to_parquet(handle)
    keywords = {"state": "/s/state.parquet", "results": "/s/results.parquet"}
    first = upsert_file("/in/c.parquet", filesystem=memory, **keywords, **target(flameup_server))
    assert first.counts["created"] == 120
    with memory.open("/s/results.parquet", "rb") as handle:
        assert len(pq.read_table(handle)) == 120
    second = upsert_file(
        "memory://in/c.parquet", filesystem=memory, **keywords, **target(flameup_server)
    )
    assert second.counts["skipped"] == 120
    assert not [p for p in memory.find("/s") if "journal" in p or ".lock/" in p]


def test_memory_filesystem_lock_and_journal_objects(memory):
    with SyncState.open("/m/state.parquet", filesystem=memory, flush_batches=1) as sync:
        with pytest.raises(LockedError):
            SyncState.open("/m/state.parquet", filesystem=memory)
        sync.record_outcomes(["u:a"], np.array([5]), [PersonOutcome("updated", "a")])
        objects = JournalObjects.existing(Store(memory), "/m/state.parquet.journal")
        assert len(objects) == 1
    with SyncState.open("/m/state.parquet", filesystem=memory) as again:
        assert len(again) == 1


def test_the_frame_upsert_keeps_its_state_on_a_given_filesystem(memory, flameup_server):
    upsert(customers(10), state="/f/state.parquet", filesystem=memory, **target(flameup_server))
    again = upsert(
        customers(10), state="/f/state.parquet", filesystem=memory, **target(flameup_server)
    )
    assert (again["flameup_status"] == "skipped").all()


def test_a_state_on_a_pyarrow_filesystem_is_refused_it_cannot_lock(tmp_path):
    import pyarrow.fs as pafs

    s3 = pafs.S3FileSystem(endpoint_override="127.0.0.1:1", scheme="http", region="us-east-1")
    with pytest.raises(ConfigurationError, match="only if absent"):
        SyncState.open("bucket/state.parquet", filesystem=s3)
