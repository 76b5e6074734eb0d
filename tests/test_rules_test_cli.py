"""``aftersale rules test``: real payloads through connector and rules, explained, nothing sent."""

from __future__ import annotations

import json
from pathlib import Path

from aftersale.cli import build
from tests.helpers import FIXTURES

ROOT = Path(__file__).resolve().parent.parent
SHOPIFY = FIXTURES / "shopify"
WOO = FIXTURES / "woocommerce"


def run(cli_runner, tmp_path, *args):
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'never.db'}",
        "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens: the command must not need it
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "k",
        "RULES_DIR": str(ROOT / "examples" / "starter"),
    }
    result = cli_runner.invoke(build(), ["rules", "test", *map(str, args)], env=env)
    assert not (tmp_path / "never.db").exists(), "rules test touched the database"
    return result


def test_a_shopify_story_shows_plans_subjects_and_the_refund_cancelling_the_invite(
    cli_runner, tmp_path
):
    result = run(
        cli_runner,
        tmp_path,
        "--sequence",
        SHOPIFY / "orders__create.json",
        SHOPIFY / "fulfillments__create.json",
        SHOPIFY / "fulfillments__update__delivered.json",
        SHOPIFY / "refunds__create.json",
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "1. order.created (key 5678901234567)" in out
    assert '-> email thank_you due 2026-11-20 15:15 UTC "Hvala na porudžbini #1042"' in out
    assert "-> email review_invite due 2026-11-30 15:22 UTC" in out  # 7 days after delivery
    assert "4. order.delivered" in out  # the order's only parcel arrived
    assert "5. order.refunded" in out
    assert "cancels review-invite: email review_invite" in out
    assert "matched" in out and "refund-confirmation" in out


def test_why_a_rule_did_not_match_names_the_condition_and_the_value(cli_runner, tmp_path):
    result = run(
        cli_runner,
        tmp_path,
        "--rules",
        ROOT / "examples" / "review-invites",
        "--json",
        "--event",
        SHOPIFY / "fulfillments__update__delivered.json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (file,) = report["files"]
    event, whole_order = file["events"]
    assert whole_order["kind"] == "order.delivered"
    assert event["kind"] == "shipment.delivered"
    verdicts = {r["rule"]: r for r in event["rules"]}
    invite = verdicts["review-invite"]
    assert invite["matched"] is False
    # delivered without its order: the financial status is unknown, and the output says so
    assert invite["why_not"] == (
        "order.financial_status in ['paid', 'partially_refunded']: actual missing"
    )
    assert event["actions"] == []

    with_order = run(
        cli_runner,
        tmp_path,
        "--rules",
        ROOT / "examples" / "review-invites",
        "--json",
        SHOPIFY / "orders__paid.json",
        SHOPIFY / "fulfillments__update__delivered.json",
    )
    delivered = json.loads(with_order.output)["files"][1]["events"][0]
    invite = next(r for r in delivered["rules"] if r["rule"] == "review-invite")
    assert invite == {"rule": "review-invite", "matched": True, "why_not": None}
    assert [a["step"] for a in delivered["actions"]][0] == "email review_invite"


def test_a_woocommerce_story_is_diffed_as_in_production(cli_runner, tmp_path):
    result = run(
        cli_runner,
        tmp_path,
        "--json",
        WOO / "order.created__pending.json",
        WOO / "order.updated__processing.json",
        WOO / "order.updated__completed_with_tracking.json",
        WOO / "order.updated__note_only.json",
        WOO / "order.updated__partially_refunded.json",
    )
    assert result.exit_code == 0, result.output
    files = json.loads(result.output)["files"]
    kinds = [[e["kind"] for e in f["events"]] for f in files]
    assert kinds == [
        ["order.created"],
        ["order.paid"],
        ["fulfillment.created", "order.fulfilled"],
        ["fulfillment.created"],  # the note-only payload already carries the GLS tracking
        ["order.refunded"],
    ]
    refund = files[4]["events"][0]["actions"][0]
    assert refund["subject"] == "Your refund for order #4821"
    assert refund["recipient"] == "milica.jovanovic@example.com"


def test_bad_input_is_a_clear_error(cli_runner, tmp_path):
    broken = tmp_path / "orders__create.json"
    broken.write_text('{"id": 1,')
    result = run(cli_runner, tmp_path, broken)
    assert result.exit_code != 0 and f"{broken}: not JSON" in result.output
    nameless = tmp_path / "payload.json"
    nameless.write_text("{}")
    result = run(cli_runner, tmp_path, nameless)
    assert "cannot tell the topic from the file name; pass --topic" in result.output
    result = run(cli_runner, tmp_path)
    assert result.exit_code == 2 and "give at least one --event FILE" in result.output
    result = run(cli_runner, tmp_path, "--at", "yesterday", SHOPIFY / "orders__create.json")
    assert result.exit_code == 2 and "not a time" in result.output
