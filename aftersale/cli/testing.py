"""``aftersale send-test-webhook``: post a signed sample webhook and follow it to the email."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import click
import requests

from aftersale.cli import pass_context
from aftersale.core.config import PROJECT_ROOT
from aftersale.workers.channels.outbox import FileOutbox

FIXTURES = PROJECT_ROOT / "tests" / "fixtures"
#: what a shop installed by this command holds: it says what it is, and is no API token
PLACEHOLDER_CREDENTIALS = {"placeholder": "installed by send-test-webhook; no Admin API access"}


@click.command("send-test-webhook")
@click.option(
    "--topic", default="orders/create", show_default=True, help="Shopify topic of the sample"
)
@click.option(
    "--file",
    "payload_file",
    type=click.Path(exists=True, path_type=Path),
    help="JSON body to send instead of the bundled sample for TOPIC",
)
@click.option("--url", default=None, help="receiver base URL (default: PUBLIC_URL)")
@click.option("--shop", default="aftersale-demo.myshopify.com", show_default=True)
@click.option(
    "--keep-ids",
    is_flag=True,
    help="send the sample's order id unchanged (the default gives "
    "each run a new order so once-per-order rules fire again)",
)
@click.option(
    "--wait",
    "wait_seconds",
    default=15.0,
    show_default=True,
    type=float,
    help="seconds to wait for the resulting actions (0: do not wait)",
)
@pass_context
def send_test_webhook(ctx, topic, payload_file, url, shop, keep_ids, wait_seconds):
    """Sign a sample Shopify webhook with SHOPIFY_API_SECRET, post it, and report what it caused."""
    config = ctx.config
    path = payload_file or FIXTURES / "shopify" / f"{topic.replace('/', '__')}.json"
    if not path.exists():
        raise click.ClickException(f"no sample for {topic} at {path}; pass --file")
    payload = json.loads(path.read_text())
    if not keep_ids:
        story = Path(config.instance_path) / STORY_FILE
        note = _fresh_ids(payload, topic, story)
        if note:
            click.echo(note)
    body = json.dumps(payload).encode()
    if _install_demo_shop(ctx.runtime, shop):
        click.echo(f"installed {shop} for testing (placeholder credentials, no Admin API access)")
    secret = config.shopify_api_secrets[0]
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": "2025-10",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        "X-Shopify-Hmac-Sha256": base64.b64encode(
            hmac.new(secret.encode(), body, hashlib.sha256).digest()
        ).decode(),
    }
    target = f"{(url or config.public_url).rstrip('/')}/webhooks/shopify"
    try:
        response = requests.post(target, data=body, headers=headers, timeout=10)
    except requests.ConnectionError as exc:
        raise click.ClickException(
            f"cannot reach {target}: is `aftersale serve` running? ({exc})"
        ) from exc
    click.echo(
        f"POST {target} ({topic}, {len(body)} bytes) -> {response.status_code} {response.text.strip()}"
    )
    if response.status_code != 200:
        sys.exit(1)
    delivery = response.json().get("delivery")
    if delivery and wait_seconds > 0:
        _follow(ctx.runtime, delivery, wait_seconds)


def _install_demo_shop(runtime, shop: str) -> bool:
    """Make ``shop`` an installed shop unless it is one; True when this did it.

    The receiver accepts Shopify webhooks only from shops that installed the
    app (an active row with credentials). A sample sent from here has no real
    install behind it, so the shop gets placeholder credentials: enough to be
    accepted, not a token, so actions that call Shopify's API fail plainly.
    Real credentials already stored are never replaced.
    """
    # deferred import: each command loads only what it uses
    from aftersale.store import shops as shop_store

    with runtime.engine.begin() as conn:
        _, changed = shop_store.install_placeholder(
            conn,
            "shopify",
            shop,
            runtime.config.secret_keys,
            PLACEHOLDER_CREDENTIALS,
            runtime.clock.now(),
        )
    return changed


#: the last sample order sent, so a follow-up topic (a fulfillment, a refund) is about it
STORY_FILE = "send-test-webhook.json"


def _fresh_ids(payload: dict, topic: str, story: Path) -> str | None:
    """A new order for ``orders/*``; for a follow-up topic, the order sent last.

    Rules that act once per order act again for each new order, and a
    ``fulfillments/create`` after ``orders/create`` is about that order: same
    customer, language and number, so the demo's second mail reads as a story.
    Returns a line to print when a follow-up has no earlier order to refer to.
    """
    if topic.startswith("orders/"):
        order_id = random.randint(10**12, 10**13 - 1)
        payload["id"] = order_id
        payload["name"] = f"#{order_id % 100000}"
        payload["order_number"] = order_id % 100000
        story.parent.mkdir(parents=True, exist_ok=True)
        story.write_text(json.dumps({"order_id": order_id, "name": payload["name"]}))
        return None
    if "order_id" not in payload:
        return None
    if "id" in payload:
        payload["id"] = random.randint(10**12, 10**13 - 1)
    try:
        last = json.loads(story.read_text())
        payload["order_id"] = int(last["order_id"])
        return f"about order {last['name']} (sent last with send-test-webhook)"
    except (OSError, ValueError, KeyError, TypeError):
        payload["order_id"] = random.randint(10**12, 10**13 - 1)
        return "no earlier sample order: send orders/create first for a connected story"


def _follow(runtime, delivery_id: int, wait_seconds: float) -> None:
    """Poll the database until the delivery's actions are done, then say what happened."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from sqlalchemy import select

    from aftersale.store.tables import actions, deliveries, events

    deadline = time.monotonic() + wait_seconds
    final = ("sent", "skipped", "failed", "dead")
    while True:
        with runtime.engine.connect() as conn:
            status = conn.execute(
                select(deliveries.c.status).where(deliveries.c.id == delivery_id)
            ).scalar()
            rows = conn.execute(
                select(actions, events.c.kind)
                .join(events, events.c.id == actions.c.event_id)
                .where(events.c.delivery_id == delivery_id)
            ).all()
        settled = status not in ("pending", "queued") and all(
            r.status in final or r.status == "scheduled" for r in rows
        )
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    if status == "pending":
        click.echo(
            f"delivery {delivery_id} is stored, waiting for the relay: is `aftersale scheduler` running?"
        )
        return
    if status == "queued":
        click.echo(
            f"delivery {delivery_id} is queued, waiting for a worker: is `aftersale worker` running?"
        )
        return
    click.echo(f"delivery {delivery_id}: {status}, {len(rows)} action(s)")
    for row in rows:
        line = f"  {row.rule} [{row.kind}] -> {row.status}"
        if row.status == "sent":
            line += f": {row.subject!r} to {row.recipient}"
            if isinstance(runtime.mailer, FileOutbox) and row.provider_id:
                line += f"\n    {runtime.mailer.path_for(row.provider_id)}"
        elif row.status == "scheduled":
            line += f" (due {row.due_at.isoformat()})"
        elif row.skip_reason or row.last_error:
            line += f" ({row.skip_reason or ''} {row.last_error or ''})".rstrip()
        click.echo(line)


def register(group: click.Group) -> None:
    group.add_command(send_test_webhook)
