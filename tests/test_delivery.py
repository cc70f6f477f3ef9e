"""The delivery engine against the local server: split retries, lost answers, 429s, order."""

from __future__ import annotations

import logging

import pytest

from flameup_pandas import AuthenticationError, FlameupClient, RetryPolicy
from flameup_pandas._send.client import Answer
from flameup_pandas._send.delivery import Deliverer, PersonOutcome, is_batch_answer, read_success
from flameup_pandas._send.pacing import RateLimiter
from flameup_pandas.testing import Faults, FlameupServer

from .conftest import both_shapes

FAST = RetryPolicy(backoff_factor=0.01, backoff_max=0.05)


def people(n: int, start: int = 0) -> list[dict]:
    return [
        {"userId": f"u{i}", "email": f"p{i}@example.com", "traits": {"n": i}}
        for i in range(start, start + n)
    ]


def deliverer(
    server: FlameupServer,
    *,
    concurrency: int = 1,
    retry: RetryPolicy = FAST,
    rate: float | None = None,
) -> Deliverer:
    client = FlameupClient(server.api_key, server.base_url)
    return Deliverer(
        client, limiter=RateLimiter(rate), retry=retry, concurrency=concurrency, seed=1
    )


def test_one_bad_person_is_isolated_and_the_rest_delivered(flameup_server):
    batch = people(100)
    batch[37]["email"] = "not an email"
    d = deliverer(flameup_server)
    outcomes = d.send(batch)
    statuses = [o.status for o in outcomes]
    assert statuses.count("created") == 99
    assert statuses[37] == "rejected"
    assert "email" in outcomes[37].error
    assert len(flameup_server.people()) == 99


def test_named_bad_people_cost_one_extra_request(flameup_server):
    batch = people(100)
    for i in (3, 50, 99):
        batch[i]["email"] = "broken"
    d = deliverer(flameup_server)
    outcomes = d.send(batch)
    assert [i for i, o in enumerate(outcomes) if o.status == "rejected"] == [3, 50, 99]
    # the 422 names people[3], people[50], people[99]: reject them, resend the 97 once
    assert d.stats.requests == 2


def test_unnamed_rejections_split_in_halves(flameup_server):
    class Anonymous(FlameupClient):
        def post_batch(self, body):
            answer = super().post_batch(body)
            if answer.status == 422:  # a server that names nobody
                object.__setattr__(answer, "body", {"error": "Unprocessable", "message": "bad"})
            return answer

    batch = people(8)
    batch[5]["email"] = "broken"
    d = Deliverer(
        Anonymous(flameup_server.api_key, flameup_server.base_url),
        limiter=RateLimiter(None),
        retry=FAST,
    )
    outcomes = d.send(batch)
    assert [o.status for o in outcomes] == ["created"] * 5 + ["rejected"] + ["created"] * 2
    # 8 -> 4 + 4 -> (2 + 2) -> (1 + 1): 1 + 2 + 2 + 2 requests
    assert d.stats.requests == 7
    assert len(flameup_server.people()) == 7


def test_per_person_errors_are_read_without_splitting(flameup_server_factory):
    server = flameup_server_factory(rate_limit=None, per_person_errors=True)
    batch = people(10)
    batch[4]["email"] = "broken"
    d = deliverer(server)
    outcomes = d.send(batch)
    assert outcomes[4].status == "rejected" and "email" in outcomes[4].error
    assert sum(o.status == "created" for o in outcomes) == 9
    assert d.stats.requests == 1


def test_lost_answers_are_resent_without_duplicates_or_lost_ids(flameup_server):
    flameup_server.set_faults(
        Faults(error_after_store_rate=0.25, drop_after_store_rate=0.15, seed=7)
    )
    d = deliverer(flameup_server)
    for start in range(0, 1000, 100):
        outcomes = d.send(people(100, start))
        assert all(o.status in ("created", "updated") for o in outcomes)
        assert all(o.flameup_id for o in outcomes)
    stored = flameup_server.people()
    assert len(stored) == 1000
    assert stored["external_id"].is_unique
    assert d.stats.retries > 0


def test_5xx_and_dropped_connections_are_retried(flameup_server):
    flameup_server.set_faults(Faults(error_rate=0.3, drop_rate=0.2, seed=3))
    d = deliverer(flameup_server)
    outcomes = [o for s in range(0, 500, 100) for o in d.send(people(100, s))]
    assert all(o.status == "created" for o in outcomes)
    assert len(flameup_server.people()) == 500


def test_retries_spent_end_as_failed_with_the_reason(flameup_server):
    flameup_server.set_faults(Faults(error_rate=1.0, seed=1))
    d = deliverer(flameup_server, retry=RetryPolicy(total=2, backoff_factor=0.001))
    outcomes = d.send(people(5))
    assert {o.status for o in outcomes} == {"failed"}
    assert "HTTP 5" in outcomes[0].error and "3 attempts" in outcomes[0].error
    assert d.stats.requests == 3


def test_maintenance_pages_are_retried_like_a_503_and_nothing_is_lost(flameup_server):
    flameup_server.set_faults(Faults(maintenance_rate=0.4, seed=4))
    d = deliverer(flameup_server)
    outcomes = [o for s in range(0, 500, 100) for o in d.send(people(100, s))]
    assert all(o.status == "created" for o in outcomes)
    assert len(flameup_server.people()) == 500
    assert d.stats.retries == sum(r.fault == "maintenance" for r in flameup_server.requests) > 0


def test_answers_not_in_the_documented_shape_fail_saying_what_came_back(flameup_server):
    flameup_server.set_faults(Faults(maintenance_rate=1.0))
    d = deliverer(flameup_server, retry=RetryPolicy(total=2, backoff_factor=0.001))
    outcomes = d.send(people(3))
    assert {o.status for o in outcomes} == {"failed"}
    error = outcomes[0].error
    assert "not Flameup's: HTTP 200 (text/html; charset=utf-8): '<!DOCTYPE html>" in error
    assert "gave up after 3 attempts" in error
    assert d.stats.requests == 3 and flameup_server.people().empty


def test_a_json_2xx_without_a_people_list_is_not_read_as_an_answer():
    assert not is_batch_answer(Answer(200, {}, {"ok": True}))
    assert not is_batch_answer(Answer(200, {}, {"people": "none"}))
    assert not is_batch_answer(Answer(200, {}, None, text="<html>"))
    assert is_batch_answer(Answer(200, {}, {"people": []}))


def test_a_non_json_error_answer_is_read_by_status_content_type_and_start():
    page = "<html><body>" + "x" * 300 + "</body></html>"
    answer = Answer(502, {"content-type": "text/html"}, None, text=page)
    message = str(answer.error())
    assert message.startswith("HTTP 502: an answer that is not Flameup's: HTTP 502 (text/html): ")
    assert repr(page[:100]) in message and page[:101] not in message


def test_429_storms_are_waited_out(flameup_server):
    flameup_server.set_faults(Faults(storm_rate=0.3, storm_length=2, seed=5))
    d = deliverer(flameup_server)
    outcomes = [o for s in range(0, 1000, 100) for o in d.send(people(100, s))]
    assert all(o.status == "created" for o in outcomes)
    assert d.stats.rate_limited > 0
    assert len(flameup_server.people()) == 1000


def test_401_raises_instead_of_failing_rows(flameup_server):
    client = FlameupClient("ws_test_a_b." + "f" * 64, flameup_server.base_url)
    d = Deliverer(client, limiter=RateLimiter(None), retry=FAST)
    with pytest.raises(AuthenticationError):
        d.send(people(3))


def test_403_for_a_key_without_write_permission(flameup_server):
    key = flameup_server.add_key(permissions=("people:read",))
    d = Deliverer(FlameupClient(key, flameup_server.base_url), limiter=RateLimiter(None))
    with pytest.raises(AuthenticationError, match="permission"):
        d.send(people(1))


def test_stream_yields_every_batch_once_whatever_the_order(flameup_server):
    flameup_server.set_faults(Faults(latency=0.01, latency_jitter=0.05, seed=2))
    d = deliverer(flameup_server, concurrency=4)
    batches = [(start, people(100, start)) for start in range(0, 2000, 100)]
    seen = {}
    for tag, outcomes in d.stream(batches):
        seen[tag] = outcomes
    assert sorted(seen) == [s for s, _ in batches]
    assert all(o.status == "created" for outs in seen.values() for o in outs)
    assert len(flameup_server.people()) == 2000


def test_created_and_updated_add_up_to_the_answer_counts(flameup_server):
    d = deliverer(flameup_server)
    d.send(people(50))
    outcomes = d.send(people(100))
    assert [o.status for o in outcomes].count("updated") == 50
    assert [o.status for o in outcomes].count("created") == 50


@both_shapes
def test_people_without_email_are_matched_in_either_answer_shape(flameup_server):
    """Issue 16: u1 and u3 have no email; an overview answer names them only by userId."""
    batch = [{"userId": "u1"}, {"userId": "u2", "email": "u2@example.com"}, {"userId": "u3"}]
    d = deliverer(flameup_server)
    first = d.send(batch)
    assert [o.status for o in first] == ["created"] * 3
    stored = flameup_server.people().set_index("external_id")["id"]
    assert [o.flameup_id for o in first] == list(stored.loc[["u1", "u2", "u3"]])
    assert [o.status for o in d.send(batch)] == ["updated"] * 3


@both_shapes
def test_people_sent_by_email_only_are_matched_in_either_answer_shape(flameup_server):
    d = deliverer(flameup_server)
    batch = [{"email": "A@example.com"}, {"email": "b@example.com", "traits": {"n": 1}}]
    assert [o.status for o in d.send(batch)] == ["created"] * 2
    assert [o.status for o in d.send(batch)] == ["updated"] * 2


@both_shapes
def test_per_person_errors_are_read_in_either_answer_shape(flameup_server, caplog):
    flameup_server.per_person_errors = True
    batch = people(10)
    batch[4]["email"] = "broken"
    outcomes = deliverer(flameup_server).send(batch)
    assert outcomes[4].status == "rejected" and "email" in outcomes[4].error
    assert sum(o.status == "created" for o in outcomes) == 9
    assert "not in Flameup's answer" not in caplog.text


def answer_of(people_answered: list[dict], created: int = 1) -> Answer:
    body = {"people": people_answered, "created_count": created, "updated_count": 0}
    return Answer(status=200, headers={}, body=body)


def test_answer_in_an_unknown_shape_fails_its_people_and_logs_the_keys_it_carried(caplog):
    sent = [{"userId": "u1"}, {"userId": "u2", "email": "u2@example.com"}]
    stamp = "2026-01-01T00:00:00Z"
    answered = [
        {"id": "p1", "uid": "u1", "created_at": stamp, "updated_at": stamp},
        {
            "id": "p2",
            "uid": "u2",
            "email": "u2@example.com",
            "created_at": stamp,
            "updated_at": stamp,
        },
    ]
    with caplog.at_level(logging.WARNING, logger="flameup_pandas"):
        outcomes = read_success(sent, answer_of(answered))
    assert outcomes[0] == PersonOutcome(
        "failed", error="Flameup's answer did not include this person; rerun to confirm"
    )
    assert outcomes[1].status == "created" and outcomes[1].flameup_id == "p2"
    [record] = [r for r in caplog.records if "not in Flameup's answer" in r.getMessage()]
    message = record.getMessage()
    assert "1 of 2 people sent" in message
    assert "1 people of the answer match nobody sent" in message
    assert "[created_at, id, uid, updated_at]" in message
    assert "u1" not in message.replace("uid", "")


def test_answer_with_identity_both_at_top_level_and_in_traits_reads_the_top_level():
    sent = [{"userId": "u1", "email": "new@example.com"}]
    answered = [
        {
            "id": "p1",
            "userId": "u1",
            "email": "new@example.com",
            "traits": {"email": "old@example.com", "first_name": "Ada"},
        },
    ]
    assert read_success(sent, answer_of(answered))[0].flameup_id == "p1"
