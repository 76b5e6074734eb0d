"""Platform connectors, one package each, listed explicitly in :data:`CONNECTORS`."""

from __future__ import annotations

from aftersale.connectors.base import Connector
from aftersale.connectors.shopify import ShopifyConnector
from aftersale.connectors.woocommerce import WooCommerceConnector

CONNECTORS: dict[str, Connector] = {
    ShopifyConnector.name: ShopifyConnector(),
    WooCommerceConnector.name: WooCommerceConnector(),
}


def get_connector(platform: str) -> Connector | None:
    return CONNECTORS.get(platform)
