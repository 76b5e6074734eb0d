"""What a Shopify install must ask for, computed from the loaded rules.

A merchant sees the scopes on Shopify's consent screen, so an install asks
for what its rules use and no more: ``read_orders`` always, the read scope
of each webhook topic the rules' events come from, and the write scope of
each platform step (``tag_order``, ``discount_code``, ...). The webhook
topics are computed the same way, so the scopes and the subscriptions
cannot disagree. Pure: a RuleSet in, sorted tuples out (docs/shopify.md has
the table).
"""

from __future__ import annotations

from dataclasses import dataclass

from aftersale.connectors.shopify.subscriptions import (
    ALWAYS_TOPICS,
    BASE_SCOPES,
    CATALOG_TOPICS,
    KIND_TOPICS,
    MARKETING_CONSENT_TOPICS,
    STEP_SCOPES,
    topic_scope,
)
from aftersale.rules.catalog_facts import uses_catalog
from aftersale.rules.model import RuleSet


@dataclass(frozen=True)
class ShopifyNeeds:
    """The access scopes and webhook topics (``orders/create`` spelling) an install needs."""

    scopes: tuple[str, ...]
    topics: tuple[str, ...]

    @property
    def scope_param(self) -> str:
        """The ``scope`` of the authorize URL: comma-separated."""
        return ",".join(self.scopes)


def rule_kinds(rule) -> set[str]:
    """Every event kind a rule listens to: its triggers, what cancels it, what it waits for."""
    kinds = set(rule.on) | set(rule.cancel_on) | set(rule.cancel_on_customer)
    if rule.wait_for:
        kinds |= set(rule.wait_for.get("events") or ())
    return kinds


def shopify_needs(ruleset: RuleSet, shop: str | None = None) -> ShopifyNeeds:
    """Scopes and topics for the enabled rules (those applying to ``shop``, when given)."""
    topics = set(ALWAYS_TOPICS)
    scopes = set(BASE_SCOPES)
    for rule in ruleset.rules:
        if not rule.enabled or (shop and not rule.applies_to_shop(shop)):
            continue
        for kind in rule_kinds(rule):
            topics.update(KIND_TOPICS.get(kind, ()))
        for step in rule.steps:
            if step.type in STEP_SCOPES:
                scopes.add(STEP_SCOPES[step.type])
            if rule.category == "marketing":
                topics.update(MARKETING_CONSENT_TOPICS.get(step.type, ()))
    if uses_catalog(ruleset):  # products kept for recommendations and repurchase (issue 25)
        topics.update(CATALOG_TOPICS)
    scopes.update(s for s in map(topic_scope, topics) if s)
    return ShopifyNeeds(scopes=tuple(sorted(scopes)), topics=tuple(sorted(topics)))
