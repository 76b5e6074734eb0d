"""What a store platform and Aftersale exchange, below both connectors and the store.

``ShopAccess`` is how a platform call reaches a shop (handed to connectors by
the layers above, which decrypt credentials); ``OrderState`` is what
Aftersale last knew of an order (kept by ``store.state``, diffed by
connectors). Both live here so the store and the connectors, side by side,
need not import each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType


@dataclass(frozen=True)
class ShopAccess:
    """What a platform call needs: the shop's address and decrypted credentials (never logged).

    ``api_url`` overrides the platform's API base URL (a proxy, or a local
    HTTP server standing in for the platform in tests).
    """

    domain: str
    credentials: dict = field(default_factory=dict, repr=False)
    api_url: str | None = None


@dataclass
class OrderState:
    """What Aftersale last knew of an order: the canonical order and connector bookkeeping.

    ``version`` is the platform's modification time of the stored state, so a
    delivery older than it is recognised as stale.
    """

    order: dict | None = None
    extra: dict = field(default_factory=dict)
    version: datetime | None = None

    @property
    def known(self) -> bool:
        return self.order is not None


#: custom order statuses stores add (TrackShip and Advanced Shipment Tracking register
#: ``delivered``; "Custom Order Status" plugins commonly add ``shipped``) -> the event they mean
DEFAULT_ORDER_STATUSES: Mapping[str, str] = MappingProxyType(
    {"delivered": "shipment.delivered", "shipped": "fulfillment.created"}
)
#: what an order status may be mapped to
ORDER_STATUS_KINDS = frozenset(
    {
        "fulfillment.created",
        "shipment.in_transit",
        "shipment.out_for_delivery",
        "shipment.ready_for_pickup",
        "shipment.delivered",
    }
)


@dataclass(frozen=True)
class DeliverySettings:
    """A shop's delivery signals, compiled once from ``settings.yaml`` (``delivery:``).

    Here, below both connectors and rules, because rules validate it and
    connectors read it: ``order_statuses`` says what a store's own order status
    means (WooCommerce sends it without the ``wc-`` prefix); ``estimate_days``
    (None: off, the default) and ``estimate_countries`` say when a parcel with no
    delivery signal is taken as delivered, by destination country code.
    """

    order_statuses: Mapping[str, str] = field(default_factory=lambda: DEFAULT_ORDER_STATUSES)
    estimate_days: int | None = None
    estimate_countries: Mapping[str, int] = field(default_factory=dict)

    @property
    def estimates(self) -> bool:
        return self.estimate_days is not None or bool(self.estimate_countries)

    def days_to(self, country: str | None) -> int | None:
        """Days from shipping to the estimated delivery for a destination; None: no estimate."""
        if country and country.upper() in self.estimate_countries:
            return self.estimate_countries[country.upper()]
        return self.estimate_days
