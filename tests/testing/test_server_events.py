"""The local server's events routes: POST /track, the older workspace route, the listing,
under the same key auth, rate limit and fault injection as the people routes."""

from __future__ import annotations

import pytest
import requests

from flameup_pandas.testing import Faults, FlameupServer

from .conftest import Api

STAMP = "2026-03-04T05:06:07+01:00"


def track(api: Api, **body: object) -> requests.Response:
    return api.call("POST", "/track", json=body)


def listing(api: Api, server: FlameupServer, **params: object) -> requests.Response:
    return api.call("GET", f"/workspaces/{server.workspace_id}/events", params=params)


def test_track_stores_the_event_and_answers_its_id(flameup_server: FlameupServer, api: Api) -> None:
    api.batch({"userId": "u1"})
    answer = track(api, external_id="u1", event="purchase", parameters={"n": 2}, timestamp=STAMP)
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True and body["event_id"].startswith("evt_")
    [stored] = flameup_server.events().to_dict("records")
    assert stored["id"] == body["event_id"]
    assert stored["person_id"] == flameup_server.person("u1")["id"]
    assert stored["timestamp"] == "2026-03-04T04:06:07.000000Z"
    assert stored["parameters"] == {"n": 2}
    assert stored["workspace_id"] == flameup_server.workspace_id


def test_aliases_and_the_older_route_answer_the_same_way(
    flameup_server: FlameupServer, api: Api
) -> None:
    assert track(api, userId="u1", event="a", properties={"x": 1}).status_code == 200
    assert track(api, email="a@example.com", event="b").status_code == 200
    old = api.call(
        "POST",
        f"/workspaces/{flameup_server.workspace_id}/events",
        json={"userId": "u2", "event": "c", "properties": {"y": 2}, "timestamp": STAMP},
    )
    assert old.status_code == 200 and old.json()["event_id"].startswith("evt_")
    events = flameup_server.events()
    assert events["user_id"].tolist() == ["u1", "a@example.com", "u2"]
    assert events["parameters"].tolist() == [{"x": 1}, {}, {"y": 2}]
    assert events["person_id"].isna().all()  # tracking does not create people
    wrong = api.call("POST", "/workspaces/nope/events", json={"userId": "u", "event": "e"})
    assert wrong.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event": "e"}, "external_id"),
        ({"external_id": "u"}, "event"),
        ({"external_id": "u", "event": "  "}, "event"),
        ({"external_id": "u", "event": "e" * 256}, "event"),
        ({"external_id": "u", "event": "e", "parameters": [1]}, "parameters"),
        ({"external_id": "u", "event": "e", "timestamp": "yesterday"}, "timestamp"),
        ({"external_id": 7, "event": "e"}, "external_id"),
    ],
)
def test_bad_events_are_refused_and_not_stored(
    flameup_server: FlameupServer, api: Api, body: dict[str, object], field: str
) -> None:
    answer = track(api, **body)
    assert answer.status_code == 422
    assert field in answer.json()["error"]["details"]["fields"]
    assert flameup_server.events().empty


def test_listing_filters_by_user_name_and_time_and_pages(
    flameup_server: FlameupServer, api: Api
) -> None:
    for i in range(5):
        track(api, external_id="u1", event="view", timestamp=f"2026-01-0{i + 1}T00:00:00Z")
    track(api, external_id="u2", event="view", timestamp="2026-01-03T00:00:00Z")
    track(api, external_id="u1", event="buy", timestamp="2026-01-03T00:00:00Z")
    body = listing(api, flameup_server, user_id="u1", event="view").json()
    assert body["total"] == 5 and len(body["events"]) == 5
    window = listing(
        api, flameup_server, since="2026-01-02T00:00:00Z", until="2026-01-03T01:00:00+01:00"
    ).json()
    assert [e["timestamp"][:10] for e in window["events"]] == ["2026-01-02"] + ["2026-01-03"] * 3
    page = listing(api, flameup_server, user_id="u1", limit=2, offset=4).json()
    assert page["total"] == 6 and [e["event"] for e in page["events"]] == ["view", "buy"]
    assert listing(api, flameup_server, since="soon").status_code == 422
    assert listing(api, flameup_server, limit=0).status_code == 422
    other = api.call("GET", "/workspaces/other/events")
    assert other.status_code == 404


def test_events_need_a_key_with_the_events_permissions(
    flameup_server: FlameupServer, api: Api
) -> None:
    people_only = Api(flameup_server, flameup_server.add_key(["people:read", "people:write"]))
    nobody = Api(flameup_server, key=None)
    try:
        assert track(nobody, external_id="u", event="e").status_code == 401
        assert track(people_only, external_id="u", event="e").status_code == 403
        assert listing(people_only, flameup_server).status_code == 403
        assert flameup_server.events().empty
    finally:
        people_only.close()
        nobody.close()


def test_a_stored_then_dropped_answer_keeps_the_event(
    flameup_server: FlameupServer, api: Api
) -> None:
    flameup_server.set_faults(Faults(drop_after_store_rate=1.0))
    with pytest.raises(requests.ConnectionError):
        track(api, external_id="u1", event="e", timestamp=STAMP)
    flameup_server.set_faults(None)
    assert len(flameup_server.events()) == 1
    [record] = [r for r in flameup_server.requests if r.path.endswith("/track")]
    assert record.stored and record.fault == "drop_after_store" and record.status is None


def test_errors_before_the_store_keep_nothing_and_after_it_keep_the_event(
    flameup_server: FlameupServer, api: Api
) -> None:
    flameup_server.set_faults(Faults(error_rate=1.0, seed=3))
    assert track(api, external_id="u1", event="e").status_code in (500, 503)
    assert flameup_server.events().empty
    flameup_server.set_faults(Faults(error_after_store_rate=1.0))
    assert track(api, external_id="u1", event="e").status_code == 500
    assert len(flameup_server.events()) == 1


def test_events_count_against_the_rate_limit(flameup_server_factory: object) -> None:
    server = flameup_server_factory(rate_limit=2, rate_window=60.0)  # type: ignore[operator]
    api = Api(server)
    try:
        statuses = [track(api, external_id="u", event="e").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert len(server.events()) == 2
    finally:
        api.close()
