"""HTML building blocks of the web view: elements, the page shell, tables, JSON, times.

Markup is built with `el()`, which escapes every plain string it is given (text and
attribute values alike) and inserts only `Html` as is. Data never becomes `Html` without
passing through `html.escape`, so a trait value such as ``<script>`` is shown, never run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from html import escape
from string import Template
from typing import Any, TypeAlias

import orjson

__all__ = [
    "CSS",
    "Html",
    "Part",
    "el",
    "json_block",
    "page",
    "pretty_json",
    "render",
    "shown",
    "table",
    "when",
]


class Html(str):
    """Markup that is already safe: inserted as is, where a plain ``str`` is escaped."""


Part: TypeAlias = "Html | str | int | float | Sequence[Part] | None"

_VOID = frozenset({"input", "meta", "link", "br"})


def render(part: Part) -> Html:
    """Markup for a part: `Html` as is, text escaped, sequences joined, None empty.

    >>> render(["a < b", Html("<br>"), None, 3])
    'a &lt; b<br>3'
    """
    if isinstance(part, Html):
        return part
    if part is None:
        return Html("")
    if isinstance(part, str | int | float):
        return Html(escape(str(part)))
    return Html("".join(render(p) for p in part))


def el(tag: str, *children: Part, **attrs: str | int | bool | None) -> Html:
    """One element; ``class_`` is ``class``, ``aria_label`` is ``aria-label``.

    An attribute that is None or False is left out, True writes it bare.

    >>> el("a", "<b>", href="/p?x=1&y=2", aria_current=None)
    '<a href="/p?x=1&amp;y=2">&lt;b&gt;</a>'
    """
    parts = [tag]
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        parts.append(name if value is True else f'{name}="{escape(str(value), quote=True)}"')
    opening = f"<{' '.join(parts)}>"
    if tag in _VOID:
        return Html(opening)
    return Html(f"{opening}{render(list(children))}</{tag}>")


def table(
    caption: Part, headers: Sequence[Part], rows: Iterable[Sequence[Part]], **attrs: str
) -> Html:
    """A table whose first column heads its row (``scope="row"``), for screen readers."""
    head = el("tr", [el("th", h, scope="col") for h in headers])
    body = [
        el("tr", el("th", row[0], scope="row"), [el("td", cell) for cell in row[1:]])
        for row in rows
    ]
    return el("table", el("caption", caption), el("thead", head), el("tbody", body), **attrs)


def shown(value: Any) -> str:
    """A stored value as text: strings as they are, other values as compact JSON.

    >>> shown("Ada"), shown(3), shown({"a": [1]}), shown(None)
    ('Ada', '3', '{"a":[1]}', '')
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def pretty_json(raw: bytes) -> str:
    """JSON indented by two spaces; anything else as text (bad bytes replaced)."""
    try:
        return orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", errors="replace")


def json_block(raw: bytes, label: str) -> Html:
    """A focusable ``<pre>`` (so the keyboard can scroll it) holding pretty JSON."""
    return el("pre", el("code", pretty_json(raw)), tabindex=0, aria_label=label)


def when(unix: float) -> Html:
    """A ``<time>`` in UTC to the millisecond."""
    moment = dt.datetime.fromtimestamp(unix, dt.UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"
    return el("time", text, datetime=moment.isoformat(timespec="milliseconds"))


SECTIONS = (
    ("/", "People"),
    ("/events", "Events"),
    ("/requests", "Requests"),
    ("/rate-limit", "Rate limit"),
    ("/faults", "Faults"),
)

_SHELL = Template(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title - Flameup local server</title>
<link rel="stylesheet" href="/ui.css">
<link rel="icon" href="data:,">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
<p class="brand">Flameup local server</p>
<nav aria-label="Sections"><ul>$nav</ul></nav>
</header>
<main id="main" tabindex="-1">
<h1>$title</h1>
$content
</main>
<footer><p>The API answers at <code>$api</code>. This view is for tests and demos.</p></footer>
</body>
</html>
"""
)


def page(title: str, section: str, content: Part, api_url: str) -> str:
    """A whole page: the navigation (``section`` marked current), an h1, the content."""
    nav = [
        el("li", el("a", name, href=href, aria_current="page" if href == section else None))
        for href, name in SECTIONS
    ]
    return _SHELL.substitute(
        title=render(title), nav=render(nav), content=render(content), api=render(api_url)
    )


CSS = """
:root { font-family: system-ui, sans-serif; line-height: 1.45; color: #111; background: #fff; }
body { margin: 0 auto; max-width: 80rem; padding: 0 1rem 2rem; }
a { color: #0b4f9c; }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible,
pre:focus-visible, main:focus-visible { outline: 3px solid #111; outline-offset: 2px; }
.skip { position: absolute; left: -999rem; }
.skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .5rem; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 1rem 2rem;
         border-bottom: 2px solid #111; }
.brand { font-weight: 700; margin: .75rem 0; }
nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: 1rem; margin: 0; padding: 0; }
nav a[aria-current="page"] { font-weight: 700; text-decoration-thickness: 3px; }
h1 { font-size: 1.6rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92rem; }
.scroll { overflow-x: auto; }
caption { text-align: left; font-weight: 600; padding: .25rem 0; }
th, td { border: 1px solid #999; padding: .3rem .5rem; text-align: left; vertical-align: top; }
thead th { background: #eee; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f4f4f4; border: 1px solid #999; padding: .75rem; overflow: auto;
      max-height: 36rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
form { margin: 1rem 0; }
.field { margin: .5rem 0; }
.field label { display: block; font-weight: 600; }
.hint { display: block; font-size: .88rem; color: #333; }
input, select, button { font: inherit; padding: .25rem .4rem; }
button { border: 2px solid #111; background: #fff; cursor: pointer; }
.error { border-left: 4px solid #111; padding: .5rem 1rem; background: #fde8e8; }
.notice { border-left: 4px solid #111; padding: .5rem 1rem; background: #e8f4fd; }
.pager { display: flex; gap: 1rem; align-items: baseline; }
footer { margin-top: 3rem; border-top: 1px solid #999; font-size: .88rem; }
"""
