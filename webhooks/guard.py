"""What a delivery must be before it may join a batch: storable, field by field.

The receiver commits many deliveries in one transaction (``webhooks/ingest.py``),
so one row the database rejects would fail every honest delivery beside it.
WooCommerce never retries and disables a webhook after its 7th failure in a row,
so such a failure loses a store's events for good. Everything a column limit or
a database could refuse is therefore checked here, per request, before the
batch: a value that can never be stored is answered 400 (a retry cannot help),
a long dedupe key is hashed (it only has to be equal for equal deliveries), and
stored headers are cleaned (they are kept for replay and diagnosis only).

The limits are the inbox's column sizes (``store/tables.py``); a test reads
them from the table so the two cannot drift apart.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

from aftersale.connectors.base import DeliveryRejected
from aftersale.store.deliveries import NewDelivery

#: column -> longest value the inbox stores (``deliveries`` in store/tables.py)
FIELD_LIMITS = {
    "topic": 64,
    "dedupe_key": 255,
    "delivery_id": 255,
    "event_id": 255,
    "api_version": 32,
}
#: a stored header value is cut to this many characters (it is kept for diagnosis only)
STORED_HEADER_LIMIT = 1024
STORED_HEADER_COUNT = 64
#: C0 controls and DEL; PostgreSQL refuses NUL in text and ``\\u0000`` in jsonb, and no
#: platform sends any of them in an id, topic or version
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Unstorable(DeliveryRejected):
    """A delivery field no database row can hold; answered 400 (retrying cannot help)."""

    status = 400


def storable(delivery: NewDelivery) -> NewDelivery:
    """The delivery as it can be stored, or Unstorable; cheap enough for every request."""
    for name in ("topic", "delivery_id", "event_id", "api_version"):
        value = getattr(delivery, name)
        if value is None:
            continue
        if _CONTROL.search(value):
            raise Unstorable(f"{_header_name(name)} contains control characters")
        if len(value) > FIELD_LIMITS[name]:
            raise Unstorable(f"{_header_name(name)} is longer than {FIELD_LIMITS[name]} characters")
    changes = {}
    key = dedupe_key(delivery.dedupe_key)
    if key != delivery.dedupe_key:
        changes["dedupe_key"] = key
    headers = clean_headers(delivery.headers)
    if headers is not delivery.headers:
        changes["headers"] = headers
    return replace(delivery, **changes) if changes else delivery


def dedupe_key(key: str) -> str:
    """The key itself when it fits and is clean; else a SHA-256 of it (equal keys stay equal)."""
    if len(key) <= FIELD_LIMITS["dedupe_key"] and not _CONTROL.search(key):
        return key
    prefix = key.split(":", 1)[0] if ":" in key[:32] else "key"
    prefix = _CONTROL.sub("", prefix)
    return f"{prefix}:sha256:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"


def clean_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers as they can be stored in a JSON column: no control characters, bounded sizes.

    Returns the same dict when nothing needed changing (the common case costs one scan).
    """
    if len(headers) <= STORED_HEADER_COUNT and all(
        len(k) <= 128 and len(v) <= STORED_HEADER_LIMIT and not _CONTROL.search(v)
        for k, v in headers.items()
    ):
        return headers
    cleaned = {}
    for name, value in list(headers.items())[:STORED_HEADER_COUNT]:
        value = _CONTROL.sub("", value)
        if len(value) > STORED_HEADER_LIMIT:
            value = value[:STORED_HEADER_LIMIT] + "…[cut]"
        cleaned[_CONTROL.sub("", name)[:128]] = value
    return cleaned


def _header_name(field: str) -> str:
    return {
        "topic": "the topic header",
        "delivery_id": "the delivery/webhook id header",
        "event_id": "the event id header",
        "api_version": "the API version header",
    }[field]
