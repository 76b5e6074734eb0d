"""Provider answers decide what happens next: 500 then 200, 429 with Retry-After, 400, and dead letters.

Postmark is the provider here (pytest-httpserver standing in for its API),
so the attempts go through the real HTTP channel, worker and scheduler.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from werkzeug import Response

from aftersale.runtime import Runtime, install
from aftersale.store.messages import address_hash
from aftersale.store.tables import actions, messages, suppressions
from aftersale.workers.runner import make_worker
from aftersale.workers.scheduler import Scheduler
from tests.action_helpers import hand_off, plant, store_event
from tests.helpers import rows

EMAIL = ("email", {"template": "thank_you", "to": "customer"})
POSTMARK_OK = {
    "To": "ana.petrovic@example.com",
    "SubmittedAt": "2026-11-24T10:00:00Z",
    "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
    "ErrorCode": 0,
    "Message": "OK",
}


@pytest.fixture
def postmark_runtime(config, clock, httpserver):
    rt = Runtime(
        config.replace(mail_url=f"postmark+http://server-token@127.0.0.1:{httpserver.port}"), clock
    )
    install(rt)
    yield rt
    rt.close()
    install(None)


def answers(httpserver, *responses):
    """Postmark answers these, in order, to POST /email."""
    for status, body, headers in responses:
        httpserver.expect_ordered_request("/email", method="POST").respond_with_response(
            Response(
                json.dumps(body), status=status, headers=headers, content_type="application/json"
            )
        )


def run(rt):
    make_worker(rt).work(burst=True, logging_level="WARNING", with_scheduler=False)


def one_action(rt):
    shop_id, event_id, event = store_event(rt)
    ids = plant(rt, shop_id, event_id, event, [EMAIL])
    hand_off(rt, ids)
    return ids[0]


def test_500_then_200_retries_with_backoff_and_is_sent(postmark_runtime, clock, httpserver):
    rt = postmark_runtime
    answers(
        httpserver,
        (500, {"ErrorCode": 100, "Message": "Maintenance"}, {}),
        (200, POSTMARK_OK, {}),
    )
    one_action(rt)
    failed_at = clock.now()
    run(rt)
    (action,) = rows(rt.engine, actions)
    assert action.status == "scheduled" and action.attempts == 1
    assert failed_at + timedelta(seconds=30) <= action.due_at <= failed_at + timedelta(seconds=60)
    assert "HTTP 500" in action.last_error and "Maintenance" in action.last_error

    scheduler = Scheduler(rt)
    assert scheduler.tick(clock.now()).actions_enqueued == 0  # not due yet
    clock.set(action.due_at)
    assert scheduler.tick(clock.now()).actions_enqueued == 1
    run(rt)

    (action,) = rows(rt.engine, actions)
    assert (action.status, action.attempts) == ("sent", 2)
    assert action.provider_id == POSTMARK_OK["MessageID"]
    attempts = rows(rt.engine, messages)
    assert [(m.attempt, m.status, m.status_code) for m in attempts] == [
        (1, "transient_error", 500),
        (2, "sent", 200),
    ]
    assert attempts[1].provider_id == POSTMARK_OK["MessageID"]
    assert attempts[0].response and "Maintenance" in attempts[0].response
    assert all(m.duration_ms is not None for m in attempts)
    httpserver.check_assertions()


def test_429_waits_at_least_retry_after(postmark_runtime, clock, httpserver):
    rt = postmark_runtime
    answers(
        httpserver,
        (429, {"ErrorCode": 429, "Message": "Rate limit exceeded"}, {"Retry-After": "900"}),
        (200, POSTMARK_OK, {}),
    )
    one_action(rt)
    limited_at = clock.now()
    run(rt)
    (action,) = rows(rt.engine, actions)
    assert action.status == "scheduled"
    assert action.due_at >= limited_at + timedelta(seconds=900)

    scheduler = Scheduler(rt)
    clock.set(limited_at + timedelta(seconds=899))
    assert scheduler.tick(clock.now()).actions_enqueued == 0
    clock.set(action.due_at)
    assert scheduler.tick(clock.now()).actions_enqueued == 1
    run(rt)
    (action,) = rows(rt.engine, actions)
    assert (action.status, action.attempts) == ("sent", 2)
    assert [m.status_code for m in rows(rt.engine, messages)] == [429, 200]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            422,
            {
                "ErrorCode": 406,
                "Message": "You tried to send to recipient(s) that have been marked as inactive.",
            },
        ),
        (400, {"ErrorCode": 300, "Message": "Invalid 'To' address: 'ana'."}),
    ],
)
def test_4xx_fails_at_once_with_the_providers_message(
    postmark_runtime, clock, httpserver, status, body
):
    rt = postmark_runtime
    answers(httpserver, (status, body, {}))
    one_action(rt)
    run(rt)
    clock.advance(timedelta(days=1))
    assert Scheduler(rt).tick(clock.now()).actions_enqueued == 0
    (action,) = rows(rt.engine, actions)
    assert (action.status, action.attempts) == ("failed", 1)
    assert f"HTTP {status}" in action.last_error and body["Message"] in action.last_error
    (attempt,) = rows(rt.engine, messages)
    assert (attempt.status, attempt.status_code) == ("permanent_error", status)
    # an inactive recipient (ErrorCode 406: hard bounce or spam complaint) is suppressed
    suppressed = [(r.address, r.reason) for r in rows(rt.engine, suppressions)]
    stored = address_hash(rt.config.secret_key, action.recipient)  # a keyed hash, not the address
    assert suppressed == ([(stored, "bounced")] if body["ErrorCode"] == 406 else [])


def test_transient_errors_until_attempts_run_out_make_a_dead_letter(
    postmark_runtime, clock, httpserver
):
    rt = postmark_runtime
    httpserver.expect_request("/email", method="POST").respond_with_json(
        {"ErrorCode": 100, "Message": "Maintenance"}, status=503
    )
    action_id = one_action(rt)
    with rt.engine.begin() as conn:
        conn.execute(actions.update().values(max_attempts=3))
    scheduler = Scheduler(rt)
    for _ in range(3):
        run(rt)
        clock.advance(timedelta(hours=7))  # past the longest backoff
        scheduler.tick(clock.now())
    (action,) = rows(rt.engine, actions)
    assert (action.id, action.status, action.attempts) == (action_id, "dead", 3)
    assert [m.status for m in rows(rt.engine, messages)] == ["transient_error"] * 3
