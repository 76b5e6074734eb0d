"""The buyer's language on WooCommerce: plugin order meta, then the user's, then the default.

WPML writes ``wpml_language`` (a language code), TranslatePress ``trp_language``
(a WordPress locale) on the order and the user, and Polylang Pro shows the
order's language as the top-level ``lang`` field (tests/fixtures/woocommerce/
SOURCES.md, "Consent and language"). WooCommerce's REST customer does not
expose the WordPress ``locale`` user meta (an internal key of its customer data
store), so a customer's own language is known only from such plugin meta.
The mail goes out in that language when the template is translated into it.
"""

from __future__ import annotations

import pytest

from aftersale.connectors.base import DeliveryMeta, OrderState
from aftersale.connectors.woocommerce import WooCommerceConnector
from aftersale.connectors.woocommerce.customer_meta import MetaKeys
from aftersale.store.tables import customers
from tests.helpers import rows
from tests.test_woocommerce import woo_shop  # noqa: F401  (fixture)
from tests.test_woocommerce_consent import customer_body, order_body, post

DOMAIN = "shop.example.com"


def normalized_order(body: dict, options=None):
    meta = DeliveryMeta(
        platform="woocommerce",
        shop=DOMAIN,
        topic="order.created",
        headers={"X-WC-Webhook-ID": "12", "X-WC-Webhook-Resource": "order"},
        options=options or {},
    )
    event, *_ = WooCommerceConnector().normalize(meta, body, OrderState()).events
    assert event.kind == "order.created"
    return event


@pytest.mark.parametrize(
    ("meta", "fields", "expected"),
    [
        ([("wpml_language", "sr")], {}, "sr"),  # WPML: a language code
        ([("trp_language", "ru_RU")], {}, "ru_RU"),  # TranslatePress: a WordPress locale
        ([], {"lang": "sr"}, "sr"),  # Polylang Pro: a top-level REST field
        # a meta key wins over Polylang's field, the first configured key over the next
        ([("trp_language", "ru_RU"), ("wpml_language", "sr")], {"lang": "de"}, "sr"),
        ([("wpml_language", "<b>")], {}, None),  # not a locale: ignored
        ([], {}, None),
    ],
    ids=["wpml", "translatepress", "polylang", "order-of-keys", "junk", "none"],
)
def test_locale_from_each_plugin(meta, fields, expected):
    event = normalized_order(order_body(meta, **fields))
    assert event.order["locale"] == expected
    assert event.customer.get("locale") == expected


def test_a_shops_language_keys_replace_the_defaults():
    keys = MetaKeys.build(language=["_site_language"])
    body = order_body([("wpml_language", "sr"), ("_site_language", "ru")])
    event = normalized_order(body, {"customer_meta": keys})
    assert event.order["locale"] == "ru"


@pytest.mark.parametrize(
    ("meta", "fields", "subject_language"),
    [
        ([("wpml_language", "sr")], {}, "sr"),
        ([("trp_language", "ru_RU")], {}, "ru"),
        ([], {"lang": "sr"}, "sr"),
        ([], {}, "en"),  # the shop's default_locale (starter pack: en)
    ],
    ids=["wpml", "translatepress", "polylang", "default"],
)
def test_the_thank_you_mail_goes_out_in_the_buyers_language(
    app, work, runtime, woo_shop, smtp_server, meta, fields, subject_language
):
    post(app.test_client(), work, "order.created__processing", order_body(meta, **fields))
    (mail,) = smtp_server.handler.messages
    assert mail["Content-Language"] == subject_language


def test_the_users_language_serves_a_later_order_without_one(
    app, work, runtime, woo_shop, smtp_server
):
    """TranslatePress keeps the language on the user too: a customer webhook carries it,
    and an order without language meta (placed from the admin, say) uses it."""
    client = app.test_client()
    post(client, work, "customer.created", customer_body([("trp_language", "sr_RS")]))
    post(client, work, "order.created__processing", order_body(customer_id=37))
    (customer,) = rows(runtime.engine, customers)
    assert customer.locale == "sr_RS"
    (mail,) = smtp_server.handler.messages
    assert mail["Content-Language"] == "sr"
