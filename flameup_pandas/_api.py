"""The plain functions behind ``df.flameup``: validate, to_people, upsert."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from ._client import FlameupClient, Timeout
from ._result import Summary
from ._retry import RetryPolicy
from ._sources import CHUNK_ROWS, open_rows
from ._stream import mapped_text_columns, upsert_rows
from ._upsert import Rules, Sender, upsert_frame
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    import pandera.pandas as pa
    import pyarrow.dataset as ds

__all__ = ["to_people", "upsert", "upsert_arrow", "upsert_file", "validate"]


def validate(
    df: pd.DataFrame,
    *,
    mapping: Mapping[str, Hashable] | None = None,
    traits: Sequence[Hashable] | None = None,
    exclude: Sequence[Hashable] | None = None,
    schema: type[pa.DataFrameModel] | pa.DataFrameSchema | None = None,
    naive_timestamps: Literal["error", "utc"] = "error",
) -> pd.DataFrame:
    """Every problem in ``df``, one row each: index label, column, check, offending value.

    Empty when every row can be sent. Never raises for bad data: it reports it. Values that
    JSON cannot carry (inf, bytes) are reported too, under the check ``json_value``.
    """
    rules = Rules(
        mapping=mapping,
        traits=traits,
        exclude=exclude,
        schema=schema,
        naive_timestamps=naive_timestamps,
    )
    return rules.plan(df).report


def to_people(
    df: pd.DataFrame,
    *,
    mapping: Mapping[str, Hashable] | None = None,
    traits: Sequence[Hashable] | None = None,
    exclude: Sequence[Hashable] | None = None,
    schema: type[pa.DataFrameModel] | pa.DataFrameSchema | None = None,
    send_nulls: bool = False,
    naive_timestamps: Literal["error", "utc"] = "error",
) -> list[dict[str, Any]]:
    """The people dicts exactly as upsert would send them, for the rows it would send."""
    rules = Rules(
        mapping=mapping,
        traits=traits,
        exclude=exclude,
        schema=schema,
        send_nulls=send_nulls,
        naive_timestamps=naive_timestamps,
    )
    plan = rules.plan(df)
    return [person for p in plan.pending() if (person := plan.people[p]) is not None]


def upsert(
    df: pd.DataFrame,
    *,
    client: FlameupClient | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    mapping: Mapping[str, Hashable] | None = None,
    traits: Sequence[Hashable] | None = None,
    exclude: Sequence[Hashable] | None = None,
    schema: type[pa.DataFrameModel] | pa.DataFrameSchema | None = None,
    on_duplicate: Literal["last", "error"] = "last",
    send_nulls: bool = False,
    naive_timestamps: Literal["error", "utc"] = "error",
    state: str | Path | None = None,
    full_refresh: bool = False,
    dry_run: bool = False,
    rate_limit: float | None = 120,
    concurrency: int = 4,
    retry: RetryPolicy | None = None,
    timeout: Timeout | float | tuple[float, float] | None = None,
    allow_http: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Upsert every row of ``df`` into Flameup; return ``df`` with three columns added.

    ``flameup_id``, ``flameup_status`` (created, updated, invalid, rejected, failed, skipped)
    and ``flameup_error`` (why, for every status but created/updated). Same index, same order,
    same columns as ``df``. ``result.flameup.summary()`` tells what the run did.
    """
    rules = Rules(
        mapping=mapping,
        traits=traits,
        exclude=exclude,
        schema=schema,
        send_nulls=send_nulls,
        naive_timestamps=naive_timestamps,
        on_duplicate=on_duplicate,
    )

    def open_sender() -> Sender:
        return Sender.open(
            client,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            allow_http=allow_http,
            rate_limit=rate_limit,
            concurrency=concurrency,
            retry=retry,
        )

    return upsert_frame(
        df,
        rules=rules,
        sender_factory=open_sender,
        state=state,
        full_refresh=full_refresh,
        dry_run=dry_run,
        progress=progress,
    )


def upsert_file(
    path: str | Path | ds.Dataset,
    *,
    results: str | Path | None = None,
    state: str | Path | None = None,
    full_refresh: bool = False,
    dry_run: bool = False,
    client: FlameupClient | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    mapping: Mapping[str, Hashable] | None = None,
    traits: Sequence[Hashable] | None = None,
    exclude: Sequence[Hashable] | None = None,
    schema: type[pa.DataFrameModel] | pa.DataFrameSchema | None = None,
    send_nulls: bool = False,
    naive_timestamps: Literal["error", "utc"] = "error",
    rate_limit: float | None = 120,
    concurrency: int = 4,
    retry: RetryPolicy | None = None,
    timeout: Timeout | float | tuple[float, float] | None = None,
    allow_http: bool = False,
    progress: bool = True,
    chunk_rows: int = CHUNK_ROWS,
) -> Summary:
    """Upsert a parquet file, directory or dataset, or a CSV file, in bounded memory.

    Reads record batches of ``chunk_rows``, sends full batches of 100, and appends per-row
    results (row, userId, email, flameup_id, flameup_status, flameup_error) to the
    ``results`` parquet file as answers arrive. With ``state=`` only new or changed people
    are sent. Returns the run's :class:`Summary`. The engine is :func:`upsert_arrow`'s; this
    front opens the path.
    """
    options = {k: v for k, v in locals().items() if k != "path"}
    return _upsert_source(path, **options)


def upsert_arrow(
    source: Any,
    *,
    results: str | Path | None = None,
    state: str | Path | None = None,
    full_refresh: bool = False,
    dry_run: bool = False,
    client: FlameupClient | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    mapping: Mapping[str, Hashable] | None = None,
    traits: Sequence[Hashable] | None = None,
    exclude: Sequence[Hashable] | None = None,
    schema: type[pa.DataFrameModel] | pa.DataFrameSchema | None = None,
    send_nulls: bool = False,
    naive_timestamps: Literal["error", "utc"] = "error",
    rate_limit: float | None = 120,
    concurrency: int = 4,
    retry: RetryPolicy | None = None,
    timeout: Timeout | float | tuple[float, float] | None = None,
    allow_http: bool = False,
    progress: bool = True,
    chunk_rows: int = CHUNK_ROWS,
) -> Summary:
    """Upsert the rows of any Arrow source, batch by batch, in bounded memory.

    ``source`` is a ``pyarrow.RecordBatchReader``, ``Table`` or dataset, a polars LazyFrame,
    or any object with ``__arrow_c_stream__``: a DuckDB relation, a polars DataFrame, an ADBC
    cursor's ``fetch_record_batch()``, a Delta table's ``to_pyarrow_dataset()``. Everything
    else is :func:`upsert_file`'s: the same keywords, results file, state (reruns send only
    changes), repeated identities across batches (the last row wins), and :class:`Summary`.
    A stream is read once; its row numbers in ``results`` count from 0. For example::

        rel = duckdb.sql("SELECT id AS userId, mail AS email FROM 'crm.parquet'")
        summary = upsert_arrow(rel, results="results.parquet", state="crm.state.parquet")
    """
    if isinstance(source, str | Path):
        raise ConfigurationError(
            f"upsert_arrow takes Arrow data, not a path ({str(source)!r}): use upsert_file"
        )
    options = {k: v for k, v in locals().items() if k != "source"}
    return _upsert_source(source, **options)


def _upsert_source(
    source: Any,
    *,
    results: str | Path | None,
    state: str | Path | None,
    full_refresh: bool,
    dry_run: bool,
    client: FlameupClient | None,
    api_key: str | None,
    base_url: str | None,
    mapping: Mapping[str, Hashable] | None,
    traits: Sequence[Hashable] | None,
    exclude: Sequence[Hashable] | None,
    schema: type[pa.DataFrameModel] | pa.DataFrameSchema | None,
    send_nulls: bool,
    naive_timestamps: Literal["error", "utc"],
    rate_limit: float | None,
    concurrency: int,
    retry: RetryPolicy | None,
    timeout: Timeout | float | tuple[float, float] | None,
    allow_http: bool,
    progress: bool,
    chunk_rows: int,
) -> Summary:
    """The one streaming run behind upsert_file and upsert_arrow."""
    rules = Rules(
        mapping=mapping,
        traits=traits,
        exclude=exclude,
        schema=schema,
        send_nulls=send_nulls,
        naive_timestamps=naive_timestamps,
    )
    rows = open_rows(source, chunk_rows=chunk_rows, text_columns=mapped_text_columns(rules))
    sender = (
        None
        if dry_run
        else Sender.open(
            client,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            allow_http=allow_http,
            rate_limit=rate_limit,
            concurrency=concurrency,
            retry=retry,
        )
    )
    try:
        return upsert_rows(
            rows,
            rules=rules,
            sender=sender,
            results=results,
            state=state,
            full_refresh=full_refresh,
            progress=progress,
        )
    finally:
        if sender is not None:
            sender.close()
