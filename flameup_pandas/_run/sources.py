"""Where rows come from: any Arrow stream, and the ways to open one.

The streaming engine (:mod:`flameup_pandas._run.engine`) reads one thing: record batches. This
module turns every source it accepts into them, never holding more than a batch or two:

- a path or URI (``s3://``, ``gs://``, ``az://``, ``file://``...): a parquet file or
  directory (hive-partitioned or not), or a CSV file (:func:`open_dataset`);
- a ``pyarrow.dataset.Dataset`` (a Delta table's ``to_pyarrow_dataset()`` is one);
- a ``pyarrow.Table``, ``RecordBatch`` or ``RecordBatchReader``;
- any object with ``__arrow_c_stream__`` (the Arrow PyCapsule stream interface): a DuckDB
  relation, a polars DataFrame, an ADBC cursor's ``fetch_record_batch()``, ...;
- a polars LazyFrame, collected in batches by polars' streaming engine.

Batches are re-cut to at most ``chunk_rows`` rows, whatever size the producer hands over, so
the engine's memory does not depend on the source.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Generator, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .._people.column_encoders import null_free_dictionary, pandas_twin
from .._people.mapping import KNOWN_TRAITS, USER_ID_ALIASES
from .._people.person import TOP_LEVEL
from .._people.values import column_texts
from .._storage import Location, resolve
from ..exceptions import ConfigurationError, SourceError

__all__ = ["CHUNK_ROWS", "Rows", "open_dataset", "open_rows", "read_chunks"]

CHUNK_ROWS = 40_000
"""Rows per record batch: large enough that validation's fixed cost per call (pandera's, a
few tens of milliseconds a chunk) is small beside the work, small enough to keep memory flat
(a streaming run holds about one chunk: 25,000 rows peaked 15% lower, a third slower)."""
_TEXT_COLUMNS = (*USER_ID_ALIASES, *TOP_LEVEL, *KNOWN_TRAITS)
_RELEASE_EVERY = 8
"""Chunks between hand-backs of what Arrow's pool freed (mimalloc keeps it): each costs the next
chunk fresh pages (10,000,000 rows: 16.0 s and 93 MiB every chunk, 13.8 s and 118 MiB every 8)."""

Chunk: TypeAlias = Any
"""A ``pyarrow.RecordBatch`` or ``pyarrow.Table`` (pyarrow ships no type hints)."""
Batches: TypeAlias = Generator[Chunk, None, None]


@dataclass
class Rows:
    """An opened source: its record batches (at most ``chunk_rows`` rows each) and its row count
    when known unread (for the progress bar). ``labelled`` rows are pandas frames labelled by
    their index (a frame given to ``upsert()``); others are numbered from 0."""

    batches: Batches
    total: int | None = None
    labelled: bool = False
    source: Any = None  # what was opened (a path, a dataset, a relation): for lineage, tracing

    def frames(self) -> Iterator[pd.DataFrame]:
        """The rows as the engine's pandas frames, each row labelled."""
        if self.labelled:
            return iter(self.batches)
        return read_chunks(self.batches)


def open_rows(
    source: Any,
    *,
    chunk_rows: int = CHUNK_ROWS,
    mapping: Mapping[str, Any] | None = None,
    column_types: Mapping[str, Any] | None = None,
    filesystem: Any = None,
) -> Rows:
    """Open any accepted source (see the module docstring) as :class:`Rows`.

    >>> rows = open_rows(pa.table({"userId": ["a", "b", "c"]}), chunk_rows=2)
    >>> rows.total, [len(b) for b in rows.batches]
    (3, [2, 1])
    """
    if chunk_rows < 1:
        raise ConfigurationError(f"chunk_rows must be at least 1, got {chunk_rows}")
    origin = source
    if isinstance(source, str | Path):
        source = open_dataset(source, mapped_text_columns(mapping), column_types, filesystem)
    if isinstance(source, ds.Dataset):
        parquet = isinstance(source.format, ds.ParquetFileFormat)
        total = source.count_rows() if parquet else None
        return Rows(dataset_batches(source, chunk_rows), total, source=origin)
    if isinstance(source, pa.Table | pa.RecordBatch):
        batches = [source] if isinstance(source, pa.RecordBatch) else source.to_batches()
        return Rows(rechunked(batches, chunk_rows), source.num_rows, source=origin)
    if type(source).__module__.startswith("polars") and type(source).__name__ == "DataFrame":
        return Rows(_polars_chunks(source, chunk_rows), source.height, source=origin)
    return Rows(
        rechunked(_stream_batches(open_stream(source, chunk_rows)), chunk_rows), source=origin
    )


def open_stream(source: Any, chunk_rows: int = CHUNK_ROWS) -> pa.RecordBatchReader:
    """A record batch reader over a reader, an ``__arrow_c_stream__`` object or a LazyFrame."""
    if isinstance(source, pa.RecordBatchReader):
        return source
    if hasattr(source, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(source)
    if type(source).__module__.startswith("polars") and hasattr(source, "collect_batches"):
        batches = source.collect_batches(chunk_size=chunk_rows, lazy=True)
        return pa.RecordBatchReader.from_stream(batches)
    raise ConfigurationError(
        f"cannot read rows from a {type(source).__name__}: pass a path, a pyarrow Table, "
        "RecordBatchReader or dataset, a polars LazyFrame, or any object with "
        "__arrow_c_stream__ (a DuckDB relation, a polars DataFrame, an ADBC cursor's "
        "fetch_record_batch())"
    )


def _stream_batches(reader: pa.RecordBatchReader) -> Batches:
    """The reader's batches, closing it; a producer failing part way (a cast error, a dropped
    connection) is a :class:`SourceError` of one line, which the command line prints."""
    rows = 0
    try:
        for batch in reader:
            rows += batch.num_rows
            yield batch
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"reading the source failed after {rows:,} rows: {first}") from exc
    finally:
        reader.close()


def rechunked(batches: Iterable[Chunk], rows: int) -> Batches:
    """The same rows in pieces of ``rows``: large batches sliced without copying, small ones
    gathered, so a driver handing over a thousand rows at a time still makes full chunks."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            take = min(rows - count, batch.num_rows)
            held.append(batch.slice(0, take))
            batch = batch.slice(take)
            count += take
            if count == rows:
                yield held[0] if len(held) == 1 else pa.Table.from_batches(held)
                held, count = [], 0
    if count:
        yield held[0] if len(held) == 1 else pa.Table.from_batches(held)


def read_chunks(batches: Iterable[Chunk | pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The batches as pandas frames, index = row numbers counted from 0 across the source."""
    start = 0
    pool = pa.default_memory_pool()
    for number, batch in enumerate(batches):
        frame = batch if isinstance(batch, pd.DataFrame) else arrow_frame(batch)
        del batch  # (the frame holds what it needs of the batch)
        if number % _RELEASE_EVERY == 0:
            pool.release_unused()
        if len(frame) == 0:
            continue
        frame.index = pd.RangeIndex(start, start + len(frame))
        start += len(frame)
        yield frame
        del frame  # let the consumer's chunk go before the next one is read


def arrow_frame(batch: Chunk) -> pd.DataFrame:
    """A record batch or table as the pandas frame every path hands the engine.

    The one crossing from Arrow to pandas, so a value means the same from every source:
    columns stay Arrow-backed (``pd.ArrowDtype``: integers beside nulls stay integers,
    decimals stay decimals, NaN and null stay apart), dictionaries become categoricals (the
    values they stand for), and extension types come back as what they extend (pandas'
    Period and Interval, which then meet the rule for types with no JSON meaning).
    """
    table = _plain_views(batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch]))
    if any(column.num_chunks > 1 for column in table.columns):
        # a chunk gathered from a driver's small batches (DuckDB hands over 2,048 rows at a
        # time): one copy here spares every later kernel a walk over hundreds of pieces
        table = table.combine_chunks()
    table = _pandas_extensions(table)
    frame: pd.DataFrame = table.to_pandas(types_mapper=_pandas_type)
    return frame


def _pandas_type(kind: pa.DataType) -> Any:
    if pa.types.is_dictionary(kind):
        return None  # pyarrow's own: a categorical
    if isinstance(kind, pa.ExtensionType) and pandas_twin(kind) is not None:
        return None  # the extension's pandas type (another library's stays in Arrow)
    return pd.ArrowDtype(kind)


def _pandas_extensions(table: pa.Table) -> pa.Table:
    """Columns of pandas' ``Period`` and ``Interval`` types read where pandas' Arrow types were
    not registered (a plain integer or ``{left, right}`` column whose field metadata names
    the type) as those types, so they mean the same in every process."""
    from pandas.core.arrays.arrow import extension_types as pandas_types  # type: ignore[attr-defined]

    kinds = {
        b"pandas.period": pandas_types.ArrowPeriodType,
        b"pandas.interval": pandas_types.ArrowIntervalType,
    }
    for position, field in enumerate(table.schema):
        meta = field.metadata or {}
        kind = kinds.get(meta.get(b"ARROW:extension:name", b""))
        if kind is None or isinstance(field.type, pa.ExtensionType):
            continue
        extension = kind.__arrow_ext_deserialize__(
            field.type, meta.get(b"ARROW:extension:metadata", b"")
        )
        chunks = [pa.ExtensionArray.from_storage(extension, c) for c in table[position].chunks]
        column = pa.chunked_array(chunks, extension)
        table = table.set_column(position, field.name, column)
    return table


def _plain_views(table: pa.Table) -> pa.Table:
    """View types (polars exports strings as string_view) as their plain twins, and
    dictionaries' unsigned indices as signed ones."""
    views = {"string_view": pa.large_string(), "binary_view": pa.large_binary()}
    columns = []
    changed = False
    for column in table.columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            fixed = null_free_dictionary(column)
            changed, column, kind = changed or fixed is not column, fixed, fixed.type
            # unsigned indices (polars' categoricals) do not reach pandas in older pyarrow
            index = kind.index_type
            if pa.types.is_unsigned_integer(index):
                index = pa.int64() if index.bit_width >= 32 else pa.int32()
            value = views.get(str(kind.value_type), kind.value_type)
            kind = pa.dictionary(index, value, kind.ordered)
        elif str(kind) in views:
            kind = views[str(kind)]
        elif pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind):
            kind = pa.large_list(kind.value_field)
        if kind != column.type:
            column = column.cast(kind)
            changed = True
        columns.append(column)
    if not changed:
        return table
    return pa.table(columns, names=table.column_names)


def polars_frame(frame: Any) -> pd.DataFrame:
    """A polars DataFrame as the engine's pandas frame, through :func:`arrow_frame`.

    Columns Arrow cannot carry as they are cross as their Python values: ``Int128`` (polars
    exports no Arrow type for it) as Python ints, to which the 64-bit rule applies, and
    ``Object`` (exported as 8 bytes of a pointer) as the objects themselves.
    """
    import polars as pl

    # (UInt128 and Int128 are newer than some polars this package supports)
    python_only = [getattr(pl, n) for n in ("Int128", "UInt128", "Object") if hasattr(pl, n)]
    odd = [n for n, kind in frame.schema.items() if kind in python_only]
    out = arrow_frame(frame.drop(odd).to_arrow())
    for name in odd:
        values = np.empty(frame.height, dtype=object)
        values[:] = frame[name].to_list()
        out[name] = values
    return out[list(frame.columns)] if odd else out


def _polars_chunks(frame: Any, rows: int) -> Batches:
    for start in range(0, frame.height, rows):
        yield polars_frame(frame.slice(start, rows))


def open_dataset(
    source: str | Path | ds.Dataset,
    text_columns: tuple[str, ...] = (),
    column_types: Mapping[str, Any] | None = None,
    filesystem: Any = None,
) -> ds.Dataset:
    """A pyarrow dataset over a parquet file or directory, a CSV file (its types:
    :func:`csv_column_types`), or a given dataset; a path where
    :func:`~flameup_pandas._storage.resolve` says it lives."""
    if isinstance(source, ds.Dataset):
        return source
    where = resolve(source, filesystem)
    if not where.exists():
        raise ConfigurationError(f"no such file or directory: {where}")
    fs, path = where.arrow()
    if is_csv(Path(where.name)):
        types = csv_column_types(where, text_columns, column_types)
        # an empty cell is missing, as pandas reads it, never the text ""
        options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
        fmt = ds.CsvFileFormat(convert_options=options)
        return ds.dataset(path, filesystem=fs, format=fmt)
    if column_types:
        raise ConfigurationError("column_types= is for CSV files; a parquet file has its types")
    try:
        return ds.dataset(path, filesystem=fs, format="parquet", partitioning="hive")
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigurationError(f"cannot read {where} as parquet: {exc}") from exc


def mapped_text_columns(mapping: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Source columns mapped to identities or known traits: read as text from CSV files."""
    return tuple(
        str(v)
        for k, v in (mapping or {}).items()
        if k in TOP_LEVEL or k.removeprefix("traits.") in KNOWN_TRAITS
    )


def is_csv(path: Path) -> bool:
    suffix = path.suffix.lower()
    return suffix in (".csv", ".tsv") or (suffix == ".gz" and ".csv" in path.name)


def csv_column_types(
    path: Path | Location,
    text_columns: tuple[str, ...] = (),
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, pa.DataType]:
    """The type of every column of a CSV file, chosen so that inference never rewrites a cell.

    A column is read as integers (or floats, or booleans) only when every non-empty cell is
    written exactly as that value is written back when sent: ``02134``, ``+1``, ``1.50`` and
    ``1e3`` keep the column text. Identity and known-field columns (and those of
    ``text_columns``) are always text; ``overrides`` names the type of any column. The file is
    read once for this, in batches, before it is read for its rows.
    """
    where = resolve(path)
    fs, file = where.arrow()
    with fs.open_input_stream(file) as raw:  # a local file or an object; .gz decompressed
        handle = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        header = next(csv.reader(handle), [])
    types = {name: _override(name, kind) for name, kind in (overrides or {}).items()}
    unknown = sorted(set(types) - set(header))
    if unknown:
        raise ConfigurationError(
            f"column_types names {unknown[0]!r}, which {where.name} does not have; its columns "
            f"are: {', '.join(map(repr, header[:30]))}"
        )
    texts = {*_TEXT_COLUMNS, *text_columns}
    open_columns = [name for name in header if name not in types and name not in texts]
    candidates = {name: set(_CANDIDATES) for name in open_columns}
    if candidates:
        options = pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()))
        raw = fs.open_input_stream(file)
        with raw, pacsv.open_csv(raw, convert_options=options) as reader:
            for batch in reader:
                for name in list(candidates):
                    candidates[name] &= _fitting(batch.column(name), candidates[name])
    for name in header:
        if name not in types:
            kinds = candidates.get(name, set())
            types[name] = next((k for k in _CANDIDATES if k in kinds), pa.string())
    return types


_CANDIDATES = (pa.bool_(), pa.int64(), pa.float64())


def _override(name: str, kind: Any) -> pa.DataType:
    if isinstance(kind, pa.DataType):
        return kind
    try:
        return pa.type_for_alias(str(kind))
    except (ValueError, KeyError):
        raise ConfigurationError(
            f"column_types[{name!r}]: {kind!r} is not a type; use a pyarrow type or its name "
            "(string, int64, float64, bool, date32, timestamp[s, tz=UTC], ...)"
        ) from None


def _fitting(cells: pa.Array, kinds: set[pa.DataType]) -> set[pa.DataType]:
    """Which of ``kinds`` read every non-empty cell back as the same text."""
    present = pc.filter(cells, pc.not_equal(cells, ""))
    return {kind for kind in kinds if len(present) == 0 or _reads_back(present, kind)}


def _reads_back(cells: pa.Array, kind: pa.DataType) -> bool:
    """Whether every cell is written exactly as its value of ``kind`` is sent (the value
    registry's text of it)."""
    try:
        values = pc.cast(cells, kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    texts = column_texts(pd.Series(pd.arrays.ArrowExtensionArray(values)), "error", "", top=False)
    written = texts.json()
    if texts.problems or written.null_count:
        return False
    return bool(pc.all(pc.equal(written, cells.cast(written.type))).as_py())


def _parquet_batches(dataset: ds.FileSystemDataset, chunk_rows: int) -> Batches:
    for path in dataset.files:
        with dataset.filesystem.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle, pre_buffer=False)
            # decoded on one thread: each thread of Arrow's pool would keep freed pages
            yield from parquet.iter_batches(
                batch_size=chunk_rows, columns=dataset.schema.names, use_threads=False
            )


def read_ahead(batches: Batches) -> Batches:
    """The batches, each next one read on a thread of its own while the one before is used:
    Arrow decodes without the GIL, so reading overlaps the work (one batch more is held)."""
    with ThreadPoolExecutor(1, thread_name_prefix="flameup-read") as reader:
        try:
            coming = reader.submit(next, batches, None)
            while (batch := coming.result()) is not None:
                coming = reader.submit(next, batches, None)
                yield batch
        finally:
            reader.shutdown(cancel_futures=True)  # the read under way ends first
            batches.close()


def dataset_batches(dataset: ds.Dataset, chunk_rows: int) -> Batches:
    """Record batches read no further ahead than the engine consumes them.

    A dataset scan pre-buffers and reads ahead whole row groups, which piles up decoded data
    when the consumer is slower than the disk (as ours is: it validates, converts and sends).
    Plain parquet files are therefore read file by file without pre-buffering, decoded on
    the consumer's thread.
    """
    plain = (
        isinstance(dataset, ds.FileSystemDataset)
        and isinstance(dataset.format, ds.ParquetFileFormat)
        and dataset.partition_expression.equals(ds.scalar(True))
        and all(f.partition_expression.equals(ds.scalar(True)) for f in dataset.get_fragments())
    )
    if plain:
        yield from read_ahead(_parquet_batches(dataset, chunk_rows))
        return
    options = (
        ds.ParquetFragmentScanOptions(pre_buffer=False)
        if isinstance(dataset.format, ds.ParquetFileFormat)
        else None
    )
    yield from dataset.to_batches(
        batch_size=chunk_rows,
        batch_readahead=1,
        fragment_readahead=1,
        fragment_scan_options=options,
    )
