"""``aftersale rules test``: real payloads through the real connector and rules, nothing sent.

Each payload file goes through its platform's connector exactly as a
delivery would, with the order's state carried from one file to the next
(so a ``--sequence`` of WooCommerce updates diffs as in production, and a
refund after a delivery cancels the review invite planned for it). Every
rule listening to each event is evaluated with :func:`rules.engine.explain`
(matched, or the first failing check with the value it saw), the actions
that would be planned are listed with their due times and rendered subjects,
and later events cancel earlier planned actions the way ``cancel_on`` does
in the database. No database, Redis or mail server is touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aftersale.connectors import CONNECTORS, get_connector
from aftersale.connectors.base import DeliveryMeta, OrderState
from aftersale.core.events import Event, iso, parse_time
from aftersale.rules.engine import explain, plan
from aftersale.rules.model import RuleSet

SIMULATED_SHOP = "simulated.example.com"


class SimulationError(ValueError):
    """A payload file that cannot be simulated; the message names the file and why."""


@dataclass
class PlannedStep:
    rule: str
    step: str
    due_at: datetime
    order_ref: str | None
    cancel_on: frozenset[str]
    subject: str | None = None
    recipient: str | None = None
    cancelled_by: str | None = None
    problem: str | None = None
    #: ``wait_for``: the kinds it waits for, and the rule's wait after one of them
    waits_for: frozenset[str] = frozenset()
    wait_after: timedelta = timedelta(0)
    released_by: str | None = None
    timeout_at: datetime | None = None  # for a waiting step: when it stops waiting

    def as_dict(self) -> dict:
        return {
            "rule": self.rule,
            "step": self.step,
            "due_at": iso(self.due_at),
            "subject": self.subject,
            "recipient": self.recipient,
            "cancelled_by": self.cancelled_by,
            "problem": self.problem,
            "waits_for": sorted(self.waits_for) if self.waits_for else None,
            "released_by": self.released_by,
        }


@dataclass
class SimulatedEvent:
    file: str
    topic: str
    event: Event
    verdicts: list[tuple[str, bool, str | None]] = field(default_factory=list)
    planned: list[PlannedStep] = field(default_factory=list)
    cancelled: list[PlannedStep] = field(default_factory=list)
    released: list[PlannedStep] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "topic": self.topic,
            "kind": self.event.kind,
            "key": self.event.key,
            "occurred_at": iso(self.event.occurred_at),
            "rules": [
                {"rule": name, "matched": matched, "why_not": reason}
                for name, matched, reason in self.verdicts
            ],
            "actions": [p.as_dict() for p in self.planned],
            "cancels": [{"rule": p.rule, "step": p.step} for p in self.cancelled],
            "releases": [
                {"rule": p.rule, "step": p.step, "due_at": iso(p.due_at)} for p in self.released
            ],
        }


@dataclass
class Outcome:
    """Per file: what it produced (or why it produced nothing)."""

    file: str
    topic: str
    outcome: str
    events: list[SimulatedEvent]


def read_payload(path: Path, platform: str | None = None, topic: str | None = None):
    """(platform, topic, headers, payload) from a payload file and its optional headers file."""
    try:
        payload = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SimulationError(f"{path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise SimulationError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from exc
    if not isinstance(payload, dict):
        raise SimulationError(f"{path}: expected a JSON object")
    headers_file = Path(path).with_name(Path(path).name.removesuffix(".json") + ".headers.json")
    headers = json.loads(headers_file.read_text()) if headers_file.exists() else {}
    platform = platform or _platform_of(path, headers)
    topic = (
        topic
        or headers.get("X-WC-Webhook-Topic")
        or headers.get("X-Shopify-Topic")
        or _topic_from_name(path, platform)
    )
    if get_connector(platform) is None:
        raise SimulationError(f"{path}: unknown platform {platform!r}; one of {sorted(CONNECTORS)}")
    return platform, topic, headers, payload


def simulate(
    ruleset: RuleSet,
    files: list[Path],
    *,
    at: datetime | None = None,
    history: list[Path] = (),
    platform: str | None = None,
    topic: str | None = None,
    render=None,
) -> tuple[list[Outcome], int]:
    """Run ``history`` silently, then ``files`` in order; (outcomes, history events seen).

    ``render(step, event) -> (subject, recipient)`` fills in what a mail would
    say; ``at`` is "now" for time conditions (default: each event's own time).
    """
    states: dict[tuple[str, str], OrderState] = {}
    pending: list[PlannedStep] = []
    seen = 0
    for path in history:
        seen += len(_run_file(ruleset, path, states, pending, at, platform, topic, None).events)
    pending.clear()  # history only builds state; its planned actions are not shown
    outcomes = [
        _run_file(ruleset, path, states, pending, at, platform, topic, render) for path in files
    ]
    return outcomes, seen


def _run_file(ruleset, path, states, pending, at, platform, topic, render) -> Outcome:
    platform, topic, headers, payload = read_payload(path, platform, topic)
    connector = get_connector(platform)
    received = _received_at(payload, at)
    meta = DeliveryMeta(
        platform=platform,
        shop=SIMULATED_SHOP,
        topic=topic,
        delivery_id="simulated",
        headers=headers,
        triggered_at=received,
        received_at=received,
    )
    order_ref = connector.order_ref(topic, payload)
    key = (platform, order_ref or "")
    state = states.get(key, OrderState())
    result = connector.normalize(meta, payload, state)
    if result.state is not None and order_ref:
        states[key] = result.state
    simulated = []
    for event in result.events:
        if event.order is None and (result.state or state).order:
            event = replace(event, order=(result.state or state).order)
        simulated.append(_evaluate(ruleset, event, str(path), topic, pending, at, render))
    outcome = result.outcome + (f" ({result.detail})" if result.detail else "")
    return Outcome(str(path), topic, outcome, simulated)


def _evaluate(ruleset, event: Event, file: str, topic: str, pending, at, render) -> SimulatedEvent:
    now = at or event.occurred_at
    sim = SimulatedEvent(file, topic, event)
    for step in pending:
        if (
            step.cancelled_by is None
            and event.kind in step.cancel_on
            and step.order_ref
            and step.order_ref == event.order_ref
            and step.due_at > event.occurred_at
        ):
            step.cancelled_by = f"{event.kind} ({Path(file).name})"
            sim.cancelled.append(step)
    for step in pending:
        if (
            step.cancelled_by is None
            and step.released_by is None
            and event.kind in step.waits_for
            and step.order_ref == event.order_ref
        ):
            step.released_by = f"{event.kind} ({Path(file).name})"
            step.due_at = event.occurred_at + step.wait_after
            sim.released.append(step)
    sim.verdicts = [(v.rule.name, v.matched, v.reason) for v in explain(ruleset, event, now)]
    for planned in plan(ruleset, event, now):
        step = PlannedStep(
            rule=planned.rule.name,
            step=_describe(planned.step),
            due_at=planned.due_at,
            order_ref=event.order_ref,
            cancel_on=planned.rule.cancel_on,
            waits_for=frozenset((planned.waiting or {}).get("events") or ()),
            wait_after=planned.rule.wait,
            timeout_at=planned.due_at if planned.waiting else None,
        )
        if render is not None and planned.step.type == "email":
            try:
                step.subject, step.recipient = render(planned, event)
            except Exception as exc:  # a template problem is shown, not raised
                step.problem = str(exc)
        sim.planned.append(step)
        pending.append(step)
    return sim


def _describe(step) -> str:
    if "template" in step.params:
        return f"{step.type} {step.params['template']}"
    return step.type


def _received_at(payload: dict, at: datetime | None) -> datetime:
    """When the delivery "arrived": --at, or the payload's own last-change time."""
    if at is not None:
        return at
    for name in ("date_modified_gmt", "updated_at", "created_at", "date_created_gmt"):
        try:
            moment = parse_time(payload.get(name))
        except (TypeError, ValueError):
            moment = None
        if moment is not None:
            return moment
    return datetime.now(UTC)


def _platform_of(path: Path, headers: dict) -> str:
    if any(k.lower().startswith("x-wc-") for k in headers):
        return "woocommerce"
    if any(k.lower().startswith("x-shopify-") for k in headers):
        return "shopify"
    for part in reversed(Path(path).resolve().parts):
        if part in CONNECTORS:
            return part
    return "shopify"


def _topic_from_name(path: Path, platform: str) -> str:
    """``orders__create.json`` -> ``orders/create`` (Shopify); ``order.updated__x.json`` ->
    ``order.updated`` (WooCommerce): the fixture naming, topic then an optional variant."""
    parts = Path(path).name.removesuffix(".json").split("__")
    if platform == "woocommerce" and "." in parts[0]:
        return parts[0]
    if len(parts) >= 2:
        return f"{parts[0]}/{parts[1]}"
    raise SimulationError(f"{path}: cannot tell the topic from the file name; pass --topic")
