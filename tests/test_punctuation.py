"""No doubled or stray punctuation in any built-in message, in any shipped language.

Every template is rendered (subject, text part, and the HTML part as the text a
reader sees) for its real Shopify event in every language the renderer knows
for it, so a language added to the catalogs is checked without touching this
file. Each is rendered three ways: the event as it is, the event with the
optional names empty (a customer without a first name), and with a discount
code that expires: where a template's own full stop meets an empty value or a
date that ends in one (Russian "7 декабря 2026 г.").
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from aftersale.core.config import BUILTIN_TEMPLATES_DIR
from aftersale.rules.loader import template_names_in
from aftersale.workers.message_links import MessageLinks
from aftersale.workers.previews import template_context
from aftersale.workers.render import BASE_LOCALE, Renderer, html_to_text
from tests.test_templates import SHOPIFY_EVENTS, SIGNER, STOREFRONT, shopify_event

RENDERER = Renderer([BUILTIN_TEMPLATES_DIR])
TEMPLATES = sorted(template_names_in([BUILTIN_TEMPLATES_DIR]))
#: what is never right in running text, in any of the languages: two full stops (an
#: ellipsis, three, is fine), a comma doubled or next to a full stop, a full stop after
#: "!", "?", ":" or ";", and a space before a full stop or comma (French puts a space
#: before "!", "?", ":" and ";", so those are not checked)
BAD = re.compile(
    r"(?<!\.)\.\.(?!\.)"
    r"|,,|\.,|,\.(?!\w)|[!?:;]\.(?!\.)"
    r"|[ \t\u00a0\u202f][.,](?=\s|$)"
    r"|^[ \t]*[.,](?=\s|$)",
    re.MULTILINE,
)


def _locales(name: str) -> list[str]:
    return sorted({BASE_LOCALE, *RENDERER.locales(name)})


CASES = [(name, locale) for name in TEMPLATES for locale in _locales(name)]


def _without_optional_names(event):
    """The event with the names a template may leave out set to None."""
    customer = {**(event.customer or {}), "first_name": None, "last_name": None}
    order = dict(event.order or {})
    if order.get("customer"):
        order["customer"] = {**order["customer"], "first_name": None, "last_name": None}
    return replace(event, customer=customer, order=order)


def _with_discount(context: dict) -> dict:
    """What a ``discount_code`` step before the email gives it (workers/executors/platform.py)."""
    discount = {
        "id": "gid://shopify/DiscountCodeNode/1",
        "code": "THANKS-7KQ2M9XD",
        "kind": "percentage",
        "value": "10",
        "currency": (context.get("order") or {}).get("currency"),
        "expires_at": "2026-12-07T10:00:00+00:00",
        "step_type": "discount_code",
    }
    return {**context, "steps": {"0": discount}, "discount": discount}


def _parts(name: str, locale: str, event, discount: bool = False) -> dict[str, str]:
    links = MessageLinks.sample(SIGNER, STOREFRONT, domain=event.shop, category="marketing")
    context = template_context(event, "Kafeterija")
    if discount:
        context = _with_discount(context)
    rendered = RENDERER.render(name, context, [locale], links)
    assert rendered.locale == locale, f"{name} was not rendered in {locale}"
    parts = {"subject": rendered.subject, "text": rendered.text}
    if rendered.html:
        parts["html"] = html_to_text(rendered.html)
    return parts


def _problems(parts: dict[str, str]) -> list[str]:
    found = []
    for part, text in parts.items():
        for match in BAD.finditer(text):
            start, end = max(match.start() - 30, 0), match.end() + 30
            found.append(f"{part}: {match.group()!r} in {text[start:end]!r}")
    return found


def test_every_template_and_language_is_checked():
    """The table follows the templates and the catalogs: nothing is left out."""
    assert set(TEMPLATES) == set(SHOPIFY_EVENTS)
    assert all(len(_locales(name)) >= 3 for name in TEMPLATES)


@pytest.mark.parametrize(("name", "locale"), CASES, ids=[f"{n}-{lo}" for n, lo in CASES])
def test_no_doubled_punctuation(name, locale):
    event = shopify_event(name)
    problems = _problems(_parts(name, locale, event))
    problems += [f"(discount) {p}" for p in _problems(_parts(name, locale, event, discount=True))]
    problems += [
        f"(no names) {p}" for p in _problems(_parts(name, locale, _without_optional_names(event)))
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "text",
    ["до 7 декабря 2026 г..", "Hello ,", "Thanks ,, Ana", "Done!.", "Zdravo Ana ."],
)
def test_the_check_catches_what_it_is_for(text):
    assert BAD.search(text)


@pytest.mark.parametrize(
    "text",
    ["Wait...", "https://shop.example/a.b,c", "Merci !", "4.590,00 RSD", "до 7 декабря 2026 г."],
)
def test_the_check_lets_correct_text_through(text):
    assert not BAD.search(text)
