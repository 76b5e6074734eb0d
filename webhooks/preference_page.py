"""The preference centre's page, in the language of the mail it was opened from.

Plain HTML with two forms and no script (``templates/_pages/preferences.html``):
a checkbox per marketing sub-category (ticked: keep getting it) with one save
button, and a separate "unsubscribe from all" button. It fits a 375 px phone
(one column, wrapping labels, large touch targets). Its words are the ``pages``
gettext catalogs, shared with the link pages (``link_pages.py``); the language
is the mail's, carried in the link, else the browser's, else English.
"""

from __future__ import annotations

from aftersale.core.preferences import SUBCATEGORIES
from aftersale.webhooks.link_pages import render_page


def render(
    locale: str | None,
    *,
    shop: str,
    email: str,
    action: str,
    shown: list[str],
    muted: frozenset[str],
    unsubscribed: bool = False,
    saved: bool = False,
) -> str:
    """The page: ``shown`` sub-categories with a tick for each one not ``muted``.

    ``shown`` empty means the customer cannot keep per-category choices (the mail
    named no customer), so only "unsubscribe from all" is offered.
    """
    return render_page(
        "preferences.html",
        locale,
        shop=shop,
        email=email,
        action=action,
        saved=saved,
        unsubscribed=unsubscribed,
        subcategories=[{"name": s, "kept": s not in muted} for s in SUBCATEGORIES if s in shown],
    )
