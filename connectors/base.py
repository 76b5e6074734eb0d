"""The one small interface every platform connector implements.

A connector knows everything platform-specific about a delivery: which
headers carry the shop, topic and delivery id, how the body is signed, what
makes two deliveries the same, and how a payload becomes canonical events.
The receiver and the workers only ever talk to this interface, so adding a
platform is one package here plus its fixtures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import ModuleType
from typing import TYPE_CHECKING, ClassVar

from aftersale.connectors.sanitize import (
    EMPTY_SHAPE,
    Shape,
    clean_payload,
    clean_text,
    collecting,
    warn,
)
from aftersale.core.errors import PermanentError
from aftersale.core.events import Event, iso, parse_time
from aftersale.core.platform import DeliverySettings, OrderState, ShopAccess

if TYPE_CHECKING:
    import requests

#: how far a payload's clock may run ahead of ours before its times are not believed
CLOCK_SKEW = timedelta(minutes=5)


class DeliveryRejected(Exception):
    """The request is not a delivery we can accept; ``status`` is the HTTP answer."""

    status = 400

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class MissingHeaders(DeliveryRejected):
    status = 400


class SignatureError(DeliveryRejected):
    """Bad, missing or unverifiable signature: answered 401, never retried into success."""

    status = 401


class UnknownShop(DeliveryRejected):
    status = 401


class PlatformUnsupported(PermanentError):
    """The platform has no such call (e.g. tagging a WooCommerce customer)."""


@dataclass(frozen=True)
class DeliveryMeta:
    """What the request headers say about a delivery, read before the body is trusted."""

    platform: str
    shop: str
    topic: str
    delivery_id: str | None = None
    event_id: str | None = None
    api_version: str | None = None
    triggered_at: datetime | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    received_at: datetime | None = None
    #: what stored the delivery when not a webhook: ``reconcile`` or ``backfill``
    #: (workers/reconcile.py); recorded in each event's ``source``
    via: str | None = None
    #: the shop's settings for this platform's connector, compiled from settings.yaml
    #: (``Settings.platforms[platform]``, e.g. WooCommerce's meta keys); set by the pipeline
    options: Mapping[str, object] = field(default_factory=dict)
    #: the shop's delivery signals (custom order statuses), from its settings
    delivery: DeliverySettings = field(default_factory=DeliverySettings)

    @property
    def happened_at(self) -> datetime | None:
        """Best time for an event whose payload carries none: when the platform sent it."""
        return self.triggered_at or self.received_at


@dataclass
class Normalized:
    """The result of normalizing one delivery.

    ``state`` is the order's new state to store (None: leave it unchanged);
    ``outcome`` says why a delivery produced no events ("stale",
    "unsupported_topic", "ignored_topic", "no_change", "unknown_status",
    "rejected": the body does not have the shape of its topic).
    """

    events: list[Event] = field(default_factory=list)
    state: OrderState | None = None
    outcome: str = "processed"
    detail: str | None = None
    #: what was odd in the payload (also on each event): values treated as missing, times clamped
    warnings: list[str] = field(default_factory=list)


class Connector(ABC):
    """Base class; see ``connectors/shopify/`` for the reference implementation."""

    name: ClassVar[str]
    #: topic -> handler(self, payload, meta, state) -> Normalized
    TOPIC_HANDLERS: ClassVar[dict[str, Callable]] = {}
    #: topics answered 200 and recorded, that produce no events on purpose
    IGNORED_TOPICS: ClassVar[frozenset[str]] = frozenset()
    #: True when a verified delivery from an unknown shop may create the shop
    creates_shops: ClassVar[bool] = False
    #: True when only shops that installed the app (active row, credentials) may deliver:
    #: an app-wide secret signing only the body proves nothing about the shop header
    requires_install: ClassVar[bool] = False
    #: answered 200 for any verified shop (mandatory privacy topics, the uninstall notice)
    ANY_SHOP_TOPICS: ClassVar[frozenset[str]] = frozenset()
    #: topic -> keys its bodies always have; a body without them is rejected (``misfit``)
    REQUIRED_KEYS: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: what each payload key the connector reads must be (connectors/sanitize.py)
    PAYLOAD_SHAPE: ClassVar[Shape] = EMPTY_SHAPE
    #: canonical fields (dotted, as rules write them) this platform's events never carry:
    #: a rule conditioned on one cannot match there, and ``rules check`` says so
    NEVER_FILLED: ClassVar[Mapping[str, str]] = {}
    #: the platform's order listing (``ORDER_TOPIC``, ``order_pages``, ``order_version``,
    #: ``as_deliveries``),
    #: for reconciliation and backfill; see connectors/shopify/orders.py
    orders: ClassVar[ModuleType | None] = None
    #: the product listing for ``aftersale catalog sync``; see connectors/shopify/products.py
    products: ClassVar[ModuleType | None] = None

    def is_ping(self, headers: Mapping[str, str], body: bytes) -> bool:
        """True for a platform's unsigned "are you there?" request, answered 200, stored nowhere."""
        return False

    @abstractmethod
    def read_meta(self, headers: Mapping[str, str], url_shop: str | None = None) -> DeliveryMeta:
        """Read shop, topic and ids from the headers; raise MissingHeaders when absent."""

    @abstractmethod
    def signing_secrets(
        self, meta: DeliveryMeta, config, credentials: dict | None
    ) -> Sequence[str]:
        """The secrets a delivery may be signed with.

        ``credentials`` are the shop's decrypted credentials, None when the shop
        is not connected (the receiver reads and decrypts them: a connector is
        pure translation and never touches the database). Raise UnknownShop when
        the platform signs per shop and the shop is not connected.
        """

    @abstractmethod
    def verify(self, meta: DeliveryMeta, raw_body: bytes, secrets: Sequence[str]) -> None:
        """Check the signature over the exact bytes received; raise SignatureError."""

    @abstractmethod
    def delivery_key(self, meta: DeliveryMeta, payload: dict) -> str:
        """A key equal for two deliveries of the same thing and different otherwise."""

    @abstractmethod
    def order_ref(self, topic: str, payload: dict) -> str | None:
        """The id of the order a payload is about, so its stored state can be loaded first."""

    def body_key(self, meta: DeliveryMeta, body: bytes) -> str | None:
        """A second dedupe key from the body's bytes (per shop and topic); None: none.
        For platforms signing only the body, whose header ids a replay can change."""
        return None

    def misfit(self, meta: DeliveryMeta, payload) -> str | None:
        """Why a payload is not shaped like its topic's bodies (None when it is). Checked
        before cleaning: an odd value is the sanitizer's business, a missing key is not."""
        topic = meta.topic
        required = self.REQUIRED_KEYS.get(topic)
        if required is None:
            return None
        if not isinstance(payload, dict):
            return f"{topic}: the body is not a JSON object"
        missing = [key for key in required if payload.get(key) in (None, "")]
        if missing:
            return f"{topic}: no {', '.join(missing)} (not a body of this topic)"
        return None

    def _event(self, kind, meta: DeliveryMeta, key, occurred, **subjects) -> Event:
        """An event of this platform's delivery; a subject given as None is absent."""
        return Event(
            kind=kind,
            shop=meta.shop,
            key=str(key),
            occurred_at=occurred,
            source={
                "platform": self.name,
                "topic": meta.topic,
                "delivery_id": meta.delivery_id,
                **({"via": meta.via} if meta.via else {}),
            },
            **{k: v for k, v in subjects.items() if v is not None},
        )

    def normalize(self, meta: DeliveryMeta, payload: dict, state: OrderState) -> Normalized:
        """Dispatch on topic; unknown topics are recorded as unsupported, never an error,
        and a body that is not shaped like its topic's as rejected (``misfit``).

        The payload is cleaned first (control characters, values of the wrong
        type: connectors/sanitize.py), and times the payload puts in the future
        of the delivery are clamped; what was odd is recorded as warnings on the
        result and on every event.
        """
        if meta.topic in self.IGNORED_TOPICS:
            return Normalized(outcome="ignored_topic")
        handler = self.TOPIC_HANDLERS.get(meta.topic)
        if handler is None:
            return Normalized(outcome="unsupported_topic", detail=meta.topic)
        misfit = self.misfit(meta, payload)
        if misfit is not None:
            return Normalized(outcome="rejected", detail=misfit)
        with collecting() as warnings:
            result = handler(self, clean_payload(payload, self.PAYLOAD_SHAPE), meta, state)
            _clamp_version(result, meta)
        result.warnings = warnings
        for event in result.events:
            event.warnings = list(warnings) + _clamp_event(event, meta)
        return result

    # -- platform calls: the store acting on itself --------------------------------
    # Each raises aftersale.errors.TransientError (timeouts, 429 with its wait,
    # 5xx) or PermanentError (4xx, missing credentials), and returns a small dict
    # recorded on the action (ids the platform gave back). ``session`` is the
    # caller's pooled ``requests.Session`` (core.http.make_session): the caller
    # owns connections and their lifetime, a connector keeps none of its own.

    def tag_order(
        self, shop: ShopAccess, order_ref: str, tags: list[str], *, session: requests.Session
    ) -> dict:
        raise PlatformUnsupported(f"{self.name} cannot tag orders")

    def tag_customer(
        self, shop: ShopAccess, customer_ref: str, tags: list[str], *, session: requests.Session
    ) -> dict:
        raise PlatformUnsupported(f"{self.name} cannot tag customers")

    def add_order_note(
        self, shop: ShopAccess, order_ref: str, note: str, *, session: requests.Session
    ) -> dict:
        raise PlatformUnsupported(f"{self.name} cannot add order notes")

    def create_discount_code(
        self, shop: ShopAccess, spec: dict, *, session: requests.Session
    ) -> dict:
        """Create a single-use code; ``spec`` has code, kind (percentage|fixed_amount), value,
        currency, expires_at, customer email. Returns at least {"code": ..., "id": ...}."""
        raise PlatformUnsupported(f"{self.name} cannot create discount codes")


def _latest_believable(meta: DeliveryMeta) -> datetime | None:
    return meta.received_at + CLOCK_SKEW if meta.received_at else None


def _clamp_event(event: Event, meta: DeliveryMeta) -> list[str]:
    """An event said to happen after the delivery arrived happened when it arrived.

    Due times are computed from ``occurred_at``, so a payload clock in the
    future (or a ``created_at`` in year 9999) would postpone mails forever. The
    payload's value stays in the event data and in ``source.payload_occurred_at``.
    """
    latest = _latest_believable(meta)
    if latest is None or event.occurred_at <= latest:
        return []
    claimed = event.occurred_at
    event.occurred_at = meta.received_at
    event.source = {**event.source, "payload_occurred_at": iso(claimed)}
    return [
        f"occurred_at: the payload says {iso(claimed)}, after the delivery was received "
        f"({iso(meta.received_at)}); scheduled from the time received"
    ]


def believable(meta: DeliveryMeta, moment: datetime, what: str) -> datetime:
    """``moment``, or the time received when the payload puts it in the future (with a warning).

    For times a connector keeps in its bookkeeping (when a shipment status was
    seen): one in year 9999 would make every later status look out of order.
    """
    latest = _latest_believable(meta)
    if latest is None or moment <= latest:
        return moment
    warn(
        f"{what}: the payload says {iso(moment)}, after the delivery was received "
        f"({iso(meta.received_at)}); the time received is used"
    )
    return meta.received_at


def _clamp_version(result: Normalized, meta: DeliveryMeta) -> None:
    """A modification time in the future would make every later update look stale."""
    latest = _latest_believable(meta)
    state = result.state
    if latest is None or state is None or state.version is None or state.version <= latest:
        return
    warn(
        f"version: the payload says it was modified {iso(state.version)}, after the delivery "
        f"was received; the time received is kept instead"
    )
    result.state = OrderState(order=state.order, extra=state.extra, version=meta.received_at)


def hmac_sha256_base64(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_base64_hmac(signature: str | None, body: bytes, secrets: Sequence[str]) -> None:
    """Constant-time check of a base64 HMAC-SHA256 against each current secret.

    More than one secret is accepted so a rotation does not drop deliveries
    signed with the old one while the platform switches over.
    """
    if not signature:
        raise SignatureError("missing signature")
    if not secrets:
        raise SignatureError("no secret configured for this shop")
    given = signature.strip().encode("ascii", "replace")
    matched = False
    for secret in secrets:
        expected = hmac_sha256_base64(secret, body).encode("ascii")
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureError("signature does not match")


class EnvironHeaders(Mapping):
    """Request headers read straight from the WSGI environ, case-insensitively.

    Werkzeug's header view re-derives names on every lookup; a connector reads
    a dozen headers per webhook, so this keeps that off the hot path.
    """

    __slots__ = ("environ",)
    _keys: dict[str, str] = {}

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ

    @classmethod
    def _key(cls, name: str) -> str:
        key = cls._keys.get(name)
        if key is None:
            upper = name.upper().replace("-", "_")
            key = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{upper}"
            cls._keys[name] = key
        return key

    def get(self, name: str, default=None):
        return self.environ.get(self._key(name), default)

    def __getitem__(self, name: str) -> str:
        return self.environ[self._key(name)]

    def __iter__(self):
        for key in self.environ:
            if key.startswith("HTTP_"):
                yield key[5:].replace("_", "-").title()

    def __len__(self) -> int:
        return sum(1 for _ in self)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, stripped; None when absent or empty.

    Werkzeug's request headers are already case-insensitive; a plain dict
    (headers as stored with a delivery) is searched case-insensitively.
    """
    value = headers.get(name)
    if value is None and isinstance(headers, dict):
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    if value is None:
        return None
    value = value.strip()
    return value or None


SIGNATURE_HEADER_WORDS = ("SIGNATURE", "HMAC")


def stored_headers(environ: Mapping[str, str]) -> dict[str, str]:
    """The platform's ``X-`` headers plus content type and agent, signatures left out.

    Reads the WSGI environ directly: iterating werkzeug's header view costs
    more than the rest of the header handling of a webhook together.
    """
    kept = {}
    for key, value in environ.items():
        if key.startswith("HTTP_X_"):
            if not any(word in key for word in SIGNATURE_HEADER_WORDS):
                kept[key[5:].replace("_", "-").title()] = value
        elif key == "HTTP_USER_AGENT":
            kept["User-Agent"] = value
        elif key == "CONTENT_TYPE":
            kept["Content-Type"] = value
    return kept


# -- small payload helpers every connector uses --------------------------------------


def compact(values: dict) -> dict:
    """Without None and empty-string values (absent facts stay absent, not blank)."""
    return {k: v for k, v in values.items() if v is not None and v != ""}


def missing_id(what: str) -> Normalized:
    """The result for a payload without the id everything hangs on: recorded, no events."""
    warn(f"{what}: no usable id; nothing to act on")
    return Normalized(outcome="invalid", detail=f"no {what} id")


def ref(value) -> str | None:
    """A platform id as the string events use; None for a missing, empty or unusable one."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else None
    text = clean_text(str(value)).strip()
    return text or None


def time_or_none(value) -> datetime | None:
    """A platform time in UTC, or None when absent or unreadable (never an error)."""
    if value is not None and not isinstance(value, str | datetime):
        return None
    try:
        return parse_time(value)
    except (ValueError, TypeError, OverflowError):
        return None


def decimal_or_zero(value) -> Decimal:
    if isinstance(value, dict | list | bool):
        return Decimal(0)
    try:
        number = Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return number if number.is_finite() else Decimal(0)
