"""Evaluate an event against a RuleSet: which actions follow, and when.

Only the rules indexed under the event's kind are looked at, so the cost of
an event grows with the rules for its kind, not with all rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from aftersale.core.events import Event, parse_time
from aftersale.rules import timing
from aftersale.rules.conditions import resolve
from aftersale.rules.model import Rule, RuleSet, Step
from aftersale.rules.timing import recipient_zone, release_at


@dataclass(frozen=True)
class PlannedAction:
    """An action a rule calls for; the worker stores it as an ``actions`` row."""

    rule: Rule
    step: Step
    due_at: datetime
    once_key: str  # unique per shop: the same rule never acts twice on one subject
    deadline_at: datetime | None = None  # ``late: {skip_after}``: skipped when run after this
    #: ``wait_for``: the action waits for these events; ``due_at`` is then the timeout
    waiting: dict | None = None
    #: ``digest``: the key of the digest this action joins (rule, order or customer)
    digest_key: str | None = None
    #: ``digest``: when the window that this event would open closes
    digest_closes_at: datetime | None = None
    #: the recipient's time zone the due time was read in
    zone: str | None = None

    @property
    def category(self) -> str:
        return self.rule.category


@dataclass(frozen=True)
class Verdict:
    """Why a rule did or did not match an event (for `rules test` and logs)."""

    rule: Rule
    matched: bool
    reason: str | None = None


def plan(ruleset: RuleSet, event: Event, now: datetime) -> list[PlannedAction]:
    """The actions ``event`` calls for, with due times and once-keys."""
    ctx = event.context()
    ctx["_now"] = now
    planned = []
    for rule in ruleset.for_kind(event.kind):
        if (rule.shops and event.shop not in rule.shops) or not rule.condition(ctx):
            continue
        subject = once_subject(rule, event)
        if subject is None:
            continue
        if rule.once_within is not None or rule.mode != "single":
            # each trigger has its own key; processing applies the window and the mode
            subject = f"{subject}|{event.kind}:{event.key}"
        due_at = due_time(rule, event, ctx)
        waiting = None
        if rule.wait_for is not None:
            due_at = event.occurred_at + rule.wait_for["timeout"]
            waiting = {
                "events": list(rule.wait_for["events"]),
                "on_timeout": rule.wait_for["on_timeout"],
                "wait_seconds": int(rule.wait.total_seconds()),
            }
        digest_key, closes_at = digest_of(rule, event)
        if digest_key is not None:
            subject = f"digest:{event.kind}:{event.key}"  # each event may open a digest
            due_at = closes_at + rule.wait
        settings = ruleset.settings_for(event.shop)
        zone = recipient_zone(event.order, event.customer, settings.timezone, due_at)
        for step in rule.steps:
            step_due = due_at
            if waiting is None:
                step_due = release_at(rule, settings, step_due, zone, step.type)
            planned.append(
                PlannedAction(
                    rule,
                    step,
                    step_due,
                    f"{rule.name}|{subject}|{step.index}",
                    step_due + rule.skip_after if rule.skip_after is not None else None,
                    waiting,
                    digest_key,
                    closes_at,
                    zone,
                )
            )
    return planned


def digest_of(rule: Rule, event: Event) -> tuple[str | None, datetime | None]:
    """``digest``: (the key events of one message share, when this event's window closes);
    (None, None) without a digest or when the event has no such order or customer."""
    if rule.digest is None:
        return None, None
    key = rule.digest["key"]
    ref = event.order_ref if key == "order" else event.customer_ref
    if not ref:
        return None, None
    return f"{rule.name}|{key}:{ref}", event.occurred_at + rule.digest["window"]


def due_time(rule: Rule, event: Event, ctx: dict) -> datetime:
    """The event's time plus ``wait``, or ``wait.until``'s time plus its offset.

    A ``wait.until`` field missing from the event (a carrier that gives no
    estimated delivery) falls back to the event's own time plus the offset.
    """
    if rule.wait_until:
        for value in resolve(ctx, rule.wait_until):
            try:
                moment = parse_time(value) if isinstance(value, str) else None
            except ValueError:
                moment = None
            if moment is not None:
                try:
                    return moment + rule.wait
                except OverflowError:  # a date near year 9999 in the payload
                    continue
        if rule.wait_fallback is not None:  # repurchase_due without a trusted cycle
            return event.occurred_at + rule.wait_fallback
    return event.occurred_at + rule.wait


def after_quiet_hours(moment: datetime, settings) -> datetime:
    """``moment``, or the end of the shop's quiet hours (in the shop's zone) when inside."""
    return timing.after_quiet_hours(moment, settings.quiet_hours, ZoneInfo(settings.timezone))


def explain(ruleset: RuleSet, event: Event, now: datetime) -> list[Verdict]:
    """Every rule listening to this kind, matched or not, with the first failing check."""
    ctx = event.context()
    ctx["_now"] = now
    verdicts = []
    for rule in ruleset.for_kind(event.kind):
        if not rule.applies_to_shop(event.shop):
            verdicts.append(Verdict(rule, False, f"rule is limited to shops {sorted(rule.shops)}"))
            continue
        reason = rule.condition.explain(ctx)
        if reason is None and once_subject(rule, event) is None:
            reason = f"once_per {rule.once_per}: the event has no {rule.once_per}"
        verdicts.append(Verdict(rule, reason is None, reason))
    return verdicts


def once_subject(rule: Rule, event: Event) -> str | None:
    """The subject a rule acts on once: ``order:5678``, ``customer:70``, or the event itself."""
    if rule.once_per == "event":
        return f"event:{event.kind}:{event.key}"
    ref = {
        "order": event.order_ref,
        "customer": event.customer_ref,
        "fulfillment": event.fulfillment_ref,
    }[rule.once_per]
    return f"{rule.once_per}:{ref}" if ref else None
