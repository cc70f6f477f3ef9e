"""SQLite storage of the server: people, API keys and the workspace.

One connection guarded by a lock serves every request thread. A batch is applied in one
transaction, person by person in request order, so it is stored entirely or not at all and
the same person twice in a batch is created by its first entry and updated by its second.

Identity: a person sent with a ``userId`` is found by ``external_id`` only (created when
there is none, whatever its email); a person sent without one is found by email, compared
case-insensitively, and when several people share that email the oldest one is used.

Merging: known traits become columns, other traits go into ``attributes``; a trait sent as
JSON null clears it (the column becomes null, the attribute is removed); what is not sent is
kept. Top-level ``email`` and ``phone`` set their columns (``phone`` wins over
``traits.phone``). Every write takes a fresh timestamp from a clock that never repeats, so
successive updates always differ and a new person has ``created_at == updated_at``.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from ._rules import KNOWN_TRAITS, PersonInput

__all__ = ["ALL_PERMISSIONS", "EVENT_FIELDS", "ApiKey", "EventFilters", "Store", "UpsertResult"]

ALL_PERMISSIONS = (
    "people:read",
    "people:write",
    "people:list",
    "events:write",
    "events:read",
)

PERSON_FIELDS = (
    "id",
    "workspace_id",
    "external_id",
    "email",
    "phone",
    *(name for name in KNOWN_TRAITS if name != "phone"),
    "status",
    "attributes",
    "created_at",
    "updated_at",
    "first_seen_at",
    "last_seen_at",
)
_COLUMNS = tuple(name for name in PERSON_FIELDS if name != "workspace_id")
_ATTRIBUTES = _COLUMNS.index("attributes")
_EXTERNAL_ID = 1 + _COLUMNS.index("external_id")
"""Position of external_id in a row of _SELECT (seq comes first)."""
_SELECT = f"SELECT seq, {', '.join(_COLUMNS)} FROM people"
_INSERT = (
    f"INSERT INTO people ({', '.join(_COLUMNS)}, email_key) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)}, ?)"
)
_FIXED = frozenset({"id", "external_id", "created_at", "first_seen_at"})
"""Columns an update never changes (left out of _UPDATE to spare their unique indexes)."""
_CHANGING = tuple(i for i, c in enumerate(_COLUMNS) if c not in _FIXED)
_UPDATE = (
    f"UPDATE people SET {', '.join(f'{_COLUMNS[i]} = ?' for i in _CHANGING)}, email_key = ?"
    " WHERE seq = ?"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    idx INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, permissions TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS people (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    external_id TEXT UNIQUE,
    email TEXT, email_key TEXT, phone TEXT,
    first_name TEXT, last_name TEXT, avatar_url TEXT, timezone TEXT, locale TEXT,
    status TEXT NOT NULL, attributes TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    first_seen_at TEXT NOT NULL, last_seen_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS people_email ON people (email_key, seq);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    user_key TEXT NOT NULL, person_id TEXT,
    event TEXT NOT NULL, parameters TEXT NOT NULL,
    timestamp TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_user ON events (user_key, seq);
"""

EVENT_FIELDS = (
    "id",
    "workspace_id",
    "person_id",
    "user_id",
    "event",
    "parameters",
    "timestamp",
    "created_at",
)
_EVENT_SELECT = (
    "SELECT id, person_id, user_key, event, parameters, timestamp, created_at FROM events"
)


@dataclass(frozen=True)
class ApiKey:
    """A key the server accepts; ``index`` numbers it (1 is the first) in the request log."""

    index: int
    key: str
    permissions: frozenset[str]


@dataclass(frozen=True)
class EventFilters:
    """The listing's filters: the user (external id or email), the name, a time range.

    ``since`` and ``until`` are normalised UTC timestamps (as stored), both inclusive.
    """

    user_id: str | None = None
    event: str | None = None
    since: str | None = None
    until: str | None = None

    def where(self) -> tuple[str, tuple[str, ...]]:
        clauses: list[str] = []
        params: list[str] = []
        for value, clause in (
            (self.user_id, "user_key = ?"),
            (self.event, "event = ?"),
            (self.since, "timestamp >= ?"),
            (self.until, "timestamp <= ?"),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


@dataclass(frozen=True)
class UpsertResult:
    """The people as stored after each entry (request order) and the two counts."""

    people: list[dict[str, Any]]
    created_count: int
    updated_count: int


class _Clock:
    """ISO 8601 UTC timestamps with microseconds, strictly increasing."""

    def __init__(self) -> None:
        self._last = dt.datetime.min

    def now(self) -> str:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        if now <= self._last:
            now = self._last + dt.timedelta(microseconds=1)
        self._last = now
        return now.isoformat(timespec="microseconds") + "Z"


class Store:
    """People, keys and the workspace id in SQLite (``path=None``: in memory)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        target = ":memory:" if path is None else os.fspath(path)
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._clock = _Clock()
        if path is not None:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)
        self.workspace_id = self._meta("workspace_id", lambda: secrets.token_hex(4))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _meta(self, name: str, default: Any) -> str:
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
            if row is not None:
                return str(row[0])
            value = str(default())
            db.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (name, value))
            return value

    # keys

    def api_keys(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute("SELECT idx, key, permissions FROM api_keys ORDER BY idx")
            return [ApiKey(i, k, frozenset(p.split())) for i, k, p in rows.fetchall()]

    def add_key(self, permissions: Sequence[str] = ALL_PERMISSIONS) -> ApiKey:
        """Create and store a new ``ws_test_...`` key of this workspace."""
        key = f"ws_test_{self.workspace_id}_{secrets.token_hex(6)}.{secrets.token_hex(32)}"
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO api_keys (key, permissions) VALUES (?, ?)",
                (key, " ".join(permissions)),
            )
            index = int(cursor.lastrowid or 0)
        return ApiKey(index, key, frozenset(permissions))

    # people

    def upsert(self, people: Sequence[PersonInput]) -> UpsertResult:
        """Apply every person in order, in one transaction."""
        with self._transaction() as db:
            if _distinct_user_ids(people):
                return self._upsert_by_user_ids(db, people)
            answers: list[dict[str, Any]] = []
            created = 0
            for person in people:
                row = self._find_for(db, person)
                created += row is None
                answers.append(self._write(db, row, person))
        return UpsertResult(answers, created, len(answers) - created)

    def _upsert_by_user_ids(
        self, db: sqlite3.Connection, people: Sequence[PersonInput]
    ) -> UpsertResult:
        """The fast path when every person has its own userId: entries cannot interact, so
        one query finds them all and two ``executemany`` calls write them."""
        ids = [person.user_id for person in people]
        marks = ", ".join("?" for _ in ids)
        found = db.execute(f"{_SELECT} WHERE external_id IN ({marks})", ids).fetchall()
        rows = {row[_EXTERNAL_ID]: row for row in found}
        inserts: list[list[Any]] = []
        updates: list[list[Any]] = []
        answers: list[dict[str, Any]] = []
        for person in people:
            row = rows.get(person.user_id)
            record, values = self._merged(row, person)
            if row is None:
                inserts.append(values)
            else:
                updates.append(_update_values(values, row[0]))
            answers.append(self._ordered(record))
        db.executemany(_INSERT, inserts)
        db.executemany(_UPDATE, updates)
        return UpsertResult(answers, len(inserts), len(updates))

    def update_traits(self, identifier: str, traits: dict[str, Any]) -> dict[str, Any] | None:
        """Merge traits into the person found by external id or email; None if none."""
        with self._transaction() as db:
            row = self._find(db, identifier)
            if row is None:
                return None
            return self._write(db, row, PersonInput(None, None, None, traits))

    def get(self, identifier: str) -> dict[str, Any] | None:
        """The person whose external id, else email, is ``identifier``."""
        with self._lock:
            row = self._find(self._db, identifier)
        return None if row is None else self._person(row)

    def page(
        self, limit: int, offset: int, status: str | None = None, search: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of people (oldest first) and the total that match the filters."""
        where, params = _filters(status, search)
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM people{where}", params).fetchone()
            rows = self._db.execute(
                f"{_SELECT}{where} ORDER BY seq LIMIT ? OFFSET ?", (*params, limit, offset)
            ).fetchall()
        return [self._person(row) for row in rows], int(total[0])

    def set_status(self, identifier: str, status: str) -> dict[str, Any] | None:
        """Set a person's status (as an unsubscribe or a bounce would); the person, or None."""
        with self._lock, self._transaction() as db:
            row = self._find(db, identifier)
            if row is None:
                return None
            now = self._clock.now()
            db.execute(
                "UPDATE people SET status = ?, updated_at = ? WHERE seq = ?", (status, now, row[0])
            )
        return self.get(identifier)

    def remove(self, identifier: str) -> bool:
        """Delete a person; whether there was one."""
        with self._lock, self._transaction() as db:
            row = self._find(db, identifier)
            if row is not None:
                db.execute("DELETE FROM people WHERE seq = ?", (row[0],))
        return row is not None

    def get_by_id(self, person_id: str) -> dict[str, Any] | None:
        """The person whose Flameup ``id`` this is."""
        with self._lock:
            row = self._db.execute(f"{_SELECT} WHERE id = ?", (person_id,)).fetchone()
        return None if row is None else self._person(row)

    def clear_people(self) -> int:
        """Delete every person (the keys and the workspace stay); returns how many."""
        with self._transaction() as db:
            return db.execute("DELETE FROM people").rowcount

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(f"{_SELECT} ORDER BY seq").fetchall()
        return [self._person(row) for row in rows]

    # events

    def add_event(
        self, user: str, event: str, parameters: dict[str, Any], timestamp: str | None
    ) -> dict[str, Any]:
        """Store one event of the person with external id (else email) ``user``; the event.

        The person is looked up, not created: ``person_id`` is None when there is none.
        """
        with self._transaction() as db:
            row = self._find(db, user)
            now = self._clock.now()
            values = (
                f"evt_{uuid.uuid4().hex[:24]}",
                None if row is None else row[1],
                user,
                event,
                orjson.dumps(parameters).decode(),
                timestamp or now,
                now,
            )
            db.execute(
                "INSERT INTO events (id, person_id, user_key, event, parameters, timestamp,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        return self._event(values)

    def events_page(
        self, limit: int, offset: int, filters: EventFilters
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of events (oldest stored first) and the total that match the filters."""
        where, params = filters.where()
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM events{where}", params).fetchone()
            rows = self._db.execute(
                f"{_EVENT_SELECT}{where} ORDER BY seq LIMIT ? OFFSET ?", (*params, limit, offset)
            ).fetchall()
        return [self._event(row) for row in rows], int(total[0])

    def _event(self, row: tuple[Any, ...]) -> dict[str, Any]:
        event_id, person_id, user, name, parameters, timestamp, created_at = row
        return {
            "id": event_id,
            "workspace_id": self.workspace_id,
            "person_id": person_id,
            "user_id": user,
            "event": name,
            "parameters": orjson.loads(parameters),
            "timestamp": timestamp,
            "created_at": created_at,
        }

    def _find(self, db: sqlite3.Connection, identifier: str) -> tuple[Any, ...] | None:
        row = db.execute(f"{_SELECT} WHERE external_id = ?", (identifier,)).fetchone()
        if row is None:
            row = db.execute(
                f"{_SELECT} WHERE email_key = ? ORDER BY seq LIMIT 1", (identifier.lower(),)
            ).fetchone()
        return row  # type: ignore[no-any-return]

    def _find_for(self, db: sqlite3.Connection, person: PersonInput) -> tuple[Any, ...] | None:
        if person.user_id is not None:
            sql, key = f"{_SELECT} WHERE external_id = ?", person.user_id
        else:
            sql, key = f"{_SELECT} WHERE email_key = ? ORDER BY seq LIMIT 1", _email_key(person)
        return db.execute(sql, (key,)).fetchone()  # type: ignore[no-any-return]

    def _write(
        self, db: sqlite3.Connection, row: tuple[Any, ...] | None, person: PersonInput
    ) -> dict[str, Any]:
        record, values = self._merged(row, person)
        if row is None:
            db.execute(_INSERT, values)
        else:
            db.execute(_UPDATE, _update_values(values, row[0]))
        return self._ordered(record)

    def _merged(
        self, row: tuple[Any, ...] | None, person: PersonInput
    ) -> tuple[dict[str, Any], list[Any]]:
        """The person's record after this entry, and its column values to write."""
        now = self._clock.now()
        if row is None:
            record = _new_record(person.user_id, now)
        else:
            record = dict(zip(_COLUMNS, row[1:], strict=True))
            record["attributes"] = orjson.loads(record["attributes"])
            record["updated_at"] = record["last_seen_at"] = now
        _merge(record, person)
        values = [record[c] for c in _COLUMNS]
        values[_ATTRIBUTES] = orjson.dumps(record["attributes"]).decode()
        values.append(None if record["email"] is None else record["email"].lower())
        return record, values

    def _person(self, row: tuple[Any, ...]) -> dict[str, Any]:
        record = dict(zip(_COLUMNS, row[1:], strict=True))
        record["attributes"] = orjson.loads(record["attributes"])
        return self._ordered(record)

    def _ordered(self, record: dict[str, Any]) -> dict[str, Any]:
        record["workspace_id"] = self.workspace_id
        return {name: record[name] for name in PERSON_FIELDS}


def _new_record(user_id: str | None, now: str) -> dict[str, Any]:
    record: dict[str, Any] = dict.fromkeys(_COLUMNS)
    record.update(
        id=str(uuid.uuid4()),
        external_id=user_id,
        status="active",
        attributes={},
        created_at=now,
        updated_at=now,
        first_seen_at=now,
        last_seen_at=now,
    )
    return record


def _merge(record: dict[str, Any], person: PersonInput) -> None:
    attributes = record["attributes"]
    for name, value in person.traits.items():
        if name in KNOWN_TRAITS:
            record[name] = value
        elif value is None:
            attributes.pop(name, None)
        else:
            attributes[name] = value
    if person.email is not None:
        record["email"] = person.email
    if person.phone is not None:
        record["phone"] = person.phone


def _update_values(values: list[Any], seq: int) -> list[Any]:
    """The parameters of _UPDATE from a full row of values (email_key last) and its seq."""
    return [*(values[i] for i in _CHANGING), values[-1], seq]


def _distinct_user_ids(people: Sequence[PersonInput]) -> bool:
    ids = {person.user_id for person in people}
    return None not in ids and len(ids) == len(people)


def _email_key(person: PersonInput) -> str:
    return (person.email or "").lower()


def _filters(status: str | None, search: str | None) -> tuple[str, tuple[str, ...]]:
    clauses: list[str] = []
    params: list[str] = []
    if status:
        clauses.append("status = ?")
        params.append(status)
    if search:
        # Search is plain text: % and _ in it are matched as themselves, not as wildcards.
        escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{escaped}%"
        columns = ("external_id", "email_key", "first_name", "last_name")
        clauses.append("(" + " OR ".join(f"lower({c}) LIKE ? ESCAPE '\\'" for c in columns) + ")")
        params.extend([like] * len(columns))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)
