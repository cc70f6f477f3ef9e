"""Reading the web view's HTML in tests: the elements, links, tables and text of a page."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

import requests

from flameup_pandas.testing import FlameupServer


@dataclass
class Page:
    """What a browser would build from the page: its tags, links, texts and tables."""

    status: int
    html: str
    tags: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)
    tables: dict[str, list[list[str]]] = field(default_factory=dict)
    """Each table by id (or caption): its body rows, the text of each cell."""
    texts: list[str] = field(default_factory=list)

    @property
    def links(self) -> list[str]:
        return [str(a["href"]) for tag, a in self.tags if tag == "a" and a.get("href")]

    def column(self, table: str, index: int) -> list[str]:
        return [row[index] for row in self.tables[table]]


class _Reader(HTMLParser):
    def __init__(self, page: Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.table: str | None = None
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.in_body = False
        self.caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.table = dict(attrs).get("id") or ""
        elif tag == "caption":
            self.caption = True
        elif tag == "tbody":
            self.in_body = True
            self.page.tables.setdefault(self.table or "", [])
        elif tag == "tr" and self.in_body:
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.row is not None and self.cell is not None:
            self.row.append("".join(self.cell))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.page.tables[self.table or ""].append(self.row)
            self.row = None
        elif tag == "tbody":
            self.in_body = False
        elif tag == "caption":
            self.caption = False

    def handle_data(self, data: str) -> None:
        self.page.texts.append(data)
        if self.cell is not None:
            self.cell.append(data)
        if self.caption and not self.table:
            self.table = data


def read(answer: requests.Response) -> Page:
    page = Page(answer.status_code, answer.text)
    _Reader(page).feed(answer.text)
    return page


def get(server: FlameupServer, path: str, **kwargs: object) -> Page:
    """GET a page of the web view (``path`` without the leading slash) and read it."""
    answer = requests.get(server.ui_url + path.lstrip("/"), timeout=10, **kwargs)  # type: ignore[arg-type]
    assert answer.headers["Content-Type"].startswith("text/html"), answer.headers
    return read(answer)
