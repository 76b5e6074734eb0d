"""What messages need to know about a shop that its webhooks do not say.

Order payloads name products but not their pages, their type, their tags or
how long they last; they do not say where the shop's reviews, support and
return policy live. The ``storefront:`` block of ``settings.yaml`` does::

    storefront:
      url: https://kafa.example                 # default: https://<shop domain>
      support_email: podrska@kafa.example       # help links fall back to a mail to it
      product_url: "{shop_url}/products/{handle}"
      review_url: "{product_url}#reviews"
      help_url: "{shop_url}/pages/contact?order={order_name}"
      returns: {days: 14, url: "{shop_url}/policies/refund-policy"}
      products:                                 # by SKU or product id
        CARE-KIT-01: {type: leather, tags: [leather], replenish_after: 60d}
      cross_sell:                               # by product tag or type
        leather: [{title: Horsehair brush, url: "https://kafa.example/products/brush"}]

It is validated once at load time into a frozen :class:`Storefront`; URL
patterns are checked for unknown placeholders then, so a typo is a load
error, not a broken link in a customer's inbox.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import quote

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

#: placeholders each URL pattern may use
PLACEHOLDERS = {
    "url": set(),
    "product_url": {"shop_url", "product_id", "variant_id", "sku", "handle"},
    "review_url": {"shop_url", "product_id", "variant_id", "sku", "handle", "product_url"},
    "help_url": {"shop_url", "order_name", "order_number", "order_id", "email", "locale"},
    "tracking_url": {"tracking_number", "tracking_company"},
    "survey_url": {"shop_url", "order_name", "order_id", "score", "locale"},
    "returns_url": {"shop_url", "order_name", "order_id", "locale"},
}
#: where things are on each platform when settings say nothing
PLATFORM_DEFAULTS = {
    "shopify": {
        # Shopify derives a product's handle from its title unless the merchant changed it;
        # set products.<sku>.url where it differs.
        "product_url": "{shop_url}/products/{handle}",
        "review_url": "{product_url}#reviews",
        "help_url": "{shop_url}/pages/contact?order={order_name}",
        "returns_url": "{shop_url}/policies/refund-policy",
    },
    "woocommerce": {
        "product_url": "{shop_url}/?p={product_id}",  # WordPress resolves any post id
        "review_url": "{product_url}#reviews",  # WooCommerce's reviews tab
        "help_url": "",
        "returns_url": "",
    },
}
_FORMATTER = string.Formatter()


class UrlPattern(fields.String):
    """A URL with ``{placeholders}``; unknown placeholders are a load error."""

    def __init__(self, allowed: set[str], **kwargs):
        super().__init__(**kwargs)
        self.allowed = allowed

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            names = [name for _, name, spec, conv in _FORMATTER.parse(text) if name is not None]
        except ValueError as exc:
            raise ValidationError(f"bad URL pattern: {exc}") from exc
        unknown = sorted({n for n in names if n not in self.allowed})
        if unknown:
            allowed = ", ".join(sorted(self.allowed)) or "none"
            raise ValidationError(f"unknown placeholder {{{unknown[0]}}} (allowed: {allowed})")
        if text and not re.match(r"^(https?://|mailto:|\{)", text):
            raise ValidationError("a URL starts with https://, http:// or mailto:")
        return text


class Days(fields.Field):
    """``60d``, ``8w`` or a number of days -> whole days."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool):
            days = value
        else:
            match = re.fullmatch(r"\s*(\d+)\s*([dw])\s*", str(value))
            if not match:
                raise ValidationError(f"expected days like 60d or 8w, got {value!r}")
            days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
        if days < 1:
            raise ValidationError("at least one day")
        return days


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class ProductSchema(_Strict):
    type = fields.String(load_default=None)
    tags = fields.List(fields.String(), load_default=list)
    replenish_after = Days(load_default=None)
    url = UrlPattern(PLACEHOLDERS["product_url"], load_default=None)
    review_url = UrlPattern(PLACEHOLDERS["review_url"], load_default=None)
    title = fields.String(load_default=None)


class SuggestionSchema(_Strict):
    title = fields.String(required=True)
    url = fields.Url(required=True, schemes={"http", "https"})
    sku = fields.String(load_default=None)


class ReturnsSchema(_Strict):
    days = fields.Integer(load_default=14, validate=validate.Range(min=1, max=3650))
    url = UrlPattern(PLACEHOLDERS["returns_url"], load_default=None)


class StorefrontSchema(_Strict):
    url = fields.Url(load_default=None, schemes={"http", "https"})
    support_email = fields.Email(load_default=None)
    unsubscribe_email = fields.Email(load_default=None)
    product_url = UrlPattern(PLACEHOLDERS["product_url"], load_default=None)
    review_url = UrlPattern(PLACEHOLDERS["review_url"], load_default=None)
    help_url = UrlPattern(PLACEHOLDERS["help_url"], load_default=None)
    tracking_url = UrlPattern(PLACEHOLDERS["tracking_url"], load_default=None)
    survey_url = UrlPattern(PLACEHOLDERS["survey_url"], load_default=None)
    returns = fields.Nested(ReturnsSchema, load_default=lambda: ReturnsSchema().load({}))
    products = fields.Dict(
        keys=fields.String(), values=fields.Nested(ProductSchema), load_default=dict
    )
    cross_sell = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.Nested(SuggestionSchema), validate=validate.Length(min=1)),
        load_default=dict,
    )

    @post_load
    def _compile(self, data, **kwargs):
        returns = data.pop("returns")
        return Storefront(
            **data,
            return_days=returns["days"],
            returns_url=returns["url"],
        )


@dataclass(frozen=True)
class Storefront:
    """The compiled ``storefront:`` settings; :meth:`for_shop` binds them to one shop."""

    url: str | None = None
    support_email: str | None = None
    unsubscribe_email: str | None = None
    product_url: str | None = None
    review_url: str | None = None
    help_url: str | None = None
    tracking_url: str | None = None
    survey_url: str | None = None
    return_days: int = 14
    returns_url: str | None = None
    products: dict = field(default_factory=dict)
    cross_sell: dict = field(default_factory=dict)

    def for_shop(self, platform: str | None, domain: str, reply_to: str | None = None) -> ShopSite:
        defaults = PLATFORM_DEFAULTS.get(platform or "", PLATFORM_DEFAULTS["shopify"])

        def pick(name):
            value = getattr(self, name)
            return defaults.get(name, "") if value is None else value

        return ShopSite(
            storefront=self,
            shop_url=(self.url or f"https://{domain}").rstrip("/"),
            support_email=self.support_email or _address(reply_to),
            patterns={name: pick(name) for name in PLACEHOLDERS if name != "url"},
        )

    def product(self, item: dict | None) -> dict:
        """Settings for a line item, found by SKU first, then product id (``{}`` when none)."""
        item = item or {}
        for key in (item.get("sku"), item.get("product_id")):
            if key and str(key) in self.products:
                return self.products[str(key)]
        return {}


@dataclass(frozen=True)
class ShopSite:
    """The storefront of one shop: where its pages are, as URLs ready to put in a mail."""

    storefront: Storefront
    shop_url: str
    support_email: str | None
    patterns: dict

    def summary(self) -> dict:
        """What templates see as ``storefront``."""
        return {
            "url": self.shop_url,
            "support_email": self.support_email,
            "return_days": self.storefront.return_days,
        }

    def product_url(self, item: dict | None) -> str:
        item = item or {}
        own = self.storefront.product(item).get("url")
        return self._format(own or self.patterns["product_url"], self._product_values(item))

    def review_url(self, item: dict | None) -> str:
        item = item or {}
        values = {**self._product_values(item), "product_url": self.product_url(item)}
        own = self.storefront.product(item).get("review_url")
        return self._format(own or self.patterns["review_url"], values)

    def help_url(self, order: dict | None, email: str | None = None, locale: str = "") -> str:
        """The shop's support with the order filled in: the help page, else a mail to support."""
        order = order or {}
        name = order.get("name") or (f"#{order['number']}" if order.get("number") else "")
        if self.patterns["help_url"]:
            values = {
                "shop_url": self.shop_url,
                "order_name": name,
                "order_number": order.get("number") or "",
                "order_id": order.get("id") or "",
                "email": email or "",
                "locale": locale or "",
            }
            return self._format(self.patterns["help_url"], values)
        if self.support_email:
            return f"mailto:{self.support_email}?subject={quote(f'Order {name}'.strip())}"
        return self.shop_url

    def tracking_url(self, fulfillment: dict | None) -> str:
        fulfillment = fulfillment or {}
        if fulfillment.get("tracking_url"):
            return fulfillment["tracking_url"]
        number = fulfillment.get("tracking_number")
        if number and self.patterns["tracking_url"]:
            values = {
                "tracking_number": number,
                "tracking_company": fulfillment.get("tracking_company") or "",
            }
            return self._format(self.patterns["tracking_url"], values)
        return ""

    def returns_url(self, order: dict | None, locale: str = "") -> str:
        order = order or {}
        if not self.patterns["returns_url"]:
            return ""
        values = {
            "shop_url": self.shop_url,
            "order_name": order.get("name") or "",
            "order_id": order.get("id") or "",
            "locale": locale or "",
        }
        return self._format(self.patterns["returns_url"], values)

    def survey_url(self, order: dict | None, score: int | str, locale: str = "") -> str:
        order = order or {}
        if not self.patterns["survey_url"]:
            return ""
        values = {
            "shop_url": self.shop_url,
            "order_name": order.get("name") or "",
            "order_id": order.get("id") or "",
            "score": score,
            "locale": locale or "",
        }
        return self._format(self.patterns["survey_url"], values)

    def _product_values(self, item: dict) -> dict:
        return {
            "shop_url": self.shop_url,
            "product_id": item.get("product_id") or "",
            "variant_id": item.get("variant_id") or "",
            "sku": item.get("sku") or "",
            "handle": item.get("handle") or handleize(item.get("title") or ""),
        }

    @staticmethod
    def _format(pattern: str, values: dict) -> str:
        """Fill a pattern; values are URL-quoted, except URLs put inside another URL."""
        safe = {
            key: value if key in ("shop_url", "product_url") else quote(str(value), safe="")
            for key, value in values.items()
        }
        return pattern.format_map(safe)


def handleize(title: str) -> str:
    """A title as Shopify makes a default handle of it: ``Merino wool socks`` -> ``merino-wool-socks``."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")


def _address(value: str | None) -> str | None:
    if not value:
        return None
    match = re.search(r"[^\s<>@]+@[^\s<>@]+", value)
    return match.group(0) if match else None


def load_storefront(data: dict | None) -> Storefront:
    """Validate a ``storefront:`` mapping; raises marshmallow's ValidationError."""
    return StorefrontSchema().load(data or {})
