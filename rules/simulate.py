"""``aftersale rules test``: real payloads through the production pipeline, nothing sent.

Each payload file goes through ``rules/pipeline.py``, the very functions a
worker runs on a stored delivery: the connector with the order's stored state,
events stored (a repeated delivery plans once), consent and contact details
remembered, history facts, once-per keys and ``mode``, cancels and ended
waits, actions planned. It runs on a database transaction that is rolled back
at the end: of an in-memory database by default (history comes from the
files of the same run), or of the configured one with ``--database`` (history,
consent and earlier actions of ``--shop`` as production has them). Every rule
listening to an event is explained (matched, or the first failing check with
the value it saw); a planned message the worker would skip for consent or a
suppression says so. Nothing is committed, enqueued or sent.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aftersale.connectors import CONNECTORS, get_connector
from aftersale.connectors.base import DeliveryMeta
from aftersale.core.events import Event, iso, parse_time
from aftersale.core.steps import MESSAGE_STEPS
from aftersale.rules import pipeline
from aftersale.rules.consent import marketing_allowed, no_consent_detail
from aftersale.rules.engine import explain
from aftersale.rules.model import RuleSet
from aftersale.rules.recheck import recheck_reason, waited
from aftersale.rules.settings import shop_settings
from aftersale.store import action_queries
from aftersale.store import actions as action_store
from aftersale.store import events as event_store
from aftersale.store import messages as message_store
from aftersale.store import preferences as preference_store
from aftersale.store import shops as shop_store
from aftersale.store.db import make_engine
from aftersale.store.tables import metadata

PENDING_NOW = ("scheduled", "waiting", "queued")

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
    #: what the worker's check just before sending would say today (consent, suppression)
    skip: str | None = None
    #: the recipient's time zone its due time was read in (quiet hours, send_at slot)
    zone: str | None = None
    #: ``digest``: how many events the message lists so far
    digest_events: int = 0
    #: the send-time re-check of ``if`` at ``--at`` (or at the due time): None, "passes",
    #: or "condition_changed: <the failing check and its value>"
    recheck: str | None = None

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
            "would_skip": self.skip,
            "zone": self.zone,
            "digest_events": self.digest_events or None,
            "recheck": self.recheck,
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
    joined: list[PlannedStep] = field(default_factory=list)  # open digests it joined
    #: the same event (same key) was already handled: production stores and plans it once
    repeated: bool = False

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "repeated": self.repeated,
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
            "joins": [
                {"rule": p.rule, "step": p.step, "digest_events": p.digest_events}
                for p in self.joined
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
    database_url: str | None = None,
    shop: str | None = None,
    secret_keys: tuple[str, ...] = (),
) -> tuple[list[Outcome], int]:
    """Run ``history`` silently, then ``files`` in order; (outcomes, history events seen).

    ``render(planned, event) -> (subject, recipient)`` fills in what a mail would
    say; ``at`` is "now" (default: each delivery's own time).
    """
    with scratch_connection(database_url) as conn:
        run = _Run(conn, ruleset, at, platform, topic, render, shop or SIMULATED_SHOP)
        run.secret_keys = secret_keys  # suppressions are stored hashed with them
        seen = sum(len(run.file(path, show=False).events) for path in history)
        outcomes = [run.file(path) for path in files]
        run.recheck_pending()
        return outcomes, seen


@contextmanager
def scratch_connection(database_url: str | None):
    """A connection in a transaction that is always rolled back.

    Without a URL: a fresh in-memory SQLite database with the schema, so the
    run's own events are its only history.
    """
    engine = make_engine(database_url or "sqlite://")
    try:
        with engine.connect() as conn:
            if database_url is None:
                with conn.begin():
                    metadata.create_all(conn)
            transaction = conn.begin()
            try:
                yield conn
            finally:
                transaction.rollback()
    finally:
        engine.dispose()


class _Run:
    """One ``rules test`` run: the shop row and the steps planned so far (by action id)."""

    def __init__(self, conn, ruleset, at, platform, topic, render, shop_domain):
        self.conn, self.ruleset, self.at, self.render = conn, ruleset, at, render
        self.platform, self.topic, self.shop_domain = platform, topic, shop_domain
        self.shops: dict[str, object] = {}
        self.steps: dict[int, PlannedStep] = {}
        self.secret_keys: tuple[str, ...] = ()

    def shop(self, platform: str):
        if platform not in self.shops:
            now = datetime.now(UTC)
            shop_id = shop_store.ensure_shop(self.conn, platform, self.shop_domain, now)
            self.shops[platform] = shop_store.get_shop(self.conn, shop_id)
        return self.shops[platform]

    def file(self, path: Path, *, show: bool = True) -> Outcome:
        platform, topic, headers, payload = read_payload(path, self.platform, self.topic)
        received = _received_at(payload, self.at)
        shop = self.shop(platform)
        meta = DeliveryMeta(
            platform=platform,
            shop=shop.domain,
            topic=topic,
            delivery_id="simulated",
            headers=headers,
            triggered_at=received,
            received_at=received,
        )
        now = self.at or received
        result, handled = pipeline.run_delivery(
            self.conn, self.ruleset, shop, meta, payload, None, now
        )
        events = [self._explain(one, str(path), topic, now, shop, show) for one in handled]
        outcome = result.outcome + (f" ({result.detail})" if result.detail else "")
        return Outcome(str(path), topic, outcome, events)

    def recheck_pending(self) -> None:
        """After the last file: the send-time re-check of each step still pending."""
        for action_id, step in self.steps.items():
            step.recheck = _recheck(self, action_id, step)

    def _explain(self, handled, file: str, topic: str, now, shop, show: bool) -> SimulatedEvent:
        sim = SimulatedEvent(file, topic, handled.event, repeated=handled.duplicate)
        name = Path(file).name
        for action_id in handled.cancelled:
            step = self.steps.get(action_id)
            if step is not None:
                step.cancelled_by = f"{handled.event.kind} ({name})"
                sim.cancelled.append(step)
        for action_id in handled.released:
            step = self.steps.get(action_id)
            if step is not None:
                step.released_by = f"{handled.event.kind} ({name})"
                step.due_at = action_store.get(self.conn, action_id).due_at
                sim.released.append(step)
        for action_id in handled.joined:
            step = self.steps.get(action_id)
            if step is not None:
                step.digest_events = len(action_store.get(self.conn, action_id).digest["events"])
                sim.joined.append(step)
        if handled.duplicate:
            return sim
        sim.verdicts = [
            (v.rule.name, v.matched, v.reason) for v in explain(self.ruleset, handled.judged, now)
        ]
        created = {action_id for action_id, _ in handled.created}
        rows = {
            (row.rule, row.step): row
            for row in (action_store.get(self.conn, action_id) for action_id in created)
        }
        for planned in handled.planned:
            row = rows.get((planned.rule.name, planned.step.index))
            if row is None and planned.digest_key and handled.joined:
                continue  # listed in an open digest (sim.joined), not planned on its own
            step = self._step(planned, handled.event, row, shop, show)
            sim.planned.append(step)
            if row is not None:
                self.steps[row.id] = step
        return sim

    def _step(self, planned, event: Event, row, shop, show: bool) -> PlannedStep:
        step = PlannedStep(
            rule=planned.rule.name,
            step=_describe(planned.step),
            due_at=planned.due_at,
            order_ref=event.order_ref,
            cancel_on=planned.rule.cancel_on,
            waits_for=frozenset((planned.waiting or {}).get("events") or ()),
            wait_after=planned.rule.wait,
            timeout_at=planned.due_at if planned.waiting else None,
            zone=planned.zone,
            digest_events=1 if planned.digest_key else 0,
        )
        if row is None:
            step.problem = "already planned or done for this subject (once per key); not again"
            return step
        if planned.step.type in MESSAGE_STEPS:
            step.skip = _send_time_skip(
                self.conn, self.ruleset, shop, planned, event, self.secret_keys
            )
        if show and self.render is not None and planned.step.type == "email":
            try:
                step.subject, step.recipient = self.render(planned, event)
            except Exception as exc:  # a template problem is shown, not raised
                step.problem = f"template problem: {exc}"
        return step


def _recheck(run, action_id: int, step: PlannedStep) -> str | None:
    """What the worker's re-check of ``if`` would say (rules/recheck.py, as production)."""
    row = action_store.get(run.conn, action_id)
    rule = run.ruleset.get(row.rule)
    if rule is None or not rule.recheck or not waited(row) or row.status not in PENDING_NOW:
        return None
    stored = event_store.get_event(run.conn, row.event_id)
    if stored is None:
        return None
    event = Event.from_dict(stored.payload)
    order_now = action_queries.current_order(run.conn, row.shop_id, row.order_ref)
    at = run.at or step.due_at
    reason = recheck_reason(
        run.conn, run.ruleset, rule, row.shop_id, event, order_now, event.customer, at
    )
    return "passes" if reason is None else f"condition_changed: {reason}"


def _send_time_skip(conn, ruleset, shop, planned, event: Event, keys=()) -> str | None:
    """What the worker's check before sending would say today: the customer's preferences,
    consent, then suppression."""
    customer = event.customer or {}
    channel = planned.step.type
    if planned.rule.category == "marketing" and planned.rule.subcategory in (
        preference_store.muted(conn, shop.id, event.customer_ref)
    ):
        return f"preference: the customer muted marketing/{planned.rule.subcategory}"
    basis = shop_settings(ruleset, shop).consent
    if planned.rule.category == "marketing" and not marketing_allowed(
        conn, shop.id, customer, channel, basis, event.order_ref
    ):
        return f"no_consent: {no_consent_detail(channel, basis)}"
    address = customer.get("email" if channel == "email" else "phone")
    address = address or (event.order or {}).get("email" if channel == "email" else "phone")
    if address:
        reason = message_store.suppression(
            conn, shop.id, channel, str(address), planned.rule.category, keys=keys
        )
        if reason:
            return f"suppressed: {channel} address suppressed ({reason})"
    return None


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
