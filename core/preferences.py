"""Marketing sub-categories: what a customer can keep or mute in the preference centre.

A rule says ``category: marketing/review_requests``; plain ``marketing`` is
``marketing/offers``, the general bucket (offers and recommendations), so rule
files written before sub-categories existed keep loading and their mail is
muted by what best describes it. Transactional rules have no sub-category: a
shipping update is not something a customer opts out of.

The names here are stored (``actions.subcategory``, ``preferences.subcategory``)
and appear in rule files, so they are never renamed; new ones may be added.
"""

from __future__ import annotations

MARKETING = "marketing"
TRANSACTIONAL = "transactional"
CATEGORIES = (TRANSACTIONAL, MARKETING)

#: marketing sub-categories, in the order the preference page lists them
SUBCATEGORIES = ("review_requests", "care_tips", "offers", "reminders")
#: what plain ``category: marketing`` means
DEFAULT_SUBCATEGORY = "offers"


class BadCategory(ValueError):
    """A rule's ``category`` names no category or sub-category we know."""


def parse_category(value) -> tuple[str, str | None]:
    """``"marketing/care_tips"`` -> ``("marketing", "care_tips")``; ``"transactional"`` ->
    ``("transactional", None)``; plain ``"marketing"`` gets :data:`DEFAULT_SUBCATEGORY`.

    Raises:
        BadCategory: with a message a rule author can act on.
    """
    if not isinstance(value, str) or not value.strip():
        raise BadCategory(_HELP)
    category, slash, sub = value.strip().partition("/")
    if category not in CATEGORIES:
        raise BadCategory(f"unknown category {category!r}; {_HELP}")
    if category == TRANSACTIONAL:
        if slash:
            raise BadCategory(
                "transactional rules have no sub-category (customers cannot mute order and"
                " shipping information); write 'transactional'"
            )
        return category, None
    if not slash:
        return category, DEFAULT_SUBCATEGORY
    if sub not in SUBCATEGORIES:
        raise BadCategory(
            f"unknown marketing sub-category {sub!r}; one of "
            + ", ".join(f"marketing/{s}" for s in SUBCATEGORIES)
        )
    return category, sub


def subcategory_of(category: str, subcategory: str | None) -> str | None:
    """The sub-category an action counts under: its own, else the default for marketing
    (actions planned before sub-categories were stored), never one for transactional."""
    if category != MARKETING:
        return None
    return subcategory if subcategory in SUBCATEGORIES else DEFAULT_SUBCATEGORY


_HELP = (
    "category is 'transactional' (order and shipping information, always sent) or"
    " 'marketing/<sub-category>' (needs consent, honours unsubscribes, preferences and the"
    " frequency cap) with a sub-category of " + ", ".join(SUBCATEGORIES) + "; plain 'marketing'"
    " means marketing/" + DEFAULT_SUBCATEGORY
)
