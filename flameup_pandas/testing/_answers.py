"""The bodies the server answers with: the three documented error shapes and JSON encoding.

Flameup documents three error body shapes and a client must read them all, so the server
uses each where the docs show it:

* auth, permission, not found, 500: ``{"success": false, "error": {"type", "message"},
  "request_id"}``
* malformed requests (400), rate limit (429), 503: ``{"error": "...", "message": "..."}``
* validation (422): ``{"error": {"code": "validation_error", "message",
  "details": {"fields": {...}}}}``
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson

__all__ = [
    "Answer",
    "envelope_error",
    "maintenance_page",
    "rate_limited",
    "simple_error",
    "validation_error",
]
MAINTENANCE_PAGE = (
    "<!DOCTYPE html><html><head><title>Down for maintenance</title></head>"
    "<body><h1>We will be back soon</h1><p>Scheduled maintenance is under way.</p></body></html>"
)

RATE_LIMITED = {
    "error": "Rate limit exceeded",
    "message": "Too many requests. Please try again later.",
}


@dataclass
class Answer:
    """An HTTP answer before encoding: status, JSON-able body (or a page's text), extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def status_line(self) -> str:
        return f"{self.status} {HTTPStatus(self.status).phrase}"

    def encode(self) -> bytes:
        if isinstance(self.body, str) and self.content_type != "application/json":
            return self.body.encode()
        return orjson.dumps(self.body)


def envelope_error(status: int, kind: str, message: str, request_id: str) -> Answer:
    body = {"success": False, "error": {"type": kind, "message": message}, "request_id": request_id}
    return Answer(status, body)


def simple_error(status: int, error: str, message: str) -> Answer:
    return Answer(status, {"error": error, "message": message})


def validation_error(message: str, fields: dict[str, str]) -> Answer:
    details = {"fields": fields}
    return Answer(
        422, {"error": {"code": "validation_error", "message": message, "details": details}}
    )


def rate_limited(headers: dict[str, str]) -> Answer:
    return Answer(429, dict(RATE_LIMITED), headers)


def maintenance_page() -> Answer:
    """What a proxy in front of the API answers during maintenance: 200, HTML, nothing stored."""
    return Answer(200, MAINTENANCE_PAGE, content_type="text/html; charset=utf-8")
