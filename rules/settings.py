"""A shop's settings, resolved once per action from the three places they come from.

Merge order, later wins:

1. the rule pack's ``settings.yaml``;
2. its ``shops:`` entry for the shop's domain (one deployment, several stores);
3. the shop's own row: ``shops.settings`` (``sender``, ``reply_to``, set when the
   store connected) and ``shops.name``.

The action carries the result (``ActionContext.settings``), so composing,
links and policy read one object instead of looking settings up five times
and overwriting the sender after the Message-ID domain was derived from it.
"""

from __future__ import annotations

from dataclasses import replace

from marshmallow import RAISE, Schema, fields, post_load, validate

from aftersale.connectors.woocommerce.customer_meta import OPTION as CUSTOMER_META
from aftersale.connectors.woocommerce.customer_meta import MetaKeys
from aftersale.rules.model import RuleSet, Settings

#: keys of ``shops.settings`` that override the rule pack's settings of the same name
SHOP_ROW_KEYS = ("sender", "reply_to")


def shop_settings(ruleset: RuleSet, shop_row) -> Settings:
    """The settings that apply to ``shop_row`` (a ``shops`` row), merged in the order above."""
    settings = ruleset.settings_for(shop_row.domain)
    own = shop_row.settings or {}
    changes = {key: own[key] for key in SHOP_ROW_KEYS if own.get(key)}
    if shop_row.name:
        changes["shop_name"] = shop_row.name
    return replace(settings, **changes) if changes else settings


#: ``consent:`` in settings.yaml, the store owner's legal basis for marketing messages
CONSENT_BASES = ("explicit", "existing_customers")

_META_KEY = fields.String(validate=validate.Length(min=1, max=255))


class ConsentMetaSchema(Schema):
    """``consent_meta: {email: [...], sms: [...]}``: the order/user meta keys holding opt-ins."""

    class Meta:
        unknown = RAISE

    email = fields.List(_META_KEY, load_default=None)
    sms = fields.List(_META_KEY, load_default=None)


class WooCommerceSchema(Schema):
    """``woocommerce:`` in settings.yaml: which plugin meta the connector reads. A list given
    replaces its default (customer_meta.py); an empty list turns that reading off."""

    class Meta:
        unknown = RAISE

    consent_meta = fields.Nested(ConsentMetaSchema, load_default=dict)
    language_meta = fields.List(_META_KEY, load_default=None)

    @post_load
    def compile(self, data, **kwargs) -> dict:
        """The connector's options (``DeliveryMeta.options``), compiled once."""
        consent = data["consent_meta"] or {}
        keys = MetaKeys.build(
            email_consent=consent.get("email"),
            sms_consent=consent.get("sms"),
            language=data["language_meta"],
        )
        return {CUSTOMER_META: keys}
