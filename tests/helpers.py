"""Test helpers: fixture payloads, signing as the platforms do, and reading back what happened."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from pathlib import Path

from sqlalchemy import func, select

FIXTURES = Path(__file__).parent / "fixtures"


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
    shop="aftersale-demo.myshopify.com",
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


def post_shopify(client, topic: str, body: bytes | dict, secret: str, **kwargs):
    """POST a signed Shopify webhook through a Flask test client (or anything with .post)."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
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
