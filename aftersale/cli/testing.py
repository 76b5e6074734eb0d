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
        _fresh_ids(payload, topic)
    body = json.dumps(payload).encode()
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


def _fresh_ids(payload: dict, topic: str) -> None:
    """A new order id and name, so rules that act once per order act again."""
    order_id = random.randint(10**12, 10**13 - 1)
    if topic.startswith("orders/"):
        payload["id"] = order_id
        payload["name"] = f"#{order_id % 100000}"
        payload["order_number"] = order_id % 100000
    elif "order_id" in payload:
        payload["order_id"] = order_id
        if "id" in payload:
            payload["id"] = random.randint(10**12, 10**13 - 1)


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
