"""Canonical rows -> each person's JSON bytes, content hash and identity fields, column by column.

Each column becomes one JSON text per row by its rule in the value registry
(:mod:`flameup_pandas._people.values`); a person is the concatenation of its fields' texts,
built for the whole column at once, with no dict on the way to the wire. The dicts are built
only when asked for (``to_people``). A value JSON cannot hold makes its row invalid, with
every reason listed.

Missing values are left out of the person; with ``send_nulls=True`` they are sent as null,
except ``userId``, which is never null.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, cast

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .column_encoders import Texts
from .identity import identity_key_array
from .mapping import trait_name
from .outgoing import Outgoing
from .person import TOP_LEVEL
from .values import column_texts
from .wire import (
    BINARY,
    blake2b_hashes,
    concat_pieces,
    drop_byte,
    null_mask,
    quoted,
    scattered,
    with_nulls,
)

__all__ = ["TOP_LEVEL", "FieldHashes", "Identity", "Payloads", "encode_people"]


@dataclass
class _Column:
    key: str
    is_trait: bool
    texts: Texts


def _columns(canonical: pd.DataFrame, naive: str) -> list[_Column]:
    out = []
    for position, name in enumerate(map(str, canonical.columns)):
        is_trait = name not in TOP_LEVEL
        key = trait_name(name) if is_trait else name
        label = f"traits.{key}" if is_trait else key
        texts = column_texts(canonical.iloc[:, position], naive, label, not is_trait)
        out.append(_Column(key, is_trait, texts))
    return out


def _field(column: _Column, first: bool, send_nulls: bool, in_sorted: bool) -> list[Any]:
    """The pieces of ``,"key":value`` (no comma when ``first``) per row; empty where missing."""
    texts = column.texts
    head = (b"" if first else b",") + orjson.dumps(column.key) + b":"
    values, quote = texts.texts, b'"' if texts.quote else b""
    if in_sorted and texts.sorted_texts is not None:
        values, quote = texts.sorted_texts, b""
    missing = texts.missing.any() or values.null_count > 0
    if missing and send_nulls and column.key != "userId":
        nulls = pa.scalar(b"null", BINARY)
        values = pc.fill_null(values if not quote else texts.json(), nulls)
        return [head, values]
    if not missing:
        return [head + quote, values, quote]
    piece = concat_pieces([head + quote, values, quote], len(values))
    return [pc.fill_null(piece, pa.scalar(b"", BINARY))]


def _present(column: _Column, send_nulls: bool) -> np.ndarray:
    """Rows where the column's field is written (a missing value too, as null, with send_nulls)."""
    if send_nulls and column.key != "userId":
        return np.ones(len(column.texts.missing), dtype=bool)
    return ~column.texts.missing


def _object(columns: Sequence[_Column], n_rows: int, send_nulls: bool, in_sorted: bool) -> pa.Array:
    """``{...}`` of the columns' fields per row, missing ones left out.

    Each field but the first starts with a comma; rows whose first field is missing would
    then open with ``{,``, so that comma is dropped in those rows alone.
    """
    if in_sorted:
        columns = sorted(columns, key=lambda c: c.key)
    pieces: list[Any] = [b"{"]
    for index, column in enumerate(columns):
        pieces += _field(column, index == 0, send_nulls, in_sorted)
    pieces.append(b"}")
    texts = concat_pieces(pieces, n_rows)
    if len(columns) > 1:
        first_missing = ~_present(columns[0], send_nulls)
        later = np.logical_or.reduce([_present(c, send_nulls) for c in columns[1:]])
        texts = drop_byte(texts, first_missing & later, 1)
    return texts


def _people_texts(
    columns: list[_Column], n_rows: int, dropped: np.ndarray, send_nulls: bool, in_sorted: bool
) -> pa.Array:
    """Each row's person as JSON (keys in canonical or sorted order); null where dropped.

    The traits object is built first and then placed like one more top-level field.
    """
    top = [c for c in columns if not c.is_trait]
    traits = [c for c in columns if c.is_trait]
    if traits:
        inner = _object(traits, n_rows, send_nulls, in_sorted)
        absent = _no_traits(traits, n_rows, send_nulls)
        texts = Texts(with_nulls(inner, absent), absent, {})
        top = [*top, _Column("traits", False, texts)]
    return with_nulls(_object(top, n_rows, send_nulls, in_sorted), dropped)


def _people_texts_at(
    columns: list[_Column],
    dropped: np.ndarray,
    send_nulls: bool,
    in_sorted: bool,
    positions: np.ndarray,
) -> pa.Array:
    """:func:`_people_texts` of the rows at ``positions`` alone: each column is taken at those
    rows first, so a chunk where few people are sent (or hashed) assembles only them."""
    at, taken = pa.array(positions), []
    for c in columns:
        ordered = c.texts.sorted_texts
        texts = Texts(
            c.texts.texts.take(at),
            c.texts.missing[positions],
            {},
            None if ordered is None else ordered.take(at),
            quote=c.texts.quote,
        )
        taken.append(_Column(c.key, c.is_trait, texts))
    return _people_texts(taken, len(positions), dropped[positions], send_nulls, in_sorted)


def _record_maker(top: Sequence[str], traits: Sequence[str]) -> Callable[..., dict[str, Any]]:
    """A function building one person from its column values: generated so that CPython
    builds each dict from a literal, its fastest way (keys are constants, never source)."""
    namespace: dict[str, Any] = {}
    params = [f"a{i}" for i in range(len(top) + len(traits))]
    top_items = [f"K{i}: a{i}" for i in range(len(top))]
    trait_items = [f"K{i}: a{i}" for i in range(len(top), len(params))]
    for i, key in enumerate([*top, *traits]):
        namespace[f"K{i}"] = key
    if traits:
        namespace["T"] = "traits"
        top_items.append("T: {" + ", ".join(trait_items) + "}")
    source = f"def make({', '.join(params)}):\n    return {{{', '.join(top_items)}}}\n"
    exec(compile(source, "<flameup_pandas record maker>", "exec"), namespace)
    maker: Callable[..., dict[str, Any]] = namespace["make"]
    return maker


def _drop_missing(
    people: list[Any], columns: list[_Column], dropped: np.ndarray, send_nulls: bool
) -> None:
    """Take missing values out of the people (or leave them as null with send_nulls)."""
    for column in columns:
        if send_nulls and column.key != "userId":
            continue
        for position in np.flatnonzero(column.texts.missing & ~dropped).tolist():
            person = people[position]
            del (person["traits"] if column.is_trait else person)[column.key]
    traits = [c for c in columns if c.is_trait]
    no_traits = _no_traits(traits, len(people), send_nulls) & ~dropped
    for position in np.flatnonzero(no_traits).tolist():
        del people[position]["traits"]


def _no_traits(traits: list[_Column], n_rows: int, send_nulls: bool) -> np.ndarray:
    """Rows whose traits object is left out: those missing every trait (none, with send_nulls)."""
    if send_nulls or not traits:
        return np.zeros(n_rows, dtype=bool)
    absent: np.ndarray = np.logical_and.reduce([c.texts.missing for c in traits])
    return absent


def _people_dicts(
    columns: list[_Column], n_rows: int, dropped: np.ndarray, send_nulls: bool
) -> list[dict[str, Any] | None]:
    """Each row's person as a dict (None where dropped): the same dicts as decoding each
    person's bytes, but one decode per column and one dict literal per row."""
    top = [c for c in columns if not c.is_trait]
    traits = [c for c in columns if c.is_trait]
    maker = _record_maker([c.key for c in top], [c.key for c in traits])
    with _gc_paused():
        if columns:
            people: list[Any] = list(map(maker, *(c.texts.python() for c in top + traits)))
        else:
            people = [{} for _ in range(n_rows)]
        _drop_missing(people, columns, dropped, send_nulls)
    for position in np.flatnonzero(dropped).tolist():
        people[position] = None
    return people


def _top_strings(columns: list[_Column], key: str, n_rows: int, dropped: np.ndarray) -> pa.Array:
    """A top-level field's strings (null where missing, not a string, or the row dropped)."""
    strings = next((c.texts.strings for c in columns if c.key == key and not c.is_trait), None)
    if strings is None:
        return pa.nulls(n_rows, pa.large_string())
    return pc.if_else(pa.array(dropped), pa.scalar(None, pa.large_string()), strings)


def _given(canonical: pd.DataFrame, columns: list[_Column], key: str) -> pa.Array:
    """A top-level field as given in every row, as text (a value that is not a string shown
    as ``str`` of it), for results."""
    strings = _top_strings(columns, key, len(canonical), np.zeros(len(canonical), dtype=bool))
    if key not in canonical.columns:
        return strings
    values = canonical[key]
    others = np.flatnonzero(null_mask(strings) & values.notna())
    if len(others) == 0:
        return strings
    shown = strings.to_pylist()
    for position in others.tolist():
        shown[position] = str(values.iloc[position])
    return pa.array(shown, pa.large_string())


_MIX = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class FieldHashes:
    """What each person sends, field by field, as 32-bit hashes (for the sync state).

    ``names[j]`` is a field as shown in a plan (a top-level field, or a trait by its name;
    ``traits.<name>`` where a trait is named like a top-level field); ``hashes[j, i]`` the
    hash of that field's name and JSON value in row ``i``; ``present[j, i]`` whether row
    ``i`` sends the field at all (a missing value is not sent, unless as null with
    ``send_nulls``).
    """

    names: list[str]
    hashes: np.ndarray
    present: np.ndarray

    def lists(self) -> pa.Array:
        """Each row's hashes of the fields it sends, as an Arrow ``list<uint32>`` (what the
        state keeps). ``userId`` is left out: it is part of the identity, so it never
        changes for a person the state knows."""
        present = self.compared()
        flat = self.hashes.T[present.T]
        counts = present.sum(axis=0)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.uint32()))

    def compared(self) -> np.ndarray:
        """``present``, less the identity's ``userId``: the fields kept and compared."""
        identity = np.asarray([name == "userId" for name in self.names], dtype=bool)
        kept: np.ndarray = self.present & ~identity[:, np.newaxis]
        return kept


def _field_hashes(columns: list[_Column], send_nulls: bool, positions: np.ndarray) -> FieldHashes:
    """Each field's hash at ``positions``: of its name and its JSON text (sorted keys).

    ``pandas.util.hash_array`` (SipHash with a fixed key) is stable across processes and
    machines, and hashes a whole column in C.
    """
    take = pa.array(np.asarray(positions, dtype=np.int64))
    names, hashes, present = [], [], []
    for column in columns:
        texts = column.texts
        if texts.sorted_texts is not None:
            json = texts.sorted_texts.take(take)
        else:  # only the rows asked for are quoted
            json = quoted(texts.texts.take(take)) if texts.quote else texts.texts.take(take)
        values = json.to_numpy(zero_copy_only=False)
        values = np.where(pd.isna(values), b"null", values)
        label = f"traits.{column.key}" if column.is_trait else column.key
        shown = label if column.key in TOP_LEVEL else column.key
        salt = pd.util.hash_array(np.array([label], dtype=object), categorize=False)[0]
        mixed = (pd.util.hash_array(values.astype(object), categorize=False) ^ salt) * _MIX
        names.append(shown)
        hashes.append((mixed >> np.uint64(32)).astype(np.uint32))
        present.append(_present(column, send_nulls)[positions])
    if not columns:
        empty = np.zeros((0, len(positions)))
        return FieldHashes([], empty.astype(np.uint32), empty.astype(bool))
    return FieldHashes(names, np.vstack(hashes), np.vstack(present))


def _identity_missing(columns: list[_Column], n_rows: int) -> np.ndarray:
    has = np.zeros(n_rows, dtype=bool)
    for column in columns:
        if not column.is_trait and column.key in ("userId", "email"):
            has |= ~column.texts.missing
    return ~has


def encode_people(
    canonical: pd.DataFrame,
    *,
    skip: np.ndarray | None = None,
    send_nulls: bool = False,
    naive_timestamps: Literal["error", "utc"] = "error",
) -> Payloads:
    """Each row's person as the JSON bytes it will be sent as, built column by column.

    ``skip`` marks rows not to build (already invalid): they get no person. Rows with a value
    JSON cannot hold get none either, with the reasons in ``problems`` (skipped rows too, so
    every rule a row breaks is listed).

    >>> frame = pd.DataFrame({"userId": ["u1", "u2"], "score": [1.5, float("inf")],
    ...                       "plan": ["pro", None]})
    >>> payloads = encode_people(frame)
    >>> payloads.wire.to_pylist()
    [b'{"userId":"u1","traits":{"score":1.5,"plan":"pro"}}', None]
    >>> payloads.problems
    {1: 'traits.score: inf is not valid JSON'}
    """
    n_rows = len(canonical)
    skipped = np.zeros(n_rows, dtype=bool) if skip is None else np.asarray(skip, dtype=bool)
    columns = _columns(canonical, naive_timestamps)
    problems: dict[int, list[str]] = {}
    for column in columns:
        for position, why in column.texts.problems.items():
            problems.setdefault(position, []).append(why)
    for position in np.flatnonzero(_identity_missing(columns, n_rows) & ~skipped).tolist():
        problems.setdefault(position, []).append("no userId or email")
    dropped = skipped.copy()
    dropped[list(problems)] = True
    identity = Identity(
        _top_strings(columns, "userId", n_rows, dropped),
        _top_strings(columns, "email", n_rows, dropped),
        _given(canonical, columns, "userId"),
        _given(canonical, columns, "email"),
    )
    return Payloads(
        ~dropped,
        identity,
        wire_by=functools.partial(_people_texts, columns, n_rows, dropped, send_nulls, False),
        problems={p: "; ".join(why) for p, why in sorted(problems.items())},
        each_problem=dict(sorted(problems.items())),
        sorted_by=functools.partial(_people_texts, columns, n_rows, dropped, send_nulls, True),
        people_by=functools.partial(_people_dicts, columns, n_rows, dropped, send_nulls),
        fields_by=functools.partial(_field_hashes, columns, send_nulls),
        wire_at=functools.partial(_people_texts_at, columns, dropped, send_nulls, False),
        sorted_at=functools.partial(_people_texts_at, columns, dropped, send_nulls, True),
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cycle collector while making a million acyclic dicts: every few hundred
    would otherwise start a collection walking all of them (more than twice the time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Identity(NamedTuple):
    """Each row's identity fields as sent (null where the row has no person), and as given in
    every row, sent or not (what results show; None: as sent)."""

    user_ids: pa.Array
    emails: pa.Array
    given_user_ids: pa.Array | None = None
    given_emails: pa.Array | None = None


@dataclass(frozen=True, eq=False, repr=False)  # (arrays and functions: not compared or shown)
class Payloads:
    """The people of a frame as columns, by row position, and why some cannot be sent.

    ``present[i]`` says whether row ``i`` has a person (not when it was skipped or has a value
    that cannot be sent: ``problems[i]`` says why for the latter); ``identity`` its identity
    fields (:class:`Identity`, or what makes them when first asked for; ``identity_at`` makes
    some rows' alone). Built only when first asked for,
    each from the columns: :attr:`wire`, each person's JSON bytes as sent (by ``wire_by``);
    :attr:`hashed`, the same with keys sorted, which content hashes are taken of (by
    ``sorted_by``); and :attr:`people`, the dicts (by ``people_by``, else decoded from the
    bytes).
    """

    present: np.ndarray
    identity: Identity | Callable[[], Identity]
    problems: dict[int, str] = field(default_factory=dict)
    each_problem: dict[int, list[str]] = field(default_factory=dict)
    wire_by: Callable[[], pa.Array] | None = None
    sorted_by: Callable[[], pa.Array] | None = None
    people_by: Callable[[], list[dict[str, Any] | None]] | None = None
    identity_at: Callable[[np.ndarray], tuple[pa.Array, pa.Array]] | None = None
    fields_by: Callable[[np.ndarray], FieldHashes] | None = None
    wire_at: Callable[[np.ndarray], pa.Array] | None = None
    sorted_at: Callable[[np.ndarray], pa.Array] | None = None

    def __len__(self) -> int:
        return len(self.present)

    @functools.cached_property
    def _identity(self) -> Identity:
        return self.identity if isinstance(self.identity, Identity) else self.identity()

    @property
    def user_ids(self) -> pa.Array:
        return self._identity.user_ids

    @property
    def emails(self) -> pa.Array:
        return self._identity.emails

    @property
    def shown_user_ids(self) -> pa.Array:
        """Each row's userId as given (invalid rows too), for results."""
        given = self._identity.given_user_ids
        return self.user_ids if given is None else given

    @property
    def shown_emails(self) -> pa.Array:
        """Each row's email as given (invalid rows too), for results."""
        given = self._identity.given_emails
        return self.emails if given is None else given

    def identity_rows(self, positions: np.ndarray) -> tuple[pa.Array, pa.Array]:
        """The userIds and emails as sent at ``positions`` (made for them alone if need be)."""
        if self.identity_at is None or self._made("_identity"):
            take = pa.array(np.asarray(positions, dtype=np.int64))
            return self.user_ids.take(take), self.emails.take(take)
        return self.identity_at(np.asarray(positions, dtype=np.int64))

    @functools.cached_property
    def wire(self) -> pa.Array:
        """Each person's JSON bytes as sent (null where the row has no person)."""
        return pa.nulls(len(self), BINARY) if self.wire_by is None else self.wire_by()

    @functools.cached_property
    def hashed(self) -> pa.Array:
        """Each person's JSON with keys sorted (what content hashes are taken of)."""
        if self.sorted_by is None:
            raise ValueError("these payloads were made without their sorted JSON")
        return self.sorted_by()

    @functools.cached_property
    def people(self) -> list[dict[str, Any] | None]:
        """The person dicts (None where there is none): from the columns, or the bytes."""
        if self.people_by is not None:
            return self.people_by()
        texts = self.wire.to_pylist()
        present = [t for t in texts if t is not None]
        with _gc_paused():
            decoded = iter(orjson.loads(b"[" + b",".join(present) + b"]"))
            return [None if t is None else next(decoded) for t in texts]

    def _made(self, name: str) -> bool:
        return name in self.__dict__  # a cached property already computed

    def take(self, positions: np.ndarray) -> Payloads:
        """The rows at ``positions``, as payloads of their own, with their bytes.

        Problems are not carried, nor the sorted JSON unless it was already made (the part
        must not hold on to the whole).
        """
        positions = np.asarray(positions, dtype=np.int64)
        take = pa.array(positions)
        wire = self.wire.take(take) if len(positions) else pa.array([], BINARY)
        hashed = self.hashed.take(take) if self._made("hashed") else None
        return Payloads(
            self.present[positions],
            Identity(*self.identity_rows(positions)),
            wire_by=lambda: wire,
            sorted_by=None if hashed is None else lambda: hashed,
        )

    @staticmethod
    def concat(parts: Sequence[Payloads]) -> Payloads:
        """One payloads of several, in order (problems are not carried; see :meth:`take`)."""

        def joined(name: str, kind: pa.DataType) -> pa.Array:
            arrays = [getattr(p, name) for p in parts]
            return pa.concat_arrays(arrays) if arrays else pa.array([], kind)

        made = all(p._made("hashed") for p in parts)
        wire = joined("wire", BINARY)
        return Payloads(
            np.concatenate([np.zeros(0, dtype=bool), *(p.present for p in parts)]),
            Identity(joined("user_ids", pa.large_string()), joined("emails", pa.large_string())),
            wire_by=lambda: wire,
            sorted_by=functools.partial(joined, "hashed", BINARY) if made else None,
        )

    def for_sending(self, positions: np.ndarray, shown: bool) -> Payloads:
        """These payloads as a run needs them once planned: the bytes and identity fields of
        the people at ``positions`` (null elsewhere), every row's identity fields as given if
        ``shown`` (results show them); the columns they were built from are let go.

        What the change guard keeps of each chunk between planning and sending, so a run it
        lets through sends without reading or encoding its rows again.
        """
        wire = self.wire_of(positions)
        if shown:
            return Payloads(self.present, self._identity, wire_by=lambda: wire)
        sent = self.identity_rows(positions)
        identity = Identity(*(scattered(fields, positions, len(self)) for fields in sent))
        return Payloads(self.present, identity, wire_by=lambda: wire)

    def wire_of(self, positions: np.ndarray) -> pa.Array:
        """The bytes of the people at ``positions`` (null elsewhere): only theirs are
        assembled, unless every row's bytes are made already."""
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) == 0:
            return pa.nulls(len(self), BINARY)
        return scattered(self.wire_rows(positions), positions, len(self))

    def wire_rows(self, positions: np.ndarray) -> pa.Array:
        """The bytes of the people at ``positions`` alone (assembled for them only, unless
        every row's bytes are made already)."""
        if self._made("wire") or self.wire_at is None:
            return self.wire.take(pa.array(np.asarray(positions, dtype=np.int64)))
        return self.wire_at(np.asarray(positions, dtype=np.int64))

    def hashed_rows(self, positions: np.ndarray) -> pa.Array:
        """:attr:`hashed` of the people at ``positions`` alone (as :meth:`wire_rows`)."""
        if self._made("hashed") or self.sorted_at is None:
            return self.hashed.take(pa.array(np.asarray(positions, dtype=np.int64)))
        return self.sorted_at(np.asarray(positions, dtype=np.int64))

    def keys(self) -> pa.Array:
        """Each person's identity key (``u:<userId>``, else ``e:<email lower-cased>``)."""
        return identity_key_array(self.user_ids, self.emails)

    def content_hashes(self, positions: np.ndarray | None = None) -> np.ndarray:
        """A stable int64 fingerprint of each person (at ``positions``), to tell changed people
        apart: blake2b (8 bytes) of the person's JSON with sorted keys, read little-endian, the
        same on every machine, process and version; 0 where a row has no person."""
        every = positions is None or len(positions) == len(self)  # positions are sorted
        hashed = self.hashed if every else self.hashed_rows(cast(np.ndarray, positions))
        return blake2b_hashes(hashed)

    def field_hashes(self, positions: np.ndarray) -> FieldHashes | None:
        """Each field's hash at ``positions`` (see :class:`FieldHashes`); None for payloads
        taken apart from their columns (:meth:`take`, :meth:`concat`)."""
        if self.fields_by is None:
            return None
        return self.fields_by(np.asarray(positions, dtype=np.int64))

    def outgoing(
        self, positions: Sequence[int] | np.ndarray, wire: pa.Array | None = None
    ) -> list[Outgoing]:
        """The people at ``positions`` as they go out (each must have a person), their bytes
        taken from ``wire`` if given (:meth:`wire_of`'s), else from :attr:`wire`."""
        positions = np.asarray(positions, dtype=np.int64)
        sent = (self.wire if wire is None else wire).take(pa.array(positions))
        columns = (sent, *self.identity_rows(positions))
        return list(map(Outgoing, *(column.to_pylist() for column in columns)))
