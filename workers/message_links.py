"""The links of one message: signed review, help, unsubscribe and preference links, and plain
shop links.

Templates reach this through filters (``item | review_link``,
``order | help_link``, ``customer | unsubscribe_link``,
``fulfillment | tracking_link``, ``item | product_url``). One
:class:`MessageLinks` is made per message, from the action it is sent for,
so every signed link names that action: a click can be traced to the mail
and cancel what that mail's rule said it cancels.
"""

from __future__ import annotations

from dataclasses import dataclass

from aftersale.core.links import LinkClaims, LinkSigner, key_version
from aftersale.core.storefront import ShopSite, Storefront, handleize


@dataclass(frozen=True)
class MessageLinks:
    signer: LinkSigner
    site: ShopSite
    shop_id: int
    key_version: int
    action_id: int
    category: str
    order_ref: str | None = None
    order_name: str | None = None
    locale: str | None = None

    @classmethod
    def for_action(
        cls, runtime, shop_row, settings, action, order: dict | None, locale: str | None
    ):
        """Links for a mail about to be sent for ``action`` (a row of ``actions``)."""
        return cls(
            signer=runtime.link_signer,
            site=settings.storefront.for_shop(
                shop_row.platform, shop_row.domain, settings.reply_to
            ),
            shop_id=shop_row.id,
            key_version=key_version(shop_row),
            action_id=action.id,
            category=action.category,
            order_ref=action.order_ref or (order or {}).get("id"),
            order_name=(order or {}).get("name"),
            locale=locale,
        )

    @classmethod
    def sample(
        cls,
        signer: LinkSigner,
        storefront: Storefront,
        *,
        platform: str = "shopify",
        domain: str = "example.myshopify.com",
        category: str = "transactional",
        reply_to: str | None = None,
        locale: str | None = None,
    ):
        """Links for a preview or a load-time check: real shapes, signed for no real shop."""
        return cls(
            signer=signer,
            site=storefront.for_shop(platform, domain, reply_to),
            shop_id=0,
            key_version=1,
            action_id=0,
            category=category,
            locale=locale,
        )

    def with_locale(self, locale: str | None) -> MessageLinks:
        return MessageLinks(**{**self.__dict__, "locale": locale})

    @property
    def marketing(self) -> bool:
        return self.category == "marketing"

    def review(self, item: dict | None) -> str:
        item = item or {}
        return self.signer.url(
            self._claims(
                "review",
                product_id=_text(item.get("product_id")),
                sku=_text(item.get("sku")),
                handle=_text(item.get("handle")) or handleize(item.get("title") or "") or None,
            ),
            self.key_version,
        )

    def product(self, item: dict | None) -> str:
        """A recommended product's page, through ``/g/`` so the click is recorded."""
        item = item or {}
        return self.signer.url(
            self._claims(
                "product",
                product_id=_text(item.get("product_id")),
                sku=_text(item.get("sku")),
                handle=_text(item.get("handle")) or handleize(item.get("title") or "") or None,
            ),
            self.key_version,
        )

    def help(self, order: dict | None = None) -> str:
        order = order or {}
        claims = self._claims("help")
        if order.get("id") and not claims.order_ref:
            claims = LinkClaims(**{**claims.__dict__, "order_ref": str(order["id"])})
        if order.get("name") and not claims.order_name:
            claims = LinkClaims(**{**claims.__dict__, "order_name": order["name"]})
        return self.signer.url(claims, self.key_version)

    def unsubscribe(self) -> str:
        return self.signer.url(self._claims("unsubscribe"), self.key_version)

    def preferences(self) -> str:
        """The preference centre (``/p/``): keep or mute each marketing sub-category."""
        return self.signer.url(self._claims("preferences"), self.key_version)

    def _claims(self, kind: str, **extra) -> LinkClaims:
        return LinkClaims(
            kind=kind,
            shop_id=self.shop_id,
            action_id=self.action_id,
            order_ref=self.order_ref,
            order_name=self.order_name,
            locale=self.locale,
            **extra,
        )


def _text(value) -> str | None:
    return None if value in (None, "") else str(value)
