"""A local Flameup server: a real HTTP API on loopback that behaves like the documented one.

Use it to test pipelines offline (what moto is to AWS users)::

    from flameup_pandas.testing import FlameupServer, Faults

    with FlameupServer(rate_limit=None) as server:
        ...  # point a client at server.base_url with server.api_key
        server.people()  # what got stored, as a DataFrame
        server.ui_url  # the same, and every request, in a browser

With pytest, the ``flameup_server`` fixture hands each test a fresh server (a rate limit no test
reaches, announced in the headers).
From a shell: ``flameup-pandas serve`` (or ``python -m flameup_pandas.testing``); ``serve
--env`` prints ``export`` lines for ``eval``. :func:`sample_customers` is the quickstart's table.

Every path outside ``/api`` is the web view (`flameup_pandas.testing._ui`): people, the request
log with bodies and answers, rate-limit windows and a faults form, rendered on the server.

Routes under ``/api/v1``: ``POST /people/batch``, ``POST /people`` (201 when created, 200
when updated), ``GET /people/{id}`` (external id or email), ``PUT /people/{id}`` (traits
merged), ``GET /people?limit&offset&status&search``; events: ``POST /track``, the older
``POST /workspaces/{id}/events`` and ``GET /workspaces/{id}/events?limit&offset&user_id&event&
since&until`` (see ``_event_endpoints``), shown by :meth:`FlameupServer.events` and on the web
view's Events page. An ``{id}`` is one segment of the path as sent, percent-decoded:
``/people/a%2Fb`` is the person ``a/b``, ``/people/%2E%2E`` the person ``..``.

Batch rules: 1 to 100 people, each an object with a ``userId`` (string, at most 255
characters) and/or an ``email`` (at most 254, ``local@domain.tld``, at most 64 before the
``@``), optional ``phone`` (at most 50) and ``traits`` (an object); any other key is
refused. Identity is ``userId`` (stored as ``external_id``) when sent, else email
(case-insensitive, oldest match). Known traits (first_name, last_name, phone, avatar_url,
timezone, locale) are columns, the others go to ``attributes``; traits merge into what is
stored, and a trait sent as null is cleared.
The same person twice in one batch: the first entry creates (or updates) it, the second
updates it; each entry of ``people`` in the answer shows the person right after that entry,
and ``created_count + updated_count`` equals the number of people stored.

By default a batch with any refused person gets 422 and nothing is stored::

    {"error": {"code": "validation_error", "message": "1 of 3 people failed validation",
               "details": {"fields": {"people[2].email": "Invalid email format"}}}}

With ``per_person_errors=True`` the valid people are stored and the answer is 200 with the
documented keys plus ``errors`` (an empty list when none was refused; ``people`` lists only
the stored people, in request order, and may be empty)::

    {"people": [...], "created_count": 1, "updated_count": 0,
     "errors": [{"index": 2,                      # position in the request's people list
                 "userId": "u3",                  # as sent (None if absent or not a string)
                 "email": "not-an-email",         # as sent (None if absent or not a string)
                 "message": "email: Invalid email format",
                 "fields": {"email": "Invalid email format"}}]}  # "person" if not an object

People are answered in the seed shape of the batch page (``external_id``, known traits as
fields, custom traits under ``attributes``); ``person_shape="overview"`` answers them as the
People API overview shows them instead (``userId``, ``email`` and one ``traits`` object).

Other errors use the documented shapes: 401/403/404/500 ``{"success": false, "error":
{"type", "message"}, "request_id"}``; 400/429/503 ``{"error", "message"}``.
"""

from __future__ import annotations

from ._faults import Faults
from ._ratelimit import DOCUMENTED_LIMIT
from ._records import RecordedRequest
from ._samples import sample_customers, write_sample_customers
from ._server import PEOPLE_COLUMNS, FlameupServer
from ._shapes import PERSON_SHAPES
from ._store import ALL_PERMISSIONS

__all__ = [
    "ALL_PERMISSIONS",
    "DOCUMENTED_LIMIT",
    "PEOPLE_COLUMNS",
    "PERSON_SHAPES",
    "Faults",
    "FlameupServer",
    "RecordedRequest",
    "sample_customers",
    "write_sample_customers",
]
