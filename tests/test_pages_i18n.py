"""The pages a customer opens from a mail speak the mail's language (issue 21), on both databases.

The preference centre (``/p/``) and the link pages (``/u/`` confirmation and result, the
400 pages of a broken or expired link) take their words from the ``pages`` gettext
catalogs. The language is the one the mail was written in (the link carries it), else
the browser's Accept-Language best match among the shipped languages, else English.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from html import unescape

import pytest
from babel.messages.pofile import read_po
from sqlalchemy import update

from aftersale.core.catalogs import LOCALES_DIR, PAGES_DOMAIN
from aftersale.core.config import BUILTIN_TEMPLATES_DIR, EXAMPLES_DIR
from aftersale.core.links import LinkClaims, key_version
from aftersale.store import shops as shop_store
from aftersale.store.tables import actions, suppressions
from aftersale.webhooks.link_pages import PAGES, page
from aftersale.webhooks.preference_page import render as preference_page
from tests.action_helpers import plant, store_event
from tests.helpers import count
from tests.test_templates import LANGUAGES

RECIPIENT = "ana.kovac@example.com"
PAGES_POT = BUILTIN_TEMPLATES_DIR / LOCALES_DIR / f"{PAGES_DOMAIN}.pot"


@pytest.fixture
def mail(runtime, app):
    """A marketing mail's action (with its recipient, as the sender stores it) and the shop."""
    shop_id, event_id, event = store_event(runtime)
    (action_id,) = plant(
        runtime,
        shop_id,
        event_id,
        event,
        [("email", {"template": "care_tips"})],
        category="marketing",
    )
    with runtime.engine.begin() as conn:
        conn.execute(update(actions).where(actions.c.id == action_id).values(recipient=RECIPIENT))
        shop = shop_store.get_shop(conn, shop_id)
    return shop, action_id


def link(runtime, mail, kind: str, locale: str | None) -> str:
    """The path of a signed link of ``kind`` written in ``locale`` (None: no language)."""
    shop, action_id = mail
    claims = LinkClaims(kind=kind, shop_id=shop.id, action_id=action_id, locale=locale)
    url = runtime.link_signer.url(claims, key_version(shop))
    return url[len(runtime.config.public_url) :]


def words(html: str) -> str:
    """The page's visible text in one line (tags and the style sheet dropped)."""
    html = re.sub(r"(?is)<style\b.*?</style>", " ", html)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


GERMAN_AND_POLISH = {
    "de": {
        "preferences": [
            "Ihre E-Mail-Einstellungen",
            "Wählen Sie, welche E-Mails",
            "Wir fragen, wie Ihnen Ihr Kauf gefällt.",  # the starter pack asks for reviews
            "Auswahl speichern",
            "Von allen abmelden",
        ],
        "confirm": ["abmelden?", "erhält keine Angebote und Erinnerungen mehr", "Abmelden"],
        "done": ["Sie sind abgemeldet", "erhält keine Marketing-E-Mails mehr"],
        "saved": "Ihre Auswahl ist gespeichert.",
    },
    "pl": {
        "preferences": [
            "Twoje ustawienia e-maili",
            "Wybierz, jakie wiadomości",
            "Pytamy o Twoją opinię o zakupie.",
            "Zapisz mój wybór",
            "Wypisz mnie ze wszystkich",
        ],
        "confirm": [
            "Wypisać się z wiadomości od",
            "nie będą już przychodzić oferty",
            "Wypisz mnie",
        ],
        "done": ["Wypisano Cię z listy", "nie będzie już wysyłać wiadomości marketingowych"],
        "saved": "Twój wybór został zapisany.",
    },
}
ENGLISH = ["Your email preferences", "Save my choices", "Unsubscribe", "Emails about your orders"]


@pytest.mark.parametrize("locale", sorted(GERMAN_AND_POLISH))
def test_the_preference_page_is_in_the_mails_language(runtime, client, mail, locale):
    expected = GERMAN_AND_POLISH[locale]
    path = link(runtime, mail, "preferences", locale)
    answer = client.get(path, headers={"Accept-Language": "en"})  # the mail's language wins
    assert answer.status_code == 200
    assert f'<html lang="{locale}">' in answer.text
    text = words(answer.text)
    for phrase in expected["preferences"]:
        assert phrase in text, (phrase, text)
    assert "a***@example.com" in text  # the address, masked
    assert not [english for english in ENGLISH if english in text], text

    saved = client.post(path, data={"form": "preferences", "shown": ["offers"], "keep": []})
    assert saved.status_code == 200 and expected["saved"] in words(saved.text)


@pytest.mark.parametrize("locale", sorted(GERMAN_AND_POLISH))
def test_the_unsubscribe_confirmation_and_result_are_in_the_mails_language(
    runtime, client, mail, locale
):
    expected = GERMAN_AND_POLISH[locale]
    path = link(runtime, mail, "unsubscribe", locale)
    confirm = client.get(path)
    assert confirm.status_code == 200 and f'<html lang="{locale}">' in confirm.text
    text = words(confirm.text)
    for phrase in expected["confirm"]:
        assert phrase in text, (phrase, text)
    assert "Aftersale Demo Shop" in text and "a***@example.com" in text
    assert not [english for english in ENGLISH if english in text], text
    assert count(runtime.engine, suppressions) == 0  # GET only asks

    done = client.post(path)
    assert done.status_code == 200
    for phrase in expected["done"]:
        assert phrase in words(done.text), phrase
    assert count(runtime.engine, suppressions) == 1


@pytest.mark.parametrize(
    ("token_locale", "accept", "expected", "title"),
    [
        (None, "fr-CH, fr;q=0.9, en;q=0.8", "fr", "Se désabonner de Aftersale Demo Shop\u00a0?"),
        (
            None,
            "pt-BR, it;q=0.5",
            "it",
            "Annullare l’iscrizione alle email di Aftersale Demo Shop?",
        ),
        (None, "pt-BR, ja;q=0.5", "en", "Unsubscribe from Aftersale Demo Shop?"),
        ("sr-Latn-RS", "de", "sr", "Odjava sa mejlova prodavnice Aftersale Demo Shop?"),
        ("pt-BR", "az", "az", "Aftersale Demo Shop məktublarından abunəlikdən çıxılsın?"),
    ],
)
def test_without_a_known_language_in_the_link_the_browser_decides(
    runtime, client, mail, token_locale, accept, expected, title
):
    answer = client.get(
        link(runtime, mail, "unsubscribe", token_locale), headers={"Accept-Language": accept}
    )
    assert answer.status_code == 200 and f'<html lang="{expected}">' in answer.text
    assert f"<h1>{title}</h1>" in answer.text


def test_a_broken_link_is_answered_in_the_browsers_language(runtime, client, mail):
    path = link(runtime, mail, "preferences", None)
    broken = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")
    answer = client.get(broken, headers={"Accept-Language": "es-ES,es;q=0.9"})
    assert answer.status_code == 400 and '<html lang="es">' in answer.text
    assert "Este enlace no funciona" in answer.text
    polish = client.get(link(runtime, mail, "review", "pl")[:-3] + "zzz")
    assert polish.status_code == 400 and "Ten link nie działa" in polish.text


VALUES = {"shop": "Kafeterija", "email": "a***@example.com"}


def _every_variant(locale: str) -> str:
    """Every page and every branch of the preference page, rendered in ``locale``."""
    values = VALUES
    parts = [page(name, locale, action="/u/x", **values) for name in PAGES]
    everything = ["review_requests", "care_tips", "offers", "reminders"]
    parts.append(
        preference_page(
            locale, action="/p/x", shown=everything, muted=frozenset(), saved=True, **values
        )
    )
    parts.append(preference_page(locale, action="/p/x", shown=[], muted=frozenset(), **values))
    parts.append(
        preference_page(
            locale, action="/p/x", shown=[], muted=frozenset(), unsubscribed=True, **values
        )
    )
    return words("\n".join(parts))


@pytest.mark.parametrize("locale", [code for code in LANGUAGES if code != "en"])
def test_every_page_string_shows_translated_in_every_language(locale):
    with PAGES_POT.open("rb") as fp:
        msgids = [m.id for m in read_po(fp) if m.id]
    english = _every_variant("en")
    for msgid in msgids:  # every string is on some page...
        assert msgid % VALUES in english, msgid
    text = _every_variant(locale)
    # ...and none is left in English in another language (short words like "Rappels" or
    # "Promemoria" are not English sentences; compare sentences)
    left = [m for m in msgids if len(m) > 14 and m % VALUES in text]
    assert left == [], (locale, left)


PACK_PO = """
msgid ""
msgstr ""
"Content-Type: text/plain; charset=utf-8\\n"
"Language: de\\n"

msgid "Your email preferences"
msgstr "Welche Post von der Rösterei?"
"""


def test_a_rule_packs_catalog_overrides_one_page_string(config, clock, tmp_path):
    # deferred import: this test builds its own app on a runtime with its own rule pack
    from aftersale.runtime import Runtime, install
    from aftersale.web import create_app
    from tests.helpers import install_shop

    pack = tmp_path / "pack"
    shutil.copytree(EXAMPLES_DIR / "starter", pack)
    po = pack / "templates" / LOCALES_DIR / "de" / "LC_MESSAGES" / f"{PAGES_DOMAIN}.po"
    po.parent.mkdir(parents=True)
    po.write_text(textwrap.dedent(PACK_PO).lstrip())
    runtime = Runtime(config.replace(rules_dir=pack), clock)
    install(runtime)
    app = create_app(runtime=runtime)
    try:
        install_shop(runtime)
        shop_id, event_id, event = store_event(runtime)
        (action_id,) = plant(runtime, shop_id, event_id, event, [("email", {"template": "x"})])
        with runtime.engine.begin() as conn:
            conn.execute(
                update(actions).where(actions.c.id == action_id).values(recipient=RECIPIENT)
            )
            shop = shop_store.get_shop(conn, shop_id)
        answer = app.test_client().get(link(runtime, (shop, action_id), "preferences", "de"))
        text = words(answer.text)
        assert "Welche Post von der Rösterei?" in text and "Ihre E-Mail-Einstellungen" not in text
        assert "Auswahl speichern" in text  # the rest of German is the built-in catalog's
    finally:
        app.extensions["aftersale.receiver"].writer.stop()
        runtime.close()
        install(None)
