"""Gettext catalogs of the message templates: complete in every language, overridable per shop.

The built-in templates are written once, in English, with their text in ``_()``; each
language is ``templates/_locales/<lang>/LC_MESSAGES/messages.po``, and the same for the web
pages a customer opens from a mail (``_pages/``, domain ``pages``: ``pages.po``). These
tests fail when a template or page has a string the ``.pot`` lacks, a catalog has a fuzzy,
untranslated or missing entry, or a template prints words outside gettext; and they show
that a shop changes one string or one file without copying the rest.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from babel.messages.pofile import read_po, write_po

from aftersale.core.config import BUILTIN_TEMPLATES_DIR, EXAMPLES_DIR
from aftersale.workers.catalog_check import extracted, folder_problems
from aftersale.workers.catalogs import LOCALES_DIR, PAGES_DOMAIN
from aftersale.workers.message_links import MessageLinks
from aftersale.workers.previews import template_context
from aftersale.workers.render import Renderer, TemplateProblem, message_locales
from tests.test_templates import LANGUAGES, SIGNER, STOREFRONT, shopify_event

POT = BUILTIN_TEMPLATES_DIR / LOCALES_DIR / "messages.pot"
PAGES_POT = BUILTIN_TEMPLATES_DIR / LOCALES_DIR / f"{PAGES_DOMAIN}.pot"
DOMAINS = {"messages": POT, PAGES_DOMAIN: PAGES_POT}
SHOP = "aftersale-demo.myshopify.com"
OTHER_SHOP = "other-shop.myshopify.com"


def po_path(folder: Path, locale: str, domain: str = "messages") -> Path:
    return Path(folder) / LOCALES_DIR / locale / "LC_MESSAGES" / f"{domain}.po"


def read(path: Path):
    with path.open("rb") as fp:
        return read_po(fp, locale=path.parent.parent.name)


def save(catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fp:
        write_po(fp, catalog, width=100)


# -- the shipped catalogs ---------------------------------------------------------------


def test_the_built_in_templates_and_catalogs_have_no_translation_problem():
    assert folder_problems(BUILTIN_TEMPLATES_DIR) == []


def test_the_pot_is_what_the_templates_use():
    pot = {(m.context, m.id) for m in read_po(POT.open("rb")) if m.id}
    assert extracted(BUILTIN_TEMPLATES_DIR) == pot
    assert len(pot) > 100  # the layout, all 15 messages and the care tips


def test_the_pages_pot_is_what_the_pages_use():
    pot = {(m.context, m.id) for m in read_po(PAGES_POT.open("rb")) if m.id}
    assert extracted(BUILTIN_TEMPLATES_DIR, PAGES_DOMAIN) == pot
    assert {(None, "Your email preferences"), (None, "This link does not work")} <= pot
    assert not pot & extracted(BUILTIN_TEMPLATES_DIR)  # page strings are not in messages.pot


@pytest.mark.parametrize("domain", sorted(DOMAINS))
@pytest.mark.parametrize("locale", [code for code in LANGUAGES if code != "en"])
def test_each_language_translates_every_string_and_keeps_its_placeholders(locale, domain):
    pot = read_po(DOMAINS[domain].open("rb"))
    catalog = read(po_path(BUILTIN_TEMPLATES_DIR, locale, domain))
    assert not catalog.fuzzy
    for template in pot:
        if not template.id:
            continue
        message = catalog.get(template.id, template.context)
        assert message is not None, f"{locale}: missing {template.id!r}"
        assert not message.fuzzy, f"{locale}: fuzzy {template.id!r}"
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert len(strings) == (catalog.num_plurals if message.pluralizable else 1)
        assert all(strings), f"{locale}: untranslated {template.id!r}"
        english = [s for s in strings if s == template.id and len(s) > 12]
        assert not english, f"{locale}: {template.id!r} is left in English"
    assert [errors for _, errors in catalog.check()] == []


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_every_shipped_language_has_a_catalog_and_no_other(domain):
    found = {p.parent.parent.name for p in BUILTIN_TEMPLATES_DIR.glob(f"_locales/*/*/{domain}.po")}
    assert found == set(LANGUAGES) - {"en"}


# -- what the check finds ---------------------------------------------------------------


@pytest.fixture
def templates_copy(tmp_path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(BUILTIN_TEMPLATES_DIR, folder)
    return folder


def test_a_fuzzy_missing_or_untranslated_entry_and_a_stale_pot_fail_the_check(
    templates_copy, cli_runner, tmp_path, monkeypatch
):
    german = read(po_path(templates_copy, "de"))
    german["Warm regards,"].flags.add("fuzzy")
    save(german, po_path(templates_copy, "de"))
    french = read(po_path(templates_copy, "fr"))
    french.delete("Get help")
    save(french, po_path(templates_copy, "fr"))
    polish = read(po_path(templates_copy, "pl"))
    polish["Total"].string = ""
    save(polish, po_path(templates_copy, "pl"))
    subject = templates_copy / "delivered" / "subject.txt"
    subject.write_text(subject.read_text() + '{{ _("Enjoy it!") }}\n')
    body = templates_copy / "delivered" / "body.html"
    body.write_text(body.read_text().replace("{% endblock %}\n", "<p>Enjoy it</p>{% endblock %}"))

    problems = "\n".join(folder_problems(templates_copy))
    assert "de/LC_MESSAGES/messages.po" in problems and "fuzzy: 'Warm regards,'" in problems
    assert "fr/LC_MESSAGES/messages.po: missing: 'Get help'" in problems
    assert "pl/LC_MESSAGES/messages.po" in problems and "untranslated: 'Total'" in problems
    assert "messages.pot: not extracted yet: 'Enjoy it!'" in problems
    assert "delivered/body.html: not translatable: Enjoy it" in problems

    from aftersale.cli import build

    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    result = cli_runner.invoke(build(), ["templates", "check", "--dir", str(templates_copy)])
    assert result.exit_code == 1 and "fuzzy: 'Warm regards,'" in result.output
    clean = cli_runner.invoke(build(), ["templates", "check", "--dir", str(BUILTIN_TEMPLATES_DIR)])
    assert clean.exit_code == 0 and "OK" in clean.output


def test_a_fuzzy_missing_or_untranslated_page_string_and_a_stale_pages_pot_fail_the_check(
    templates_copy, cli_runner, tmp_path, monkeypatch
):
    german = read(po_path(templates_copy, "de", PAGES_DOMAIN))
    german["Save my choices"].flags.add("fuzzy")
    save(german, po_path(templates_copy, "de", PAGES_DOMAIN))
    italian = read(po_path(templates_copy, "it", PAGES_DOMAIN))
    italian.delete("Care tips")
    save(italian, po_path(templates_copy, "it", PAGES_DOMAIN))
    azerbaijani = read(po_path(templates_copy, "az", PAGES_DOMAIN))
    azerbaijani["Reminders"].string = ""
    save(azerbaijani, po_path(templates_copy, "az", PAGES_DOMAIN))
    link = templates_copy / "_pages" / "link.html"
    link.write_text(
        link.read_text().replace(
            "<h1>{{ title }}</h1>", '<h1>{{ title }}</h1><p>{{ _("Thank you!") }} Goodbye</p>'
        )
    )

    problems = "\n".join(folder_problems(templates_copy))
    assert "de/LC_MESSAGES/pages.po" in problems and "fuzzy: 'Save my choices'" in problems
    assert "it/LC_MESSAGES/pages.po: missing: 'Care tips'" in problems
    assert "az/LC_MESSAGES/pages.po" in problems and "untranslated: 'Reminders'" in problems
    assert "pages.pot: not extracted yet: 'Thank you!'" in problems
    assert "_pages/link.html: not translatable: Goodbye" in problems
    assert "messages.pot: not extracted yet: 'Thank you!'" not in problems  # its own domain

    from aftersale.cli import build

    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    result = cli_runner.invoke(build(), ["templates", "check", "--dir", str(templates_copy)])
    assert result.exit_code == 1 and "fuzzy: 'Save my choices'" in result.output


def test_a_language_missing_a_string_is_not_sent_half_english(templates_copy):
    """A fuzzy or missing translation is never sent: the message goes out in the customer's
    next language (here the shop's default), whole."""
    german = read(po_path(templates_copy, "de"))
    german["Write a review"].flags.add("fuzzy")
    save(german, po_path(templates_copy, "de"))
    renderer = Renderer([templates_copy])
    assert "de" not in renderer.locales("review_invite")
    assert "de" in renderer.locales("thank_you")  # the other messages are still German
    rendered = render(renderer, "review_invite", ["de", "fr"])
    assert rendered.locale == "fr" and "Donner mon avis" in rendered.text


@pytest.mark.parametrize(
    ("customer", "shop_default", "expected", "words"),
    [
        ("sr-Latn-RS", "de", "sr", "Hvala na porudžbini"),  # the customer's, most specific first
        ("az_AZ", None, "az", "Sifarişiniz #1042 üçün"),
        ("pt-BR", "sl", "sl", "Hvala za vaše naročilo"),  # no Portuguese: the shop's default
        ("pt-BR", "pt", "en", "Thank you for your order"),  # neither: English
    ],
)
def test_the_language_chain_picks_a_catalog(customer, shop_default, expected, words):
    renderer = Renderer([BUILTIN_TEMPLATES_DIR])
    event = shopify_event("thank_you")
    context = template_context(event, "Kafeterija")
    context["customer"] = {**context["customer"], "locale": customer}
    context["order"] = {**context["order"], "locale": None}
    rendered = renderer.render("thank_you", context, message_locales(context, shop_default))
    assert rendered.locale == expected and rendered.subject.startswith(words)


# -- plurals, money and dates from Babel ------------------------------------------------------

RETURN_DAYS = {
    # the gettext plural form Babel's rules pick for 1, 3 and 14 days
    "ru": ("1 дня", "3 дней", "14 дней"),
    "pl": ("1 dnia", "3 dni", "14 dni"),
    "sl": ("1 dnevu", "3 dneh", "14 dneh"),
    "ro": ("1 zi", "3 zile", "14 zile"),
    "de": ("1 Tag ", "3 Tagen", "14 Tagen"),
    "en": ("1 day ", "3 days", "14 days"),
}


@pytest.mark.parametrize("locale", sorted(RETURN_DAYS))
def test_plural_forms_follow_the_language(locale):
    renderer = Renderer([BUILTIN_TEMPLATES_DIR])
    for days, expected in zip((1, 3, 14), RETURN_DAYS[locale], strict=True):
        storefront = replace(STOREFRONT, return_days=days)
        rendered = render(renderer, "returns_info", [locale], storefront=storefront)
        assert expected in rendered.text, (days, rendered.text)
    twenty = render(
        renderer, "returns_info", ["ro"], storefront=replace(STOREFRONT, return_days=20)
    )
    assert "20 de zile" in twenty.text  # Romanian says "de" from twenty on


# -- per-shop overrides -----------------------------------------------------------------------


def write(folder: Path, files: dict) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return folder


SHOP_PO = """
msgid ""
msgstr ""
"Content-Type: text/plain; charset=utf-8\\n"
"Language: de\\n"

msgid "Warm regards,"
msgstr "Liebe Grüße aus der Rösterei"
"""


def test_a_shop_overrides_one_string_and_keeps_the_rest_of_the_language(tmp_path):
    own = write(tmp_path / "own", {f"_shops/{SHOP}/_locales/de/LC_MESSAGES/messages.po": SHOP_PO})
    renderer = Renderer([own, BUILTIN_TEMPLATES_DIR])
    mine = render(renderer, "thank_you", ["de"], shop=SHOP)
    assert "Liebe Grüße aus der Rösterei" in mine.text and "Herzliche Grüße" not in mine.text
    assert mine.text.startswith("Hallo Ana,") and "Vielen Dank für Ihre Bestellung" in mine.text
    assert "Liebe Grüße aus der Rösterei" in mine.html
    theirs = render(renderer, "thank_you", ["de"], shop=OTHER_SHOP)
    assert "Herzliche Grüße" in theirs.text and "Rösterei" not in theirs.text


def test_a_shop_overrides_one_template_file_and_translates_its_new_string(tmp_path):
    own = write(
        tmp_path / "own",
        {
            f"_shops/{SHOP}/review_invite/subject.txt": (
                '{{ _("A minute for %(product)s?", product=order.line_items[0].title) }}\n'
            ),
            f"_shops/{SHOP}/_locales/sr/LC_MESSAGES/messages.po": """
                msgid ""
                msgstr ""
                "Content-Type: text/plain; charset=utf-8\\n"

                msgid "A minute for %(product)s?"
                msgstr "Imate minut za %(product)s?"
                """,
        },
    )
    renderer = Renderer([own, BUILTIN_TEMPLATES_DIR])
    serbian = render(renderer, "review_invite", ["sr"], shop=SHOP)
    assert serbian.subject == "Imate minut za Leather shoe care kit?"
    assert "Napišite recenziju" in serbian.text  # the body is still the built-in one
    assert render(renderer, "review_invite", ["en"], shop=SHOP).subject.startswith("A minute for")
    # German has no translation of the shop's new subject: the whole mail falls back
    german = render(renderer, "review_invite", ["de"], shop=SHOP)
    assert german.locale == "en" and german.subject.startswith("A minute for")
    assert "de" not in renderer.locales("review_invite", SHOP)
    assert "de" in renderer.locales("review_invite", OTHER_SHOP)
    other = render(renderer, "review_invite", ["de"], shop=OTHER_SHOP)
    assert other.subject == "Wie gefällt Ihnen Leather shoe care kit?"


def test_a_shop_folder_name_that_is_not_a_domain_is_never_a_path(tmp_path):
    own = write(tmp_path / "own", {"_shops/x/thank_you/subject.txt": "Hijacked"})
    renderer = Renderer([own, BUILTIN_TEMPLATES_DIR])
    for shop in ("../own/_shops/x", "/etc", ""):
        assert render(renderer, "thank_you", ["en"], shop=shop).subject != "Hijacked"


def test_a_catalog_babel_cannot_read_fails_naming_the_file(tmp_path, cli_runner, monkeypatch):
    broken = f"_shops/{SHOP}/_locales/de/LC_MESSAGES/messages.po"
    own = write(tmp_path / "own", {broken: 'msgid "Warm regards,"\nmsgstr "Liebe Grüße"\nGrüße\n'})
    renderer = Renderer([own, BUILTIN_TEMPLATES_DIR])
    with pytest.raises(TemplateProblem, match=re.escape(broken)):
        render(renderer, "thank_you", ["de"], shop=SHOP)
    assert render(renderer, "thank_you", ["de"], shop=OTHER_SHOP).locale == "de"

    from aftersale.cli import build

    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    result = cli_runner.invoke(build(), ["templates", "check", "--dir", str(own)])
    assert result.exit_code == 1 and broken in result.output


def test_rules_check_renders_a_shops_own_template_too(cli_runner, tmp_path, monkeypatch):
    pack = tmp_path / "pack"
    shutil.copytree(EXAMPLES_DIR / "starter", pack)
    write(pack / "templates", {f"_shops/{SHOP}/thank_you/subject.txt": "{{ order.totl_price }}"})
    from aftersale.cli import build

    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    result = cli_runner.invoke(build(), ["rules", "check", str(pack)])
    assert result.exit_code == 1
    assert "totl_price" in result.output and f"shop {SHOP}" in result.output


# -- the real path: a shop's override in a rule pack, sent by a worker -----------------------


@pytest.fixture
def rules_dir(tmp_path):
    """The starter pack with an override of one German string for the demo shop."""
    pack = tmp_path / "pack"
    shutil.copytree(EXAMPLES_DIR / "starter", pack)
    write(pack / "templates", {f"_shops/{SHOP}/_locales/de/LC_MESSAGES/messages.po": SHOP_PO})
    return pack


def test_a_worker_sends_the_shops_string_in_german(runtime, work, smtp_server):
    from tests.action_helpers import hand_off, plant, store_event

    runtime.load_rules_or_fail()  # the override is rendered by the load-time check too
    shop_id, event_id, event = store_event(runtime, customer_changes={"locale": "de"})
    (action_id,) = plant(runtime, shop_id, event_id, event, [("email", {"template": "thank_you"})])
    hand_off(runtime, [action_id])
    work()
    (message,) = smtp_server.handler.messages
    text = message.get_body(("plain",)).get_content()
    assert text.startswith("Hallo Ana,")
    assert "Liebe Grüße aus der Rösterei" in text and "Herzliche Grüße" not in text
    assert "Vielen Dank für Ihre Bestellung" in text
    before = runtime.renderer
    runtime.reload_rules()  # SIGHUP: templates and catalogs are read again with the rules
    assert runtime.renderer is not before


def render(renderer, template: str, locales, shop: str = SHOP, storefront=STOREFRONT):
    event = shopify_event(template)
    links = MessageLinks.sample(SIGNER, storefront, domain=shop, category="marketing")
    context = template_context(event, "Kafeterija")
    context["shop"] = {**context["shop"], "domain": shop}
    return renderer.render(template, context, list(locales), links)
