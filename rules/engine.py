"""Evaluate an event against a RuleSet: which actions follow, and when.

Only the rules indexed under the event's kind are looked at, so the cost of
an event grows with the rules for its kind, not with all rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aftersale.events import Event
from rules.model import Rule, RuleSet, Step


@dataclass(frozen=True)
class PlannedAction:
    """An action a rule calls for; the worker stores it as an ``actions`` row."""

    rule: Rule
    step: Step
    due_at: datetime
    once_key: str  # unique per shop: the same rule never acts twice on one subject

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
        due_at = event.occurred_at + rule.wait
        for step in rule.steps:
            planned.append(PlannedAction(rule, step, due_at, f"{rule.name}|{subject}|{step.index}"))
    return planned


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
