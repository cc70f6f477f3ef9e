"""The web view over plain HTTP: pages, escaping, the key never shown, and the form guards."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
from collections import deque
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from flameup_pandas.testing import Faults, FlameupServer
from flameup_pandas.testing._faults_form import form_fields, form_values, parse_form
from flameup_pandas.testing._records import Bodies, RecordedRequest, RequestLog
from flameup_pandas.testing._ui import fingerprint

from .conftest import Api
from .html_pages import Page, get, read

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</td></tr></table><h1>forged</h1>",
    "&lt;already escaped&gt; & ampersand",
    "' onmouseover='alert(1)",
]
PAGES = ["/", "/events", "/requests", "/rate-limit", "/faults"]


def own_origin(server: FlameupServer) -> str:
    return server.ui_url.rstrip("/")


def post_form(
    server: FlameupServer, path: str, origin: str | None, **data: str
) -> requests.Response:
    headers = {} if origin is None else {"Origin": origin}
    return requests.post(
        server.ui_url + path.lstrip("/"),
        data=data,
        headers=headers,
        allow_redirects=False,
        timeout=10,
    )


def person_page(server: FlameupServer, user_id: str) -> Page:
    person = server.person(user_id)
    assert person is not None
    return get(server, f"/people/{person['id']}")


# the pages


@pytest.mark.parametrize("path", PAGES)
def test_each_page_is_html_with_a_heading_and_no_script_allowed(
    flameup_server: FlameupServer, path: str
) -> None:
    answer = requests.get(flameup_server.ui_url + path.lstrip("/"), timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert "script-src" not in answer.headers["Content-Security-Policy"]
    page = read(answer)
    assert [t for t, _ in page.tags].count("h1") == 1
    assert ("main", {"id": "main", "tabindex": "-1"}) in page.tags
    assert not [t for t, _ in page.tags if t == "script"]


def test_ui_url_is_the_root_beside_the_api(flameup_server: FlameupServer) -> None:
    assert flameup_server.ui_url == flameup_server.base_url.replace("/api/v1", "/")


def test_people_table_shows_known_and_custom_traits(
    api: Api, flameup_server: FlameupServer
) -> None:
    api.batch(
        {
            "userId": "u1",
            "email": "ada@example.com",
            "traits": {"first_name": "Ada", "plan": "pro"},
        },
        {"userId": "u2", "traits": {"last_name": "Hopper", "seats": 3}},
    )
    page = get(flameup_server, "/")
    assert page.column("people", 0) == ["u1", "u2"]
    header = [t for t in page.texts if t.endswith("(custom)")]
    assert header == ["plan (custom)", "seats (custom)"]
    u1, u2 = page.tables["people"]
    assert "ada@example.com" in u1 and "Ada" in u1 and "pro" in u1
    assert "Hopper" in u2 and "3" in u2


def test_people_pages_fifty_at_a_time_and_search_finds_by_id_email_or_name(
    api: Api, flameup_server: FlameupServer
) -> None:
    people = [{"userId": f"u{i:03}", "email": f"p{i}@example.com"} for i in range(100)]
    api.batch(*people)
    api.batch(*[{"userId": f"u{i:03}"} for i in range(100, 120)])
    api.batch({"userId": "grace", "traits": {"last_name": "Hopper"}})
    first, third = get(flameup_server, "/"), get(flameup_server, "/?page=3")
    assert len(first.tables["people"]) == 50
    assert third.column("people", 0) == [*(f"u{i}" for i in range(100, 120)), "grace"]
    assert "/?page=2" in third.links
    assert get(flameup_server, "/?search=P7@EXAMPLE").column("people", 0) == ["u007"]
    assert get(flameup_server, "/?search=hopp").column("people", 0) == ["grace"]
    assert get(flameup_server, "/?search=u11").column("people", 0) == [f"u11{i}" for i in range(10)]
    assert "No person matches 'nobody'." in get(flameup_server, "/?search=nobody").texts


def test_a_bad_page_number_is_a_clear_400(flameup_server: FlameupServer) -> None:
    page = get(flameup_server, "/requests?page=zero")
    assert page.status == 400
    assert "page must be a whole number from 1, not 'zero'" in page.texts


def test_person_page_shows_every_field_attributes_and_the_requests_that_touched_them(
    api: Api, flameup_server: FlameupServer
) -> None:
    api.batch({"userId": "u1", "email": "ada@example.com", "traits": {"plan": "pro"}})
    api.batch({"userId": "someone-else"})
    api.call("PUT", "/people/u1", json={"traits": {"plan": "team"}})
    api.batch({"email": "ADA@example.com", "traits": {"first_name": "Ada"}})
    page = person_page(flameup_server, "u1")
    stored = flameup_server.person("u1")
    assert stored is not None
    for name in ("id", "external_id", "created_at", "updated_at", "first_name", "phone"):
        assert name in page.texts
    assert stored["created_at"] in page.texts and stored["updated_at"] in page.texts
    assert page.tables["Custom traits"] == [["plan", "team"]]
    touched = [row[2] for row in page.tables["requests"]]
    assert touched == ["/api/v1/people/batch", "/api/v1/people/u1", "/api/v1/people/batch"]
    ids = {r.request_id for r in flameup_server.requests}
    linked = {link.rpartition("/")[2] for link in page.links if link.startswith("/requests/")}
    assert len(linked) == 3 and linked < ids


def test_unknown_person_or_request_is_a_404_page(flameup_server: FlameupServer) -> None:
    assert get(flameup_server, "/people/nobody").status == 404
    assert get(flameup_server, "/requests/req_nothing").status == 404
    assert get(flameup_server, "/no/such/page").status == 404


def test_request_log_is_newest_first_with_status_people_duration_fault_and_key(
    api: Api, flameup_server: FlameupServer
) -> None:
    api.batch({"userId": "a"}, {"userId": "b"})
    flameup_server.set_faults(Faults(error_rate=1.0, seed=1))
    api.batch({"userId": "c"})
    flameup_server.set_faults(None)
    Api(flameup_server, key=None).batch({"userId": "d"})
    rows = get(flameup_server, "/requests").tables["requests"]
    assert rows[0][3] == "401 Unauthorized"
    assert rows[1][3] in ("500 Internal Server Error", "503 Service Unavailable")
    assert rows[1][6] == "error"
    assert rows[2][1:5] == ["POST", "/api/v1/people/batch", "200 OK", "2"]
    assert rows[2][5].endswith(" ms") and rows[2][6] == "none"
    assert rows[2][7] == f"key 1 · {fingerprint(flameup_server.api_key)}"
    assert rows[0][7] == "no valid key"


def test_request_page_pretty_prints_body_and_answer(
    api: Api, flameup_server: FlameupServer
) -> None:
    api.batch({"userId": "u1", "traits": {"plan": "pro"}})
    record = flameup_server.requests[-1]
    page = get(flameup_server, f"/requests/{record.request_id}")
    blocks = [t for t in page.texts if t.startswith("{\n")]
    assert blocks[0].startswith('{\n  "people": [\n    {\n      "userId": "u1"')
    assert '"created_count": 1' in blocks[1]
    assert "200 OK" in page.texts and record.request_id in page.texts


def test_a_422_shows_each_field_error_beside_the_person_it_names(
    api: Api, flameup_server: FlameupServer
) -> None:
    answer = api.batch(
        {"userId": "fine"},
        {"userId": "u2", "email": "not-an-email"},
        {"traits": {"plan": "x"}},
        {"userId": "u4", "traits": {"first_name": 7}},
    )
    assert answer.status_code == 422
    page = get(flameup_server, f"/requests/{flameup_server.requests[-1].request_id}")
    assert page.tables["field-errors"] == [
        ["people[1]", "u2", "not-an-email", "email", "Invalid email format"],
        ["people[2]", "", "", "userId", "Either userId or email is required"],
        ["people[3]", "u4", "", "traits.first_name", "Must be a string"],
    ]


def test_per_person_errors_list_the_refused_people(api: Api, flameup_server: FlameupServer) -> None:
    flameup_server.per_person_errors = True
    api.batch({"userId": "ok"}, {"userId": "bad", "email": "nope"})
    page = get(flameup_server, f"/requests/{flameup_server.requests[-1].request_id}")
    assert page.tables["field-errors"] == [
        ["people[1]", "bad", "nope", "email", "Invalid email format"]
    ]


def test_a_dropped_connection_shows_no_answer(api: Api, flameup_server: FlameupServer) -> None:
    flameup_server.set_faults(Faults(drop_rate=1.0, seed=1))
    with pytest.raises(requests.ConnectionError):
        api.batch({"userId": "u1"})
    page = get(flameup_server, f"/requests/{flameup_server.requests[-1].request_id}")
    assert "no answer (connection dropped)" in page.texts
    assert "None: the connection was closed without an answer." in page.texts


def test_only_the_latest_bodies_are_kept() -> None:
    log = RequestLog(kept_bodies=2)
    for n in range(3):
        record = RecordedRequest("POST", "/p", 200, 1, 1, 0.0, 0.0, None, f"r{n}", True)
        log.add(record, Bodies(b"{}", b"{}"))
    assert list(log.kept_bodies()) == ["r1", "r2"]
    assert log.bodies("r0") is None
    assert len(log.snapshot()) == 3


def test_the_view_is_not_an_api_request(flameup_server: FlameupServer) -> None:
    for path in PAGES:
        get(flameup_server, path)
    assert flameup_server.requests == []


def test_rate_limit_page_shows_each_keys_window_and_the_429s() -> None:
    with FlameupServer(rate_limit=3) as server:
        api = Api(server)
        statuses = [api.batch({"userId": f"u{i}"}).status_code for i in range(4)]
        second = server.add_key()
        Api(server, key=second).batch({"userId": "x"})
        page = get(server, "/rate-limit")
    assert statuses == [200, 200, 200, 429]
    assert "3 requests per 60 s window, per key (fixed windows)." in page.texts
    first_row, second_row = page.tables["windows"]
    assert first_row[0] == f"key 1 · {fingerprint(server.api_key)}"
    assert first_row[2:4] == ["3", "0"] and first_row[5] == "1"
    assert second_row[0] == f"key 2 · {fingerprint(second)}"
    assert second_row[2:4] == ["1", "2"] and second_row[5] == "0"
    assert [row[3] for row in page.tables["requests"]] == ["429 Too Many Requests"]


@pytest.mark.parametrize(
    ("policy", "named"), [("sliding", "a sliding window"), ("bucket", "a token bucket")]
)
def test_rate_limit_page_names_the_policy_and_its_state(policy: Any, named: str) -> None:
    with FlameupServer(rate_limit=3, rate_policy=policy) as server:
        Api(server).batch({"userId": "u1"})
        page = get(server, "/rate-limit")
    assert f"3 requests per 60 s window, per key ({named})." in page.texts
    assert page.tables["windows"][0][2:4] == ["1", "2"]


def test_rate_limit_page_says_when_the_limit_is_off() -> None:
    with FlameupServer(rate_limit=None) as server:
        page = get(server, "/rate-limit")
    assert any(t.startswith("The rate limit is off") for t in page.texts)


# escaping


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_ids_traits_and_trait_names_are_shown_as_text(
    api: Api, flameup_server: FlameupServer, hostile: str
) -> None:
    api.batch({"userId": hostile, "traits": {"first_name": hostile, hostile: hostile}})
    api.batch({"userId": "other", "email": hostile})  # a 422 that quotes the value
    pages = [
        get(flameup_server, "/"),
        get(flameup_server, "/requests"),
        person_page(flameup_server, hostile),
        *(get(flameup_server, f"/requests/{r.request_id}") for r in flameup_server.requests),
    ]
    for page in pages:
        tags = [t for t, _ in page.tags]
        assert tags.count("h1") == 1 and "script" not in tags and "img" not in tags
        assert not any(name.startswith("on") for _, a in page.tags for name in a)
    people, person = pages[0], pages[2]
    assert people.tables["people"][0][0] == hostile
    assert people.tables["people"][0][3] == hostile  # first_name
    assert f"{hostile} (custom)" in people.texts
    assert [hostile, hostile] in person.tables["Custom traits"]
    assert pages[-1].tables["field-errors"][0][2] == hostile


@settings(max_examples=30, deadline=None)
@given(value=st.text(min_size=1, max_size=40).filter(lambda s: s == s.strip() and "\r" not in s))
def test_any_trait_value_reads_back_as_the_same_text(value: str) -> None:
    with FlameupServer(rate_limit=None) as server:
        Api(server).batch({"userId": "u", "traits": {"first_name": value, "note": value}})
        people = get(server, "/")
    row = people.tables["people"][0]
    assert row[3] == value
    assert row[-2] == value
    assert not [t for t, _ in people.tags if t == "script"]


# the key


def test_no_page_url_or_redirect_holds_the_key() -> None:
    with FlameupServer(rate_limit=5, per_person_errors=True) as server:
        key, secret = server.api_key, server.api_key.rpartition(".")[2]
        api = Api(server)
        api.batch({"userId": "u1", "traits": {"leak": key, "half": f"secret={secret}"}})
        api.batch({"userId": key, "email": "x"})
        api.call("GET", f"/people/{key}")
        Api(server, key=f"Bearer {key}").batch({"userId": "u2"})
        for _ in range(5):
            api.batch({"userId": "u3"})
        post_form(server, "/faults", own_origin(server), error_rate="0.5", seed="1")
        visited = crawl(server)
        extra = get(server, f"/?search={key}")
    assert len(visited) > 10
    for url, html in visited.items():
        assert key not in url and secret not in url
        assert key not in html and secret not in html, url
    assert key not in extra.html and secret not in extra.html
    assert any("[API key 1]" in html for html in visited.values())


def crawl(server: FlameupServer, limit: int = 300) -> dict[str, str]:
    """Every page reachable by following the view's own links (and redirects)."""
    root = server.ui_url
    queue, seen = deque([root]), {}
    while queue and len(seen) < limit:
        url = queue.popleft()
        if url in seen:
            continue
        answer = requests.get(url, timeout=10)
        seen[url] = answer.text
        for r in answer.history:
            assert "Location" in r.headers and server.api_key not in r.headers["Location"]
        if not answer.headers["Content-Type"].startswith("text/html"):
            continue
        for link in read(answer).links:
            target = urljoin(url, link)
            if urlsplit(target).netloc == urlsplit(root).netloc and target not in seen:
                queue.append(target)
    return seen


# the forms


def test_faults_are_changed_by_the_form_from_the_page_itself(flameup_server: FlameupServer) -> None:
    answer = post_form(
        flameup_server, "/faults", own_origin(flameup_server), error_rate="0.25", seed="7"
    )
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/faults?done=saved")
    assert flameup_server.faults == Faults(error_rate=0.25, seed=7)
    page = get(flameup_server, "/faults?done=saved")
    assert "Faults saved." in page.texts
    assert (
        "input",
        {
            "type": "number",
            "step": "any",
            "value": "0.25",
            "id": "error_rate",
            "name": "error_rate",
            "aria-describedby": "error_rate-hint",
        },
    ) in page.tags
    off = post_form(flameup_server, "/faults/off", own_origin(flameup_server))
    assert off.status_code == 303 and flameup_server.faults == Faults()


@pytest.mark.parametrize(
    "origin", [None, "null", "http://evil.example", "http://127.0.0.1:1", "https://127.0.0.1"]
)
@pytest.mark.parametrize("path", ["/faults", "/faults/off", "/clear"])
def test_forms_refuse_any_other_origin(
    api: Api, flameup_server: FlameupServer, origin: str | None, path: str
) -> None:
    api.batch({"userId": "kept"})
    flameup_server.set_faults(Faults(latency=0.001))
    answer = post_form(flameup_server, path, origin, error_rate="1")
    assert answer.status_code == 403
    assert "a change must come from this page" in read(answer).html
    assert flameup_server.faults == Faults(latency=0.001)
    assert len(flameup_server.people()) == 1 and flameup_server.requests


def test_localhost_is_its_own_origin_too(flameup_server: FlameupServer) -> None:
    url = flameup_server.ui_url.replace("127.0.0.1", "localhost") + "faults"
    origin = own_origin(flameup_server).replace("127.0.0.1", "localhost")
    answer = requests.post(
        url, data={"seed": "3"}, headers={"Origin": origin}, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 303 and flameup_server.faults == Faults(seed=3)


def test_a_foreign_host_name_gets_no_page(flameup_server: FlameupServer) -> None:
    answer = requests.get(flameup_server.ui_url, headers={"Host": "evil.example"}, timeout=10)
    assert answer.status_code == 421


def test_a_bad_fault_value_is_refused_with_the_reason(flameup_server: FlameupServer) -> None:
    origin = own_origin(flameup_server)
    for data, reason in [
        ({"error_rate": "2"}, "error_rate must be between 0 and 1, got 2.0"),
        ({"storm_length": "1.5"}, "storm_length: '1.5' is not a whole number"),
        ({"latency": "nan"}, "latency: 'nan' is not a finite number"),
        ({"down_mode": "explode"}, "down_mode: 'explode' is not one of drop, refuse"),
    ]:
        answer = post_form(flameup_server, "/faults", origin, **data)
        page = read(answer)
        assert answer.status_code == 400
        assert reason in "".join(page.texts)
        assert ("div", {"class": "error", "role": "alert"}) in page.tags
    assert flameup_server.faults == Faults()


def test_clear_data_deletes_people_and_the_log_but_keeps_the_key(
    api: Api, flameup_server: FlameupServer
) -> None:
    api.batch({"userId": "a"}, {"userId": "b"})
    answer = post_form(flameup_server, "/clear", own_origin(flameup_server))
    assert answer.status_code == 303
    assert len(flameup_server.people()) == 0 and flameup_server.requests == []
    assert (
        "Data cleared: 2 people deleted, request log emptied."
        in get(flameup_server, answer.headers["Location"]).texts
    )
    assert api.batch({"userId": "c"}).status_code == 200


def test_the_form_has_an_input_for_every_fault_and_reads_back_what_it_shows() -> None:
    names = [f.name for f in form_fields()]
    assert names == list(Faults.__dataclass_fields__)
    assert all(f.hint for f in form_fields())
    for faults in [
        Faults(),
        Faults(error_rate=0.1, drop_rate=0.2, latency=0.05, seed=9),
        Faults(storm_rate=0.5, storm_length=2, storm_retry_after=0.25),
        Faults(down_after=3, down_for=1.5, down_mode="refuse"),
    ]:
        assert parse_form(form_values(faults)) == faults


def test_serve_prints_the_web_view_url_beside_the_api() -> None:
    command = [sys.executable, "-m", "flameup_pandas.testing", "--rate-limit", "off"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        reader = threading.Thread(target=lambda: [lines.put(x) for x in process.stdout])
        reader.start()
        try:
            printed = dict(lines.get(timeout=60).strip().split("=", 1) for _ in range(3))
            base, ui = printed["FLAMEUP_BASE_URL"], printed["FLAMEUP_UI_URL"]
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", ui)
            assert base == ui + "api/v1"
            assert "<h1>People</h1>" in requests.get(ui, timeout=10).text
        finally:
            process.terminate()
            process.wait(timeout=20)
            reader.join(timeout=20)
    assert process.returncode == 0


def test_during_an_outage_the_view_still_answers_and_can_end_it(
    api: Api, flameup_server: FlameupServer
) -> None:
    flameup_server.set_faults(Faults(down_after=1))
    assert api.batch({"userId": "before"}).status_code == 200
    with pytest.raises(requests.ConnectionError):
        api.batch({"userId": "during"})
    for path in PAGES:
        assert get(flameup_server, path).status == 200
    assert "The server is down (an outage of the faults is under way)." in " ".join(
        get(flameup_server, "/faults").texts
    )
    assert post_form(flameup_server, "/faults/off", own_origin(flameup_server)).status_code == 303
    assert api.batch({"userId": "after"}).status_code == 200
    assert [r.fault for r in flameup_server.requests] == [None, "down", None]
