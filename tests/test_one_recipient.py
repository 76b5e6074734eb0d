"""Exactly one recipient per message, headers SMTP accepts, and a crash recorded as a failure.

Found probing from outside: an order email of ``a@b.example, x@evil.example``
became ``To: a@b.example, x@evil.example`` and Postmark mailed the second; a
5,000-character order name gave SMTP ``500 Line too long``; an unexpected
exception left an action ``running`` with no error until its lease expired.
"""

from __future__ import annotations

import json
from email import message_from_bytes, policy

import pytest
from sqlalchemy import update
from werkzeug.wrappers import Response

from aftersale.core.addresses import one_email, phone_candidates
from aftersale.store.tables import actions, events, messages
from tests.action_helpers import hand_off, plant, store_event
from tests.helpers import rows
from tests.test_channels import ORDER, http_runtime, run  # noqa: F401  (fixture)

TWO = "ana.petrovic@example.com, x@evil.example"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ana@example.com", "ana@example.com"),
        ("Ana Petrović <ana@example.com>", "ana@example.com"),
        (TWO, None),
        ("ana@example.com; x@evil.example", None),
        ("ana@example.com x@evil.example", None),
        ("Ana <ana@example.com>, x@evil.example", None),
        ("ana@example.com\r\nBcc: x@evil.example", None),
        ("ana@localhost", None),
        ("a" * 65 + "@example.com", None),
        ("ana@" + "d" * 250 + ".com", None),
        ("ana..p@example.com", None),
        (5, None),
        ("", None),
        ("ana@пример.срб", "ana@пример.срб"),
    ],
)
def test_a_field_is_reduced_to_one_address_or_none(raw, expected):
    assert one_email(raw) == expected


def test_a_field_holding_two_phone_numbers_gives_each():
    assert phone_candidates("+381 (0)64 123-4567 / +381 (0)11 222-3344") == [
        "+381 (0)64 123-4567",
        "+381 (0)11 222-3344",
    ]


def test_two_addresses_in_the_order_email_reach_no_provider(http_runtime, httpserver):
    """Postmark mails every address in ``To``; the step is skipped before it is called."""
    rt = http_runtime
    shop_id, event_id, event = store_event(
        rt, customer_changes={"email": TWO}, order_changes={"email": TWO, "contact_email": TWO}
    )
    run(rt, plant(rt, shop_id, event_id, event, [("email", {"template": "thank_you"})]))
    (action,) = rows(rt.engine, actions)
    assert (action.status, action.skip_reason) == ("skipped", "no_recipient")
    assert httpserver.log == []


def test_a_step_to_a_list_is_refused_before_the_provider(http_runtime, httpserver):
    rt = http_runtime
    shop_id, event_id, event = store_event(rt)
    step = ("email", {"template": "thank_you", "to": "owner@example.com, x@evil.example"})
    run(rt, plant(rt, shop_id, event_id, event, [step]))
    (action,) = rows(rt.engine, actions)
    assert action.status == "failed" and "exactly one" in action.last_error
    assert httpserver.log == []


def test_the_first_valid_number_of_two_is_texted(http_runtime, httpserver):
    seen = []

    def twilio(request):
        seen.append(request.form["To"])
        return Response(
            json.dumps({"sid": "SM1", "status": "queued"}),
            status=201,
            content_type="application/json",
        )

    httpserver.expect_request(
        "/2010-04-01/Accounts/AC123/Messages.json", method="POST"
    ).respond_with_handler(twilio)
    rt = http_runtime
    phone = "+381 (0)64 123-4567 / +381 (0)11 222-3344"
    shop_id, event_id, event = store_event(
        rt, customer_changes={"accepts_sms_marketing": True, "phone": phone}
    )
    run(rt, plant(rt, shop_id, event_id, event, [("sms", {"text": "Hi"})]))
    assert seen == ["+381641234567"]
    (action,) = rows(rt.engine, actions)
    assert action.status == "sent"


def test_a_5000_character_order_name_is_folded_and_accepted(runtime, work, smtp_server):
    name = "#" + "Ž" * 10 + "x" * 5000
    shop_id, event_id, event = store_event(runtime, order_changes={"name": name})
    ids = plant(runtime, shop_id, event_id, event, [("email", {"template": "thank_you"})])
    hand_off(runtime, ids)
    work()
    (action,) = rows(runtime.engine, actions)
    assert action.status == "sent", action.last_error
    (envelope,) = smtp_server.handler.envelopes
    raw = envelope.original_content or envelope.content
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    (message,) = smtp_server.handler.messages
    assert name in str(message["Subject"])


def test_an_unexpected_exception_is_the_actions_failure_not_a_stuck_lease(
    runtime, work, smtp_server
):
    """A row no code path foresaw (here: an email step without its template)."""
    shop_id, event_id, event = store_event(runtime)
    (action_id,) = plant(runtime, shop_id, event_id, event, [("email", {"template": "thank_you"})])
    with runtime.engine.begin() as conn:
        conn.execute(update(actions).where(actions.c.id == action_id).values(params={}))
    hand_off(runtime, [action_id])
    work()
    (action,) = rows(runtime.engine, actions)
    assert action.status == "failed"
    assert action.lease_expires_at is None
    assert "unexpected error" in action.last_error and "KeyError" in action.last_error
    (attempt,) = rows(runtime.engine, messages)
    assert attempt.status == "permanent_error"
    assert smtp_server.handler.messages == []
    assert rows(runtime.engine, events)


def test_smtp_bytes_never_carry_a_line_over_998(runtime):
    from datetime import UTC, datetime

    from aftersale.workers.mail import OutgoingEmail

    mail = OutgoingEmail(
        sender="Shop <shop@example.com>",
        to="ana@example.com",
        subject="Order " + "x" * 5000 + " ready",
        text="hi",
        html=None,
        message_id="<1@example.com>",
        date=datetime(2026, 11, 30, tzinfo=UTC),
    )
    raw = mail.as_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == "Order " + "x" * 5000 + " ready"
