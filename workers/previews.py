"""Events for previews and tests: a webhook payload file -> canonical events -> template context.

``aftersale templates preview`` and the template tests render templates
against what a real delivery would produce: the payload goes through the
platform's connector exactly as in production, so a preview shows what the
customer would get, not what a hand-made sample suggests.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from aftersale.connectors import get_connector
from aftersale.connectors.base import DeliveryMeta, OrderState
from aftersale.core.events import Event
from aftersale.rules import pipeline

PREVIEW_SHOP = "aftersale-demo.myshopify.com"


class PreviewError(ValueError):
    """The file is not an event or a payload we can turn into one; the message says why."""


def topic_from_filename(path: Path) -> str:
    """``orders__create.json`` -> ``orders/create``; ``fulfillments__update__delivered.json``
    -> ``fulfillments/update`` (fixture naming: topic, then an optional variant)."""
    parts = path.name.removesuffix(".json").split("__")
    if len(parts) < 2:
        raise PreviewError(f"cannot tell the topic from {path.name!r}; pass --topic")
    return f"{parts[0]}/{parts[1]}"


def platform_from_path(path: Path) -> str:
    for part in reversed(path.resolve().parts):
        if get_connector(part) is not None:
            return part
    return "shopify"


def events_from_payload(
    platform: str,
    topic: str,
    payload: dict,
    *,
    order_payload: dict | None = None,
    shop: str = PREVIEW_SHOP,
) -> list[Event]:
    """The events a delivery of ``payload`` produces; ``order_payload`` (an orders/create body)
    plays the stored order, as when the order's own webhook came first."""
    connector = get_connector(platform)
    if connector is None:
        raise PreviewError(f"no connector for platform {platform!r}")
    state, customer = OrderState(), None
    if order_payload is not None:
        first = connector.normalize(_meta(platform, "orders/create", shop), order_payload, state)
        state = first.state or state
        customer = next((e.customer for e in first.events if e.customer), None)
    result = connector.normalize(_meta(platform, topic, shop), payload, state)
    if not result.events:
        raise PreviewError(f"{topic} produced no event ({result.outcome}: {result.detail or ''})")
    # As processing does from the customers table: events about an order carry its customer.
    return [
        replace(event, customer=customer) if event.customer is None and customer else event
        for event in result.events
    ]


def events_from_file(
    path: Path,
    *,
    platform: str | None = None,
    topic: str | None = None,
    order_file: Path | None = None,
) -> list[Event]:
    """A canonical event (JSON with ``kind``) or a platform payload (topic from the file name)."""
    data = _read(path)
    if isinstance(data, dict) and "kind" in data and "occurred_at" in data:
        return [Event.from_dict(data)]
    platform = platform or platform_from_path(path)
    order_payload = _read(order_file) if order_file else None
    return events_from_payload(
        platform, topic or topic_from_filename(path), data, order_payload=order_payload
    )


def template_context(
    event: Event,
    shop_name: str,
    rule: str = "preview",
    timezone: str = "UTC",
    shop_names: dict | None = None,
) -> dict:
    """What a worker gives templates for this event (see workers/actions.py)."""
    return pipeline.template_context(
        event,
        shop_domain=event.shop,
        shop_name=shop_name,
        shop_names=shop_names,
        customer=dict(event.customer or {}),
        rule=rule,
        timezone=timezone,
    )


def _meta(platform: str, topic: str, shop: str) -> DeliveryMeta:
    now = datetime.now(UTC)
    return DeliveryMeta(
        platform=platform, shop=shop, topic=topic, triggered_at=now, received_at=now
    )


def _read(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PreviewError(f"{path}: {exc}") from exc
