"""What a store platform and Aftersale exchange, below both connectors and the store.

``ShopAccess`` is how a platform call reaches a shop (handed to connectors by
the layers above, which decrypt credentials); ``OrderState`` is what
Aftersale last knew of an order (kept by ``store.state``, diffed by
connectors). Both live here so the store and the connectors, side by side,
need not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
