"""Test helpers: fixture payloads, signing as the platforms do, and reading back what happened."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

FIXTURES = Path(__file__).parent / "fixtures"
DEMO_SHOP = "aftersale-demo.myshopify.com"
#: what an installed test shop holds: not a token, so platform calls still fail "no token"
PLACEHOLDER_CREDENTIALS = {"placeholder": "installed by the tests; no Admin API access"}


def fixture_path(platform: str, name: str) -> Path:
    return FIXTURES / platform / f"{name}.json"


def load_fixture(platform: str, name: str) -> dict:
    return json.loads(fixture_path(platform, name).read_text())


def fixture_bytes(platform: str, name: str) -> bytes:
    return fixture_path(platform, name).read_bytes()


def shopify_signature(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shopify_headers(
    topic: str,
    body: bytes,
    secret: str,
    *,
    shop=DEMO_SHOP,
    webhook_id: str | None = None,
    event_id: str | None = None,
    **extra,
) -> dict:
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": shopify_signature(body, secret),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": "2025-10",
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": "2026-11-20T09:15:03.000000Z",
    }
    if event_id:
        headers["X-Shopify-Event-Id"] = event_id
    headers.update(extra)
    return headers


def install_shop(runtime, domain: str = DEMO_SHOP) -> int | None:
    """The shop installed the app, as Shopify's install does before any webhook: an active
    row with (placeholder) credentials. A shop already known is left as it is (an
    uninstalled shop stays uninstalled). None when the database is out of reach."""
    # deferred import: helpers is imported by tests that never touch a database
    from aftersale.store import shops as shop_store

    try:
        with runtime.engine.begin() as conn:
            shop_id, _ = shop_store.install_placeholder(
                conn,
                "shopify",
                domain,
                runtime.config.secret_keys,
                PLACEHOLDER_CREDENTIALS,
                runtime.clock.now(),
                reactivate=False,
            )
            return shop_id
    except SQLAlchemyError:
        return None  # a test of the database being down: the receiver will say 503


def post_shopify(client, topic: str, body: bytes | dict, secret: str, **kwargs):
    """POST a signed Shopify webhook through a Flask test client (or anything with .post).

    The shop is installed first when it is new (see ``install_shop``): Shopify
    only sends webhooks to shops that installed the app, and the receiver
    refuses the others. To post as a shop that did not, use ``client.post``
    with ``shopify_headers``.
    """
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    receiver = getattr(client, "application", None)
    state = receiver.extensions.get("aftersale.receiver") if receiver is not None else None
    if state is not None:
        install_shop(state.runtime, kwargs.get("shop", DEMO_SHOP))
    return client.post(
        "/webhooks/shopify", data=body, headers=shopify_headers(topic, body, secret, **kwargs)
    )


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def rows(engine, table, *where, order_by=None):
    with engine.connect() as conn:
        stmt = (
            select(table)
            .where(*where)
            .order_by(
                order_by if order_by is not None else table.c[table.primary_key.columns.keys()[0]]
            )
        )
        return conn.execute(stmt).all()
