"""Platform connectors, one module each, listed explicitly in :data:`CONNECTORS`."""

from __future__ import annotations

from connectors.base import Connector
from connectors.shopify import ShopifyConnector
from connectors.woocommerce import WooCommerceConnector

CONNECTORS: dict[str, Connector] = {
    ShopifyConnector.name: ShopifyConnector(),
    WooCommerceConnector.name: WooCommerceConnector(),
}


def get_connector(platform: str) -> Connector | None:
    return CONNECTORS.get(platform)
