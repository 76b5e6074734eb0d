"""``shop_name_by_language``: a store named in Latin script writes its name in Cyrillic in its
Russian (or Serbian Cyrillic) mail, and only there.

Beside readers' expectations, this is what a mixed-script store can do about SpamAssassin's
MIXED_ES (docs/deliverability.md): the name is printed several times per message.
"""

from __future__ import annotations

from aftersale.core.config import BUILTIN_TEMPLATES_DIR
from aftersale.rules import load_rules
from aftersale.workers.message_links import MessageLinks
from aftersale.workers.previews import template_context
from aftersale.workers.render import Renderer
from tests.test_rules_loader import errors_of, write
from tests.test_templates import SIGNER, STOREFRONT, shopify_event

NAMES = {"ru": "Удобный дом", "sr-cyrl": "Удобни дом"}


def render(template: str, locales: list[str], names: dict):
    event = shopify_event(template)
    links = MessageLinks.sample(SIGNER, STOREFRONT, domain=event.shop, category="transactional")
    context = template_context(event, "Udobni dom", shop_names=names)
    return Renderer([BUILTIN_TEMPLATES_DIR]).render(template, context, locales, links)


def test_the_name_as_the_shop_writes_it_in_the_messages_language():
    russian = render("thank_you", ["ru"], NAMES)
    assert russian.locale == "ru"
    for part in (russian.text, russian.html):
        assert "Удобный дом" in part
        assert "Udobni dom" not in part
    english = render("thank_you", ["en"], NAMES)
    assert "Udobni dom" in english.text and "Удобный дом" not in english.text
    # Serbian mail is Latin script (the shipped catalog); the sr-cyrl name is not used there
    serbian = render("thank_you", ["sr-latn", "sr"], NAMES)
    assert serbian.locale == "sr"
    assert "Udobni dom" in serbian.text and "Удобни дом" not in serbian.text


def test_a_regional_language_takes_its_languages_name():
    # a customer writing ru-RU gets the Russian catalog; the "ru" name follows the language
    russian = render("shipping_update", ["ru-ru", "ru"], {"ru": "Удобный дом"})
    assert russian.locale == "ru"
    assert "Удобный дом" in russian.html


def test_settings_normalize_the_language_keys(tmp_path):
    write(
        tmp_path,
        "settings.yaml",
        """
        shop_name: Udobni dom
        shop_name_by_language:
          ru: Удобный дом
          sr_Cyrl: Удобни дом
        shops:
          other.myshopify.com:
            shop_name_by_language: {RU: Другой дом}
        """,
    )
    settings = load_rules(tmp_path, templates=["thank_you"]).settings
    assert settings.shop_name_by_language == NAMES
    other = settings.for_shop("other.myshopify.com")
    assert other.shop_name_by_language == {"ru": "Другой дом"}


def test_a_bad_language_or_an_empty_name_is_an_error_with_its_line(tmp_path):
    write(
        tmp_path,
        "settings.yaml",
        """
        shop_name: Udobni dom
        shop_name_by_language:
          russian: Удобный дом
          sr: ""
        """,
    )
    found = errors_of(tmp_path)
    assert any(
        "settings.yaml:" in e and "shop_name_by_language" in e and "language code" in e
        for e in found
    ), found
    assert any("settings.yaml:" in e and "shop_name_by_language" in e for e in found), found
    assert len([e for e in found if "shop_name_by_language" in e]) == 2, found
