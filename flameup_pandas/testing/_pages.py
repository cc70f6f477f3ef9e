"""The web view's pages as markup: one function per page, given the data it shows.

Nothing here reads the store or the request log: `_ui` fetches, these functions render.
Keys are named by a label (``key 1 · 3fa9c2d1``, a fingerprint), never by the key itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode

from ._exchanges import FieldError
from ._faults_form import FormField
from ._html import Html, Part, el, json_block, shown, table, when
from ._ratelimit import RateState
from ._records import KEPT_BODIES, Bodies, RecordedRequest
from ._rules import KNOWN_TRAITS

__all__ = [
    "Paging",
    "events_page",
    "faults_page",
    "message_page",
    "people_page",
    "person_page",
    "rate_page",
    "request_page",
    "requests_page",
]

MAX_TRAIT_COLUMNS = 20
PERSON_COLUMNS = ("email", "phone", *(t for t in KNOWN_TRAITS if t != "phone"), "status")


@dataclass(frozen=True)
class Paging:
    """Which page of how many items, and the query that the page links keep."""

    number: int
    size: int
    total: int
    query: Mapping[str, str]

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def _pager(path: str, paging: Paging) -> Html:
    def link(number: int, text: str, rel: str) -> Html:
        query = urlencode({**paging.query, "page": str(number)})
        return el("a", text, href=f"{path}?{query}", rel=rel)

    first, last = paging.offset + 1, min(paging.offset + paging.size, paging.total)
    shown_now = f"{first} to {last} of {paging.total}" if paging.total else "none"
    parts: list[Part] = [el("span", f"Page {paging.number} of {paging.pages} ({shown_now})")]
    if paging.number > 1:
        parts.insert(0, link(paging.number - 1, "Previous page", "prev"))
    if paging.number < paging.pages:
        parts.append(link(paging.number + 1, "Next page", "next"))
    return el("nav", parts, class_="pager", aria_label="Pages")


def _person_link(person: Mapping[str, Any]) -> Html:
    name = person.get("external_id") or person.get("email") or person.get("id")
    return el("a", name, href=f"/people/{quote(str(person['id']), safe='')}")


def people_page(people: Sequence[Mapping[str, Any]], search: str, paging: Paging) -> Part:
    """The people table: known traits, then the custom traits met on this page."""
    form = el(
        "form",
        el("label", "Search by userId, email or name", for_="search"),
        " ",
        el("input", type="search", id="search", name="search", value=search),
        " ",
        el("button", "Search", type="submit"),
        role="search",
        method="get",
        action="/",
    )
    if not people:
        found = f"No person matches {search!r}." if search else "No people stored yet."
        return [form, el("p", found)]
    custom = sorted({name for p in people for name in p["attributes"]})
    hidden = len(custom) - MAX_TRAIT_COLUMNS
    custom = custom[:MAX_TRAIT_COLUMNS]
    headers = ["userId", *PERSON_COLUMNS, *(f"{c} (custom)" for c in custom), "updated_at"]
    rows = [
        [
            _person_link(p),
            *(shown(p[c]) for c in PERSON_COLUMNS),
            *(shown(p["attributes"].get(c)) for c in custom),
            p["updated_at"],
        ]
        for p in people
    ]
    matched = f" matching {search!r}" if search else ""
    caption = f"{paging.total} people{matched}, oldest first"
    note = el("p", f"{hidden} more custom traits are on each person's page.") if hidden > 0 else ""
    scroll = el("div", table(caption, headers, rows, id="people"), class_="scroll")
    return [form, note, scroll, _pager("/", paging)]


def person_page(
    person: Mapping[str, Any], touched: Sequence[RecordedRequest], keys: Mapping[int, str]
) -> Part:
    """Every field of one person, the attributes, and the requests that touched them."""
    fields = [
        [el("dt", name), el("dd", shown(value) if value is not None else "(not set)")]
        for name, value in person.items()
        if name != "attributes"
    ]
    attributes = person["attributes"]
    traits = (
        table("Custom traits", ["name", "value"], [[n, shown(v)] for n, v in attributes.items()])
        if attributes
        else el("p", "No custom traits.")
    )
    return [
        el("h2", "Fields"),
        el("dl", fields, id="fields"),
        el("h2", "Attributes"),
        traits,
        el("p", el("a", "Events of this person", href=_events_href(person))),
        el("h2", "Requests that touched this person"),
        el("p", f"Searched among the latest {KEPT_BODIES} requests, whose bodies are kept."),
        _requests_table("Requests, newest first", touched, keys) if touched else el("p", "None."),
    ]


def _events_href(person: Mapping[str, Any]) -> str:
    user = person.get("external_id") or person.get("email") or ""
    return "/events?" + urlencode({"user": str(user)})


def events_page(events: Sequence[Mapping[str, Any]], user: str, paging: Paging) -> Part:
    """The events table, newest stored last; ``user`` narrows it to one person's."""
    form = el(
        "form",
        el("label", "Events of the user (external id or email)", for_="user"),
        " ",
        el("input", type="search", id="user", name="user", value=user),
        " ",
        el("button", "Show", type="submit"),
        role="search",
        method="get",
        action="/events",
    )
    if not events:
        found = f"No events of {user!r}." if user else "No events stored yet."
        return [form, el("p", found)]
    headers = ["event", "user", "person", "timestamp", "parameters", "id", "created_at"]
    rows = [
        [
            e["event"],
            e["user_id"],
            el("a", "person", href=f"/people/{quote(str(e['person_id']), safe='')}")
            if e["person_id"]
            else "(none)",
            e["timestamp"],
            shown(e["parameters"]),
            e["id"],
            e["created_at"],
        ]
        for e in events
    ]
    of = f" of {user!r}" if user else ""
    caption = f"{paging.total} events{of}, oldest stored first"
    scroll = el("div", table(caption, headers, rows, id="events"), class_="scroll")
    return [form, scroll, _pager("/events", paging)]


def status_text(status: int | None) -> str:
    """``422 Unprocessable Entity``; a dropped connection says so."""
    if status is None:
        return "no answer (connection dropped)"
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _requests_table(
    caption: str, records: Sequence[RecordedRequest], keys: Mapping[int, str]
) -> Html:
    headers = ["Time", "Method", "Path", "Status", "People", "Duration", "Fault", "Key"]
    rows: list[list[Part]] = [
        [
            el("a", when(r.started_at), href=f"/requests/{quote(r.request_id, safe='')}"),
            r.method,
            r.path,
            status_text(r.status),
            r.people_count,
            f"{r.duration * 1000:.1f} ms",
            r.fault or "none",
            keys.get(r.key_index, "no valid key") if r.key_index is not None else "no valid key",
        ]
        for r in records
    ]
    return el("div", table(caption, headers, rows, id="requests"), class_="scroll")


def requests_page(
    records: Sequence[RecordedRequest], keys: Mapping[int, str], paging: Paging
) -> Part:
    """The request log, newest first (``records`` is the page, already in that order)."""
    if not records:
        return el("p", "No API requests yet.")
    return [
        _requests_table("API requests, newest first", records, keys),
        _pager("/requests", paging),
    ]


def request_page(
    record: RecordedRequest,
    bodies: Bodies | None,
    errors: Sequence[FieldError],
    keys: Mapping[int, str],
) -> Part:
    """One request: what was known about it, the field errors by person, body and answer."""
    key = keys.get(record.key_index, "") if record.key_index is not None else "no valid key"
    facts = {
        "Time": when(record.started_at),
        "Method": record.method,
        "Path": record.path,
        "Status": status_text(record.status),
        "People in the body": str(record.people_count),
        "Duration": f"{record.duration * 1000:.1f} ms",
        "Fault injected": record.fault or "none",
        "Stored data": "yes" if record.stored else "no",
        "Key": key,
        "Request id": record.request_id,
    }
    parts: list[Part] = [el("dl", [[el("dt", k), el("dd", v)] for k, v in facts.items()])]
    if errors:
        parts.append(_errors_table(errors))
    if bodies is None:
        parts.append(el("p", f"The body is no longer kept (the latest {KEPT_BODIES} are)."))
        return parts
    parts += [el("h2", "Request body"), json_block(bodies.request, "Request body")]
    parts.append(el("h2", "Answer"))
    if bodies.answer is None:
        parts.append(el("p", "None: the connection was closed without an answer."))
    else:
        parts.append(json_block(bodies.answer, "Answer body"))
    return parts


def _errors_table(errors: Sequence[FieldError]) -> Html:
    headers = ["Person", "userId (as sent)", "email (as sent)", "Field", "Error"]
    rows = [
        [
            f"people[{e.index}]" if e.index is not None else "the body",
            shown(e.user_id),
            shown(e.email),
            e.field,
            e.message,
        ]
        for e in errors
    ]
    return el(
        "section",
        el("h2", "Field errors", id="field-errors-heading"),
        table("Refused fields, by person", headers, rows, id="field-errors"),
        aria_labelledby="field-errors-heading",
    )


@dataclass(frozen=True)
class KeyRow:
    """One key as the rate-limit page shows it."""

    index: int
    label: str
    permissions: str
    window: RateState | None
    refused: int
    """429 answers this key got."""


def rate_page(
    limit: int | None,
    window: float,
    rows: Sequence[KeyRow],
    latest_429s: Sequence[RecordedRequest],
    policy: str = "fixed",
) -> Part:
    """Each key's current window, and the latest 429 answers."""
    if limit is None:
        intro = "The rate limit is off: no window is counted and no X-RateLimit headers are sent."
    else:
        kept = {"fixed": "fixed windows", "sliding": "a sliding window", "bucket": "a token bucket"}
        intro = f"{limit} requests per {window:g} s window, per key ({kept.get(policy, policy)})."
    note = "A key is shown by its number and a fingerprint (SHA-256, 8 hex digits), never itself."
    headers = ["Key", "Permissions", "Used", "Remaining", "Resets", "429 answers"]
    now = dt.datetime.now(dt.UTC).timestamp()
    table_rows = [_key_row(row, limit, now) for row in rows]
    parts: list[Part] = [el("p", intro), el("p", note)]
    parts.append(table("Windows per key", headers, table_rows, id="windows"))
    parts.append(el("h2", "Latest 429 answers"))
    if latest_429s:
        keys = {row.index: row.label for row in rows}
        parts.append(_requests_table("429 answers, newest first", latest_429s, keys))
    else:
        parts.append(el("p", "None."))
    return parts


def _key_row(row: KeyRow, limit: int | None, now: float) -> list[Part]:
    if limit is None:
        counts: list[Part] = ["off", "off", "off"]
    elif row.window is None:
        counts = ["0", str(limit), "no window open"]
    else:
        seconds = max(0.0, row.window.reset - now)
        reset = [when(row.window.reset), f" (in {seconds:.0f} s)"]
        counts = [str(limit - row.window.remaining), str(row.window.remaining), reset]
    return [row.label, row.permissions, *counts, str(row.refused)]


def faults_page(
    fields: Sequence[FormField],
    values: Mapping[str, str],
    down: bool,
    notice: str = "",
    error: str = "",
) -> Part:
    """The fault settings as a form, a button that turns them off, and "clear data"."""
    parts: list[Part] = []
    if error:
        parts.append(el("div", el("p", "Not saved: ", error), class_="error", role="alert"))
    if notice:
        parts.append(el("div", el("p", notice), class_="notice", role="status"))
    state = "down (an outage of the faults is under way)" if down else "up"
    parts.append(el("p", f"The server is {state}. The web view does not count as a request."))
    inputs = [_input(f, values.get(f.name, "")) for f in fields]
    parts.append(
        el(
            "form",
            el("fieldset", el("legend", "Fault settings of API requests"), inputs),
            el("button", "Save faults", type="submit"),
            method="post",
            action="/faults",
            id="faults-form",
        )
    )
    parts.append(_button_form("/faults/off", "Switch every fault off"))
    parts.append(el("h2", "Data"))
    parts.append(el("p", "Delete every stored person and forget the request log (keys stay)."))
    parts.append(_button_form("/clear", "Clear data"))
    return parts


def _button_form(action: str, label: str) -> Html:
    return el("form", el("button", label, type="submit"), method="post", action=action)


def _input(field: FormField, value: str) -> Html:
    hint_id = f"{field.name}-hint"
    hint = field.hint + (" Empty: none." if field.optional else "")
    common: dict[str, Any] = {"id": field.name, "name": field.name, "aria_describedby": hint_id}
    if field.kind == "choice":
        options = [el("option", c, value=c, selected=c == value) for c in field.choices]
        if field.optional:
            options.insert(0, el("option", "(none)", value="", selected=value == ""))
        control = el("select", options, **common)
    elif field.kind == "flag":
        control = el("input", type="checkbox", checked=value == "on", **common)
    else:
        step = "1" if field.kind == "integer" else "any"
        control = el("input", type="number", step=step, value=value, **common)
    return el(
        "div",
        el("label", field.name, for_=field.name),
        el("span", hint, id=hint_id, class_="hint"),
        control,
        class_="field",
    )


def message_page(text: str) -> Part:
    """The body of an error page (404, 403, ...)."""
    return [el("p", text), el("p", el("a", "Back to the people", href="/"))]
