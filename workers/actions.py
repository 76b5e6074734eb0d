"""Running one action: claim it, re-check it, render, send, record. Exactly one worker wins.

The claim (``queued -> running``) is committed before anything is sent and
carries a lease, so a worker killed mid-send leaves a ``running`` row the
scheduler makes due again once the lease expires. Just before sending, the
action is checked again against the present (cancelled meanwhile? consent
withdrawn? address suppressed? customer redacted? too late to be useful?),
because hours or days may have passed since it was planned.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from aftersale import logs
from aftersale.events import Event
from store import actions as action_store
from store import events as event_store
from store import messages as message_store
from store import shops as shop_store
from store import state as state_store
from store.actions import ActionStatus
from workers.channels.base import ChannelError, TransientError
from workers.render import TemplateProblem, locale_candidates

log = logs.get_logger("workers.actions")

LEASE = timedelta(minutes=5)
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=6)


class Skip(Exception):
    """The action must not run now; ``reason`` is recorded as its skip reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Prepared:
    """What the re-check and render produced: ready to hand to a channel."""

    channel: str
    recipient: str
    subject: str | None
    payload: object  # EmailMessage for email
    message_id: str | None


def run_action(runtime, action_id: int) -> str:
    """Run one action to a final (or retry) state; returns the status it ended in."""
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        action = action_store.start(conn, action_id, now, LEASE)
    if action is None:
        log.info("action.not_claimed", action_id=action_id)
        return "not_claimed"
    with logs.bound(
        action_id=action.id, rule=action.rule, event_id=action.event_id, shop_id=action.shop_id
    ):
        return _run_claimed(runtime, action, now)


def _run_claimed(runtime, action, now: datetime) -> str:
    try:
        prepared = _prepare(runtime, action, now)
    except Skip as skip:
        _finish(
            runtime,
            action,
            ActionStatus.SKIPPED,
            skip_reason=skip.reason,
            last_error=skip.detail or None,
        )
        log.info("action.skipped", reason=skip.reason, detail=skip.detail)
        return ActionStatus.SKIPPED.value
    except TemplateProblem as exc:
        _finish(runtime, action, ActionStatus.FAILED, last_error=str(exc))
        log.error("action.failed", error=str(exc))
        return ActionStatus.FAILED.value
    started = time.monotonic()
    try:
        result = runtime.mailer.send([prepared.payload])[0]
    except ChannelError as exc:
        return _failed_send(runtime, action, prepared, exc, started)
    duration = int((time.monotonic() - started) * 1000)
    with runtime.engine.begin() as conn:
        won = action_store.transition(
            conn,
            action.id,
            ActionStatus.RUNNING,
            ActionStatus.SENT,
            runtime.clock.now(),
            recipient=prepared.recipient,
            subject=prepared.subject,
            provider_id=result.provider_id,
            lease_expires_at=None,
            last_error=None,
        )
        message_store.record_attempt(
            conn,
            action=action,
            channel=prepared.channel,
            status="sent",
            now=runtime.clock.now(),
            recipient=prepared.recipient,
            subject=prepared.subject,
            message_id=prepared.message_id,
            provider_id=result.provider_id,
            status_code=result.status_code,
            response=result.response,
            duration_ms=duration,
        )
    if not won:
        log.warning(
            "action.lease_lost",
            detail="sent, but the lease had expired and the action was taken over",
        )
    log.info(
        "action.sent",
        channel=prepared.channel,
        to=logs.mask_email(prepared.recipient),
        duration_ms=duration,
    )
    return ActionStatus.SENT.value


def _failed_send(runtime, action, prepared: Prepared, exc: ChannelError, started: float) -> str:
    now = runtime.clock.now()
    duration = int((time.monotonic() - started) * 1000)
    transient = isinstance(exc, TransientError)
    exhausted = action.attempts >= action.max_attempts
    if not transient:
        status, values = ActionStatus.FAILED, {}
    elif exhausted:
        status, values = ActionStatus.DEAD, {}
    else:
        status, values = (
            ActionStatus.SCHEDULED,
            {"due_at": now + retry_delay(action.attempts, exc.retry_after)},
        )
    with runtime.engine.begin() as conn:
        action_store.transition(
            conn,
            action.id,
            ActionStatus.RUNNING,
            status,
            now,
            last_error=str(exc)[:2000],
            recipient=prepared.recipient,
            subject=prepared.subject,
            lease_expires_at=None,
            job_id=None,
            **values,
        )
        message_store.record_attempt(
            conn,
            action=action,
            channel=prepared.channel,
            now=now,
            status="transient_error" if transient else "permanent_error",
            recipient=prepared.recipient,
            subject=prepared.subject,
            message_id=prepared.message_id,
            status_code=exc.status_code,
            error=str(exc),
            response=exc.response,
            duration_ms=duration,
        )
    event = (
        "action.retry_scheduled" if status is ActionStatus.SCHEDULED else f"action.{status.value}"
    )
    log.warning(
        event, error=str(exc), attempts=action.attempts, due_at=str(values.get("due_at", ""))
    )
    return status.value


def retry_delay(attempts: int, retry_after: float | None = None) -> timedelta:
    """Exponential backoff with jitter (1m, 2m, 4m, ... up to 6h), never sooner than Retry-After."""
    ceiling = min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_CAP)
    delay = ceiling * random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay


def _finish(runtime, action, status: ActionStatus, **values) -> None:
    with runtime.engine.begin() as conn:
        action_store.transition(
            conn,
            action.id,
            ActionStatus.RUNNING,
            status,
            runtime.clock.now(),
            lease_expires_at=None,
            **values,
        )


# -- re-check and render ------------------------------------------------------


def _prepare(runtime, action, now: datetime) -> Prepared:
    if action.deadline_at and now > action.deadline_at:
        raise Skip(
            "late", f"due {action.due_at.isoformat()}, deadline {action.deadline_at.isoformat()}"
        )
    if action.action_type != "email":
        raise Skip("unsupported", f"no executor for {action.action_type!r}")
    with runtime.engine.connect() as conn:
        stored = event_store.get_event(conn, action.event_id) if action.event_id else None
        if stored is None:
            raise Skip("event_missing", "the event that caused this action is gone")
        event = Event.from_dict(stored.payload)
        shop = shop_store.get_shop(conn, action.shop_id)
        customer = _current_customer(conn, action, event)
        context = _context(runtime, action, event, shop, customer)
        recipient = _recipient(action, context)
        reason = message_store.suppression(
            conn, action.shop_id, "email", recipient, action.category
        )
    if reason:
        raise Skip("suppressed", f"address suppressed ({reason})")
    if action.category == "marketing" and customer.get("accepts_email_marketing") is not True:
        raise Skip("no_consent", "marketing email needs the customer's email marketing consent")
    return _build_email(runtime, action, context, recipient, shop)


def _current_customer(conn, action, event: Event) -> dict:
    customer = dict(event.customer or {})
    ref = action.customer_ref or event.customer_ref
    if ref:
        row = state_store.get_customer(conn, action.shop_id, ref)
        if row is not None:
            if row.redacted_at:
                raise Skip("customer_redacted", "the customer's data was redacted")
            for key in (
                "email",
                "phone",
                "first_name",
                "last_name",
                "locale",
                "accepts_email_marketing",
                "accepts_sms_marketing",
            ):
                value = getattr(row, key)
                if value is not None:
                    customer[key] = value
    return customer


def _context(runtime, action, event: Event, shop, customer: dict) -> dict:
    settings = runtime.rules.settings
    context = event.context()
    context["customer"] = customer
    context["shop"] = {
        "domain": shop.domain,
        "name": shop.name or settings.shop_name or shop.domain,
    }
    context["action"] = {"id": action.id, "rule": action.rule}
    return context


def _recipient(action, context: dict) -> str:
    target = action.params.get("to", "customer")
    if target != "customer":
        return target
    address = (context.get("customer") or {}).get("email") or (context.get("order") or {}).get(
        "email"
    )
    if not address or "@" not in parseaddr(address)[1]:
        raise Skip("no_recipient", "the customer has no email address in this event")
    return address


def _build_email(runtime, action, context: dict, recipient: str, shop) -> Prepared:
    settings = runtime.rules.settings
    customer_locale = (context.get("customer") or {}).get("locale") or (
        context.get("order") or {}
    ).get("locale")
    locales = locale_candidates(customer_locale, settings.default_locale)
    rendered = runtime.renderer.render(action.params["template"], context, locales)
    sender = settings.sender or runtime.config.mail_from
    domain = parseaddr(sender)[1].rpartition("@")[2] or "aftersale.local"
    message_id = f"<action-{action.id}.{action.shop_id}@{domain}>"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(runtime.clock.now())
    message["Message-ID"] = message_id
    reply_to = action.params.get("reply_to") or settings.reply_to
    if reply_to:
        message["Reply-To"] = reply_to
    message["X-Aftersale-Rule"] = action.rule
    message.set_content(rendered.text)
    if rendered.html:
        message.add_alternative(rendered.html, subtype="html")
    return Prepared("email", recipient, rendered.subject, message, message_id)
