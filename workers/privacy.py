"""Privacy and lifecycle requests, decided inside the delivery's processing transaction.

Shopify requires every app to honour three compliance webhooks and expects
``app/uninstalled`` to end the app's work for the store:

- ``customers/redact``: the customer's personal data is erased everywhere
  (``store/privacy.erase``), their pending actions are cancelled (``redacted``)
  and the customer is marked redacted, which the send-time check reads;
- ``customers/data_request``: everything stored about them is written to one
  JSON file under the instance folder, and a log line tells the operator to
  hand it to the store owner (Shopify sends the request to the app; the
  merchant answers the customer);
- ``app/uninstalled``: the shop is marked uninstalled, its credentials
  dropped and its pending actions cancelled (``uninstalled``); its later
  deliveries are recorded as ignored, except the compliance topics;
- ``shop/redact`` (48 hours after an uninstall): every row of the shop is deleted.

Doing this in the processing transaction means a crash leaves the request
unprocessed, to be processed again; every effect is idempotent.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

import orjson

from aftersale.connectors.base import Normalized
from aftersale.core import logs
from aftersale.store import privacy as privacy_store
from aftersale.store.redaction import Person

log = logs.get_logger("workers.privacy")

#: topics still processed for an uninstalled shop: the platform's privacy obligations
#: outlive the installation (``shop/redact`` only ever comes after it)
COMPLIANCE_TOPICS = frozenset({"customers/redact", "customers/data_request", "shop/redact"})
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def ignored_after_uninstall(shop, topic: str) -> bool:
    """Whether a delivery is only recorded: its shop uninstalled the app, and it is not a
    compliance request."""
    return shop.status == "uninstalled" and topic not in COMPLIANCE_TOPICS


def apply(conn, runtime, shop, result: Normalized, payload: dict, now: datetime) -> None:
    """Carry out the privacy and lifecycle events among a delivery's events."""
    for event in result.events:
        if event.kind == "customer.redact":
            redact_customer(conn, runtime, shop, event, now)
        elif event.kind == "customer.data_request":
            export_customer(conn, runtime, shop, event, payload)
        elif event.kind == "app.uninstalled":
            uninstall(conn, shop, now)
        elif event.kind == "shop.redact":
            counts = privacy_store.delete_shop(conn, shop.id)
            log.warning("privacy.shop_deleted", shop_id=shop.id, rows=counts)


def person_of(event) -> Person:
    """Who a privacy request is about: the customer's id, email and phone, and the orders."""
    person = Person()
    customer = event.customer or {}
    if customer.get("id"):
        person.refs.add(str(customer["id"]))
    person.add_contact(customer.get("email"), customer.get("phone"))
    person.orders.update(str(i) for i in (event.order or {}).get("ids") or ())
    return person


def redact_customer(conn, runtime, shop, event, now: datetime) -> None:
    customer = event.customer or {}
    found = privacy_store.find(conn, shop.id, person_of(event))
    cancelled = privacy_store.cancel_pending(conn, shop.id, "redacted", now, found.action_ids)
    counts = privacy_store.erase(conn, shop.id, found, runtime.config.secret_keys, now)
    if customer.get("id"):
        privacy_store.mark_redacted(conn, shop.id, str(customer["id"]), now)
    log.warning(
        "privacy.customer_redacted",
        customer=customer.get("id"),
        email=logs.mask_email(customer.get("email")),
        orders=found.order_refs,
        cancelled=cancelled,
        rows=counts,
    )


def export_customer(conn, runtime, shop, event, payload: dict) -> Path:
    """Write the export file of a ``customers/data_request``; its path."""
    customer = event.customer or {}
    found = privacy_store.find(conn, shop.id, person_of(event))
    data = privacy_store.export(conn, shop.id, found, runtime.config.secret_keys)
    request = payload.get("data_request") if isinstance(payload.get("data_request"), dict) else {}
    request_id = str(request.get("id") or event.key)
    folder = Path(runtime.config.instance_path) / "exports" / _safe(shop.domain)
    path = folder / f"{_safe(request_id)}.json"
    document = {
        "shop": shop.domain,
        "data_request": {"id": request_id, "received_at": event.occurred_at},
        "customer": customer,
        "orders_requested": sorted(found.person.orders),
        "stored": data,
    }
    _write_private(
        path,
        orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str),
    )
    log.warning(
        "privacy.data_request_exported",
        customer=customer.get("id"),
        email=logs.mask_email(customer.get("email")),
        request=request_id,
        path=str(path),
        todo="give this file to the store owner, who answers the customer's data request",
    )
    return path


def uninstall(conn, shop, now: datetime) -> None:
    privacy_store.mark_uninstalled(conn, shop.id, now)
    cancelled = privacy_store.cancel_pending(conn, shop.id, "uninstalled", now)
    log.warning("shop.uninstalled", shop_id=shop.id, cancelled=len(cancelled))


def _safe(name: str) -> str:
    return _SAFE_NAME.sub("_", name).strip("._") or "unnamed"


def _write_private(path: Path, content: bytes) -> None:
    """Write atomically, readable by the owner only: the file holds personal data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.replace(tmp, path)
