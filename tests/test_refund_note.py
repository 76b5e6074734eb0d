"""A refund's note is written by staff, for staff: the customer sees it only when the rule asks.

Sent the real way (planted actions, a real RQ worker, SMTP to aiosmtpd) from the
real ``refunds/create`` fixture, whose note is "One pair too small".
"""

from __future__ import annotations

import shutil

import pytest

from aftersale.rules import RulesInvalid, load_rules
from tests.action_helpers import hand_off, plant
from tests.helpers import load_fixture
from tests.test_spam_score import _stored

NOTE = load_fixture("shopify", "refunds__create")["note"]


def send_refund_mail(runtime, work, smtp_server, **step) -> str:
    shop_id, event_id, event = _stored(runtime, "refund_confirmation", "en")
    assert event.refund["note"] == NOTE
    (action_id,) = plant(
        runtime,
        shop_id,
        event_id,
        event,
        [("email", {"template": "refund_confirmation", **step})],
        rule="refund-confirmation",
    )
    hand_off(runtime, [action_id])
    work()
    (message,) = smtp_server.handler.messages
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "refund" in text.lower()  # the mail itself went out
    return text + html


def test_refund_note_is_not_shown_by_default(runtime, work, smtp_server):
    assert NOTE not in send_refund_mail(runtime, work, smtp_server)


def test_rule_can_ask_for_the_refund_note(runtime, work, smtp_server):
    assert NOTE in send_refund_mail(runtime, work, smtp_server, show_refund_note=True)


def test_show_refund_note_is_a_step_option(tmp_path, rules_dir):
    pack = tmp_path / "rules"
    shutil.copytree(rules_dir, pack)
    rule = (
        "- name: refund-with-note\n  on: order.refunded\n  category: transactional\n"
        "  do:\n    - email: {template: refund_confirmation, show_refund_note: %s}\n"
    )
    (pack / "refunds.yaml").write_text(rule % "true")
    (step,) = load_rules(pack).get("refund-with-note").steps
    assert step.params["show_refund_note"] is True
    (pack / "refunds.yaml").write_text(rule % "sometimes")
    with pytest.raises(RulesInvalid, match="show_refund_note"):
        load_rules(pack)
