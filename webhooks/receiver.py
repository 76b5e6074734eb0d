"""``POST /webhooks/<platform>``: verify, store, answer. Nothing else on the request path.

Order of checks: size (413), headers and signature over the raw bytes (400 /
401, before any parsing), JSON (400), the shop (401 unless it installed the
app, for a platform whose signature does not prove the shop: Shopify),
durable store (503 if the database is unavailable, so the platform retries).
A duplicate is answered 200. No body is ever logged.

A shop that uninstalled the app gets 200 and its deliveries are stored and
recorded ``ignored`` by processing. Shopify's privacy topics and
``app/uninstalled`` are answered 200 for any
verified shop, since Shopify must never see them fail; they are stored only
for a shop we know (one that uninstalled us still gets redacted), and for an
unknown shop answered and dropped, with a log line.
"""

from __future__ import annotations

import threading
import time

import orjson
from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from aftersale.connectors import get_connector
from aftersale.connectors.base import DeliveryRejected, EnvironHeaders, UnknownShop, stored_headers
from aftersale.core import logs, metrics
from aftersale.core.crypto import CredentialsUnreadable
from aftersale.store import shops as shop_store
from aftersale.store.deliveries import NewDelivery
from aftersale.store.queues import nudge_relay
from aftersale.webhooks.guard import storable
from aftersale.webhooks.ingest import DeliveryWriter, StorageUnavailable

bp = Blueprint("receiver", __name__)
log = logs.get_logger("webhooks.receiver")
SHOP_CACHE_SECONDS = 60.0


class ReceiverState:
    """Per-process receiver state: the delivery writer and a small shop cache."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.writer = DeliveryWriter(runtime, lambda: nudge_relay(runtime))
        self._shops: dict[tuple[str, str], tuple[float, int, object]] = {}
        self._credentials: dict[tuple[int, bytes], dict] = {}
        self._lock = threading.Lock()

    def credentials(self, shop_row) -> dict | None:
        """The shop's decrypted credentials (None for an unknown shop), decrypted once per value.

        Decrypting is a Fernet operation per request otherwise; the cache is keyed
        on the encrypted bytes, so a rotated secret is read afresh.
        """
        if shop_row is None:
            return None
        key = (shop_row.id, bytes(shop_row.credentials or b""))
        found = self._credentials.get(key)
        if found is None:
            found = shop_store.credentials_of(shop_row, self.runtime.config.secret_keys)
            with self._lock:
                if len(self._credentials) > 1000:
                    self._credentials.clear()
                self._credentials[key] = found
        return found

    def forget_shops(self) -> None:
        """Drop cached shops. An uninstall made elsewhere is otherwise seen within
        SHOP_CACHE_SECONDS: until then the cached row still counts as installed."""
        with self._lock:
            self._shops.clear()

    def installed(self, shop_row) -> bool:
        """The shop installed the app: its row is active and holds credentials we can read."""
        if shop_row is None or shop_row.status != "active":
            return False
        try:
            return bool(self.credentials(shop_row))
        except CredentialsUnreadable:
            log.error("shop.credentials_unreadable", shop=shop_row.domain)
            return False

    def shop(self, platform: str, domain: str, *, create: bool, fresh: bool = False):
        """(shop id, shop row) from the cache or the database; (None, None) for an unknown shop.

        ``fresh`` skips the cache: a shop that installed the app a moment ago
        must not be refused for the cache's minute.
        """
        key = (platform, domain)
        hit = None if fresh else self._shops.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1], hit[2]
        with self.runtime.engine.begin() as conn:
            row = shop_store.find_shop(conn, platform, domain)
            if row is None and create:
                shop_store.ensure_shop(conn, platform, domain, self.runtime.clock.now())
                row = shop_store.find_shop(conn, platform, domain)
        if row is None:
            return None, None
        with self._lock:
            self._shops[key] = (time.monotonic() + SHOP_CACHE_SECONDS, row.id, row)
        return row.id, row


def _state() -> ReceiverState:
    return current_app.extensions["aftersale.receiver"]


def _rejected(status: int, reason: str) -> tuple[int, dict]:
    return status, {"status": "rejected", "reason": reason}


def json_body(answer: dict) -> bytes:
    """An answer's bytes, without Flask's JSON provider (a measurable share of a webhook's cost)."""
    return orjson.dumps(answer)


@bp.post("/webhooks/<platform>")
@bp.post("/webhooks/<platform>/<path:shop>")
def receive(platform: str, shop: str | None = None):
    """The Flask route; ``webhooks/route.py`` serves the same handler in front of Flask."""
    status, answer = handle(_state(), request.environ, platform, shop)
    return Response(json_body(answer), status=status, mimetype="application/json")


#: answer status -> ``result`` label, where the receiver did not name it
RESULTS = {200: "stored", 503: "unavailable"}


def handle(state: ReceiverState, environ: dict, platform: str, shop: str | None):
    """(status, JSON answer) for one delivery; reads only the WSGI environ, so it runs with
    or without Flask's request context."""
    connector = get_connector(platform)
    if connector is None:
        return _rejected(404, f"unknown platform {platform!r}")
    started = time.perf_counter()
    seen = {"topic": ""}  # the topic once the signature proved it (a label: no attacker text)
    try:
        status, answer = _receive(state, environ, connector, platform, shop, seen)
    finally:
        logs.clear()
    result = seen.get("result") or RESULTS.get(status, "rejected")
    counted = _COUNTERS.get((platform, seen["topic"], result))
    if counted is None:  # ``labels()`` takes a lock and builds a key: once per label set
        if len(_COUNTERS) > 1000:
            _COUNTERS.clear()
        counted = _COUNTERS[platform, seen["topic"], result] = (
            metrics.WEBHOOKS.labels(platform, seen["topic"], result),
            metrics.INGEST_SECONDS.labels(platform),
        )
    counted[0].inc()
    counted[1].observe(time.perf_counter() - started)
    return status, answer


#: (platform, topic, result) -> the counter and histogram children it updates; topics come
#: from the platform's verified header, so the set is as small as the metric's label set
_COUNTERS: dict[tuple[str, str, str], tuple] = {}


def _receive(state: ReceiverState, environ: dict, connector, platform: str, url_shop, seen: dict):
    try:
        body = _read_body(environ, state.runtime.config.max_body_bytes)
    except DeliveryRejected as exc:
        log.warning("delivery.rejected", platform=platform, status=exc.status, reason=exc.reason)
        return _rejected(exc.status, exc.reason)
    if body is None:
        log.warning("delivery.rejected", platform=platform, status=413, reason="body too large")
        return _rejected(413, "body too large")
    headers = EnvironHeaders(environ)
    if connector.is_ping(headers, body):
        log.info("delivery.ping", platform=platform, status=200)
        seen["result"] = "ping"
        return 200, {"status": "pong"}
    try:
        meta = connector.read_meta(headers, url_shop=url_shop)
        log_fields = {
            "platform": platform,
            "shop": meta.shop,
            "delivery_id": meta.delivery_id,
            "topic": meta.topic,
        }
        logs.bind(**log_fields)
        # received and verified at DEBUG: two more INFO lines a request cost measurable CPU;
        # at INFO ``delivery.stored`` (verified and stored), ``.duplicate`` or ``.rejected`` say it
        log.debug("delivery.received", bytes=len(body))
        shop_id, shop_row = state.shop(platform, meta.shop, create=False)
        connector.verify(
            meta,
            body,
            connector.signing_secrets(meta, state.runtime.config, state.credentials(shop_row)),
        )
        log.debug("delivery.verified")
        seen["topic"] = meta.topic
        payload = _parse(body)
        key = connector.delivery_key(meta, payload)
        if connector.requires_install:
            shop_id, accepted = _installed_shop(state, connector, platform, meta, shop_row)
            if not accepted:
                log.info("delivery.unknown_shop_dropped", status=200)
                seen["result"] = "ignored"
                return 200, {"status": "ignored", "reason": "shop not installed"}
        elif shop_id is None:
            # Only a verified delivery may create a shop row (platforms signing with an app secret).
            shop_id, _ = state.shop(platform, meta.shop, create=connector.creates_shops)
        if shop_id is None:
            raise UnknownShop(f"shop {meta.shop!r} is not connected")
        pk = state.writer.store(
            storable(
                NewDelivery(
                    shop_id=shop_id,
                    topic=meta.topic,
                    dedupe_key=key,
                    delivery_id=meta.delivery_id,
                    event_id=meta.event_id,
                    api_version=meta.api_version,
                    triggered_at=meta.triggered_at,
                    received_at=state.runtime.clock.now(),
                    headers=stored_headers(environ),
                    body=body,
                    body_hash=connector.body_key(meta, body),
                )
            ),
            log_fields,
        )
    except DeliveryRejected as exc:
        log.warning("delivery.rejected", platform=platform, status=exc.status, reason=exc.reason)
        return _rejected(exc.status, exc.reason)
    except (SQLAlchemyError, StorageUnavailable) as exc:
        log.error("delivery.unavailable", status=503, error=logs.describe_error(exc))
        return _rejected(503, "storage unavailable, retry later")
    if pk is None:  # the writer logged the outcome
        seen["result"] = "duplicate"
        return 200, {"status": "duplicate"}
    return 200, {"status": "stored", "delivery": pk}


def _installed_shop(state: ReceiverState, connector, platform: str, meta, shop_row):
    """(shop id, True) for a shop that may deliver this topic; (None, False): answer and drop.

    Raises UnknownShop (401) for a shop that has not installed the app. The
    cached row is read again before refusing: the install may be newer.
    """
    if not state.installed(shop_row) and shop_row is not None:
        _, shop_row = state.shop(platform, meta.shop, create=False, fresh=True)
    if state.installed(shop_row):
        return shop_row.id, True
    if shop_row is not None and shop_row.status == "uninstalled":
        # It installed us once: Shopify may still deliver for a while. Answered 200 and
        # stored, so processing records it "ignored" (never acted on), as the uninstall says.
        return shop_row.id, True
    if meta.topic not in connector.ANY_SHOP_TOPICS:
        raise UnknownShop(f"shop {meta.shop!r} has not installed the app")
    if shop_row is None:
        return None, False
    return shop_row.id, True


def _read_body(environ: dict, limit: int) -> bytes | None:
    """The whole body, or None when it is larger than ``limit`` (answered 413).

    Werkzeug enforces MAX_CONTENT_LENGTH on a declared Content-Length, but it
    cuts a chunked body at the limit without a word: the signature over the
    cut bytes then fails and a too-large delivery was answered 401, telling the
    platform its secret is wrong. Reading one byte past the limit tells the two
    apart for both framings.
    """
    declared = environ.get("CONTENT_LENGTH")
    if declared:
        try:
            if int(declared) > limit:
                return None
        except ValueError:
            return None
    try:
        body = _read_declared(environ, int(declared)) if declared else _read_chunked(environ, limit)
    except RequestEntityTooLarge:
        return None
    return body if body is not None and len(body) <= limit else None


def _read_declared(environ: dict, length: int) -> bytes:
    """Exactly ``length`` bytes (already checked against the limit) in one read.

    Werkzeug's LimitedStream reads a 9 KB body in 8 KB slices through Python
    code, a fifth of the handler's CPU in the profile; the server's own stream
    reads it in one call. A client that sends fewer bytes than it declared is
    answered 400, as werkzeug would.
    """
    body = environ["wsgi.input"].read(length) if length else b""
    while len(body) < length:  # a stream may return short reads (werkzeug's test client does not)
        more = environ["wsgi.input"].read(length - len(body))
        if not more:
            raise DeliveryRejected("the body is shorter than its Content-Length")
        body += more
    return body


def _read_chunked(environ: dict, limit: int) -> bytes | None:
    """A body without Content-Length (chunked, de-chunked by the server), up to ``limit`` + 1."""
    stream = get_input_stream(environ, max_content_length=None)  # empty unless terminated
    parts, size = [], 0
    while size <= limit:
        chunk = stream.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return None if size > limit else b"".join(parts)


def _parse(body: bytes) -> dict:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DeliveryRejected(f"malformed JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise DeliveryRejected("expected a JSON object")
    return payload
