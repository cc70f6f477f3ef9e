"""The web view's Events page: every event, or one person's, linked from the person page."""

from __future__ import annotations

from flameup_pandas.testing import FlameupServer

from .conftest import Api
from .html_pages import get


def test_events_page_lists_events_and_narrows_to_one_person(
    flameup_server: FlameupServer, api: Api
) -> None:
    api.batch({"userId": "u1"})
    for user, name in (("u1", "signed_up"), ("u2", "viewed"), ("u1", "<script>x</script>")):
        body = {"external_id": user, "event": name, "parameters": {"n": 1}}
        assert api.call("POST", "/track", json=body).status_code == 200
    everything = get(flameup_server, "/events")
    assert everything.column("events", 0) == ["signed_up", "viewed", "<script>x</script>"]
    assert "<script>x" not in everything.html
    person = get(flameup_server, f"/people/{flameup_server.person('u1')['id']}")
    [link] = [href for href in person.links if href.startswith("/events?")]
    own = get(flameup_server, link)
    assert own.column("events", 1) == ["u1", "u1"]
    assert "No events of 'nobody'." in get(flameup_server, "/events?user=nobody").texts
