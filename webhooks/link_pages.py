"""The few small pages a customer sees after clicking a link: in English, Serbian and Russian.

They are short on purpose: one sentence on what happened or what will
happen, and one button at most. A page in the customer's language comes from
the locale the mail was written in (carried in the link), else the browser's
Accept-Language, else English.
"""

from __future__ import annotations

from flask import render_template_string

TEXTS = {
    "en": {
        "confirm_title": "Unsubscribe from {shop}?",
        "confirm_body": "{email} will no longer get offers and reminders from {shop}. "
        "Emails about your orders and deliveries will still arrive.",
        "button": "Unsubscribe",
        "done_title": "You are unsubscribed",
        "done_body": "{email} will get no more marketing emails from {shop}. "
        "Emails about your orders and deliveries will still arrive.",
        "invalid_title": "This link does not work",
        "invalid_body": "It may have been cut short or changed on the way. Please open it again "
        "from the email, or simply reply to the email.",
        "expired_title": "This link has expired",
        "expired_body": "Links in our emails work for a limited time. "
        "Reply to the email and we will gladly help.",
        "unknown_address_title": "We could not find your address",
        "unknown_address_body": "Reply to the email with the word 'unsubscribe' and {shop} "
        "will take you off the list by hand.",
    },
    "sr": {
        "confirm_title": "Odjava sa mejlova prodavnice {shop}?",
        "confirm_body": "Na adresu {email} više nećemo slati ponude i podsetnike. "
        "Mejlove o vašim porudžbinama i isporukama i dalje ćete dobijati.",
        "button": "Odjavi me",
        "done_title": "Odjavljeni ste",
        "done_body": "Na adresu {email} prodavnica {shop} više neće slati promotivne mejlove. "
        "Mejlove o vašim porudžbinama i isporukama i dalje ćete dobijati.",
        "invalid_title": "Ovaj link ne radi",
        "invalid_body": "Možda je skraćen ili izmenjen usput. Otvorite ga ponovo iz mejla "
        "ili jednostavno odgovorite na mejl.",
        "expired_title": "Ovaj link je istekao",
        "expired_body": "Linkovi iz naših mejlova važe ograničeno vreme. "
        "Odgovorite na mejl i rado ćemo vam pomoći.",
        "unknown_address_title": "Nismo pronašli vašu adresu",
        "unknown_address_body": "Odgovorite na mejl rečju „odjava” i prodavnica {shop} "
        "će vas ručno skinuti sa liste.",
    },
    "ru": {
        "confirm_title": "Отписаться от писем магазина {shop}?",
        "confirm_body": "На адрес {email} больше не будут приходить предложения и напоминания. "
        "Письма о ваших заказах и доставке будут приходить как прежде.",
        "button": "Отписаться",
        "done_title": "Вы отписались",
        "done_body": "Магазин {shop} больше не будет присылать рекламные письма на {email}. "
        "Письма о ваших заказах и доставке будут приходить как прежде.",
        "invalid_title": "Ссылка не работает",
        "invalid_body": "Возможно, она обрезалась или изменилась по дороге. Откройте её ещё раз "
        "из письма или просто ответьте на письмо.",
        "expired_title": "Срок действия ссылки истёк",
        "expired_body": "Ссылки в наших письмах действуют ограниченное время. "
        "Ответьте на письмо, и мы с радостью поможем.",
        "unknown_address_title": "Мы не нашли ваш адрес",
        "unknown_address_body": "Ответьте на письмо словом «отписаться», и магазин {shop} "
        "исключит вас из рассылки вручную.",
    },
}

PAGE = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ title }}</title>
<style>
body { font-family: -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       background: #f6f6f4; margin: 0; padding: 48px 16px; }
main { max-width: 460px; margin: 0 auto; background: #fff; border-radius: 8px; padding: 32px; }
h1 { font-size: 22px; margin: 0 0 12px; }
p { line-height: 1.5; }
button { font-size: 16px; padding: 12px 20px; border: 0; border-radius: 6px;
         background: #222; color: #fff; cursor: pointer; }
</style></head>
<body><main>
<h1>{{ title }}</h1>
<p>{{ body }}</p>
{% if action %}<form method="post" action="{{ action }}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">{{ button }}</button></form>{% endif %}
</main></body></html>
"""


def page_locale(asked: str | None, accept_languages) -> str:
    """The token's language if we have it, else the browser's best match, else English."""
    if asked:
        base = asked.lower().replace("_", "-").split("-")[0]
        if base in TEXTS:
            return base
    if accept_languages:
        return accept_languages.best_match(list(TEXTS)) or "en"
    return "en"


def page(name: str, locale: str | None, *, action: str | None = None, **values) -> str:
    """One of ``confirm``, ``done``, ``invalid``, ``expired``, ``unknown_address``."""
    base = (locale or "en").lower().replace("_", "-").split("-")[0]
    texts = TEXTS.get(base, TEXTS["en"])
    values = {"shop": "", "email": "", **values}
    return render_template_string(
        PAGE,
        lang=base if base in TEXTS else "en",
        title=texts[f"{name}_title"].format(**values),
        body=texts[f"{name}_body"].format(**values),
        button=texts["button"],
        action=action,
    )
