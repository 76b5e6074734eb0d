"""Compiled rules: immutable, validated, ready to evaluate."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from aftersale.core.platform import DeliverySettings
from aftersale.core.storefront import Storefront
from aftersale.rules.conditions import Condition
from aftersale.rules.history import uses_history
from aftersale.rules.recommend_settings import RecommendSettings

ONCE_PER = ("event", "order", "fulfillment", "customer")


@dataclass(frozen=True)
class Step:
    """One thing a rule does, e.g. ``email: {template: review_invite}``."""

    index: int
    type: str
    params: dict


@dataclass(frozen=True)
class Rule:
    name: str
    on: tuple[str, ...]
    condition: Condition
    steps: tuple[Step, ...]
    category: str
    wait: timedelta = timedelta(0)
    cancel_on: frozenset[str] = frozenset()
    once_per: str = "event"
    description: str = ""
    source: str = ""  # "file:line", for messages and `rules check`
    enabled: bool = True
    shops: frozenset[str] = frozenset()  # empty: every shop
    #: wait until this field's time (a dotted path), plus ``wait``; None: the event's time
    wait_until: tuple[str, ...] | None = None
    #: a due action not sent this long after its due time is skipped as late
    skip_after: timedelta | None = None
    #: with ``once_per``: once per subject within this window, instead of once ever
    once_within: timedelta | None = None
    #: shift message steps out of the shop's quiet hours; None: marketing rules only
    quiet_hours: bool | None = None
    #: over the shop's marketing frequency cap: skip (default) or defer to when allowed
    on_cap: str = "skip"
    #: wait for a later event on the same order: {"events", "timeout", "on_timeout"}
    wait_for: dict | None = None
    #: a second trigger for the same subject while one is pending: ignore it (single),
    #: replace the pending action (restart), or plan another beside it (queued)
    mode: str = "single"
    #: marketing only: what the preference centre lets a customer mute (core/preferences.py)
    subcategory: str | None = None
    # -- issue 22: rules keep their promises (docs/rules.md) --
    #: re-evaluate ``if`` just before a delayed send (``recheck: false`` turns it off)
    recheck: bool = True
    #: what a disabled or removed rule's pending actions do: ``drain`` (send) or ``cancel``
    on_disable: str = "drain"
    #: ``cancel_on`` entries with ``scope: customer``: kinds cancelling on any order
    cancel_on_customer: frozenset[str] = frozenset()
    #: ``send_at``: a local slot and weekdays (rules.timing.SendWindow); None: any time
    send_at: object | None = None
    #: ``digest``: {"window": timedelta, "key": "order" | "customer"}; None: one per event
    digest: dict | None = None
    #: a short hash of the rule's definition; actions record the version that planned them
    version: str = ""
    #: ``wait: {until: repurchase_due, fallback: 30d}``: the wait when the ``until`` field is
    #: missing (no trusted repurchase cycle), counted from the event (rules/repurchase.py)
    wait_fallback: timedelta | None = None

    @property
    def category_label(self) -> str:
        """``marketing/review_requests`` or ``transactional``, as rule files write it."""
        return f"{self.category}/{self.subcategory}" if self.subcategory else self.category

    def honours_quiet_hours(self) -> bool:
        return self.quiet_hours if self.quiet_hours is not None else self.category == "marketing"

    def applies_to_shop(self, shop: str) -> bool:
        return not self.shops or shop in self.shops


@dataclass(frozen=True)
class Settings:
    """Shop-wide settings from ``settings.yaml`` (all optional)."""

    sender: str | None = None
    reply_to: str | None = None
    default_locale: str = "en"
    timezone: str = "UTC"
    shop_name: str | None = None
    #: language -> the shop's name as written in it (``sr-cyrl: Удобни дом``), for messages in
    #: that language; keys normalized (lower case, "-"); other languages use ``shop_name``
    shop_name_by_language: dict = field(default_factory=dict)
    #: links and product facts for messages
    storefront: Storefront = field(default_factory=Storefront)
    #: (start, end) local times in ``timezone`` when no message goes out, e.g. 21:00-08:00
    quiet_hours: tuple | None = None
    #: (max, per): at most ``max`` marketing messages per customer within ``per``
    frequency_cap: tuple | None = None
    #: the DKIM key (aftersale.core.dkim.DkimKey) mail from this shop is signed with, when the
    #: shop sends from its own domain; None: the deployment's DKIM_* key, if any
    dkim: object | None = None
    #: the legal basis for marketing messages: "explicit" (the customer's consent) or
    #: "existing_customers" (soft opt-in: customers who bought, unless they opted out)
    consent: str = "explicit"
    #: platform -> its connector's options (``DeliveryMeta.options``), e.g. WooCommerce's
    #: plugin meta keys: {"woocommerce": {"customer_meta": MetaKeys(...)}}
    platforms: dict = field(default_factory=dict)
    #: what the store's order statuses mean, and estimated delivery (rules/delivery.py)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    #: the shop's logo for templates (``shop.logo_url``)
    logo_url: str | None = None
    #: the goes-with model and repurchase cycles (rules/recommend_settings.py)
    recommend: RecommendSettings = field(default_factory=RecommendSettings)
    #: shop domain -> the Settings that shop gets (this one with its overrides applied)
    per_shop: dict = field(default_factory=dict)

    def for_shop(self, domain: str | None) -> Settings:
        """The settings of one shop: ``settings.yaml``'s ``shops:`` entry over the defaults."""
        if not self.per_shop or not domain:
            return self
        return self.per_shop.get(domain.lower(), self)

    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RuleSet:
    """All loaded rules, indexed by event kind so evaluation touches only the relevant ones."""

    rules: tuple[Rule, ...]
    settings: Settings
    by_kind: dict[str, tuple[Rule, ...]]
    templates: frozenset[str] = frozenset()
    folder: str = ""

    @classmethod
    def build(cls, rules, settings: Settings, templates=frozenset(), folder: str = "") -> RuleSet:
        index: dict[str, list[Rule]] = {}
        for rule in rules:
            if not rule.enabled:
                continue
            for kind in rule.on:
                index.setdefault(kind, []).append(rule)
        return cls(
            rules=tuple(rules),
            settings=settings,
            by_kind={kind: tuple(found) for kind, found in index.items()},
            templates=frozenset(templates),
            folder=folder,
        )

    @property
    def needs_history(self) -> bool:
        """Whether any rule asks about the customer's earlier orders (computed once)."""
        known = self.__dict__.get("_needs_history")
        if known is None:
            known = any(uses_history(rule.condition) for rule in self.rules if rule.enabled)
            object.__setattr__(self, "_needs_history", known)
        return known

    def settings_for(self, domain: str | None) -> Settings:
        return self.settings.for_shop(domain)

    def for_kind(self, kind: str) -> tuple[Rule, ...]:
        return self.by_kind.get(kind, ())

    def get(self, name: str) -> Rule | None:
        """A rule by name (workers look up each action's rule: a dict, not a scan)."""
        named = self.__dict__.get("_by_name")
        if named is None:
            named = {rule.name: rule for rule in self.rules}
            object.__setattr__(self, "_by_name", named)
        return named.get(name)

    @property
    def cancelling_kinds(self) -> frozenset[str]:
        return frozenset(
            kind for rule in self.rules for kind in rule.cancel_on | rule.cancel_on_customer
        )


EMPTY_RULESET = RuleSet.build((), Settings())
