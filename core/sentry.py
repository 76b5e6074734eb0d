"""Sentry in every process (web, worker, scheduler), with customer data kept out.

Each process calls :func:`init` once at start with its role; without
SENTRY_DSN nothing is imported or sent. What goes out:

* ``send_default_pii=False`` and no request bodies (webhooks are customer data);
* no local variables in stack frames: a frame of the send path holds the
  rendered message, the recipient and the order, and no scrubber can tell a
  name in a string from any other text;
* every event passes :func:`scrub_event` last: fields named like customer
  data (email, phone, names, addresses, tokens) are replaced by sentry-sdk's
  own ``EventScrubber``, and emails and phone numbers inside any remaining
  text (exception messages, breadcrumbs) are masked as in the logs;
* ``release`` (the package version) and ``environment`` (AFTERSALE_ENV),
  the process role as a tag, and the shop and rule as tags where a job
  knows them (:func:`tag`).

A dead letter is reported once, when the action becomes dead
(:func:`report_dead_letter`), as an error message with its context.
"""

from __future__ import annotations

from contextlib import suppress
from importlib.metadata import PackageNotFoundError, version

from aftersale.core import logs

#: field names whose values are customer data or secrets, on top of sentry-sdk's denylist
CUSTOMER_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "full_name",
    "address",
    "address1",
    "address2",
    "street",
    "city",
    "zip",
    "postcode",
    "company",
    "recipient",
    "to",
    "customer",
    "billing",
    "shipping",
    "billing_address",
    "shipping_address",
    "body",
    "payload",
    "credentials",
    "webhook_secret",
    "secret_key",
    "dsn",
)

_enabled = False


def init(config, process: str) -> bool:
    """Start reporting to Sentry for this process (``web``, ``worker``, ``scheduler``).

    Returns whether Sentry is on (SENTRY_DSN set). Safe to call more than once;
    the last call's settings apply.
    """
    global _enabled
    if not config.sentry_dsn:
        return False
    # deferred import: Sentry is loaded only when SENTRY_DSN is set
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.rq import RqIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=config.sentry_dsn,
        release=f"aftersale@{_release()}",
        environment=config.environment,
        send_default_pii=False,  # bodies and customer data stay out of Sentry
        max_request_body_size="never",
        include_local_variables=False,
        integrations=[FlaskIntegration(), RqIntegration()],
        event_scrubber=EventScrubber(
            denylist=[*DEFAULT_DENYLIST, *CUSTOMER_FIELDS], recursive=True
        ),
        before_send=lambda event, _hint: scrub_event(event),
        before_breadcrumb=lambda crumb, _hint: scrub_event(crumb),
    )
    sentry_sdk.set_tag("process", process)
    _enabled = True
    return True


def enabled() -> bool:
    return _enabled


def tag(**tags) -> None:
    """Tag what the current job reports (shop, rule, ...); nothing without Sentry.

    Set on the current scope, which RQ's integration opens per job, so the
    tags go with an error the job raises and do not outlive it.
    """
    if not _enabled:
        return
    # deferred import: Sentry is loaded only when SENTRY_DSN is set
    import sentry_sdk

    scope = sentry_sdk.get_current_scope()
    for key, value in tags.items():
        if value is not None:
            scope.set_tag(key, str(value))


def report_dead_letter(action, *, shop: str | None, error: str | None) -> None:
    """One error event for an action that used up its attempts, with what an operator needs."""
    if not _enabled:
        return
    # deferred import: Sentry is loaded only when SENTRY_DSN is set
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        scope.set_tag("shop", shop or str(action.shop_id))
        scope.set_tag("rule", action.rule)
        scope.set_tag("action_type", action.action_type)
        scope.set_context(
            "action",
            {
                "id": action.id,
                "rule": action.rule,
                "step": action.step,
                "type": action.action_type,
                "order": action.order_ref,
                "attempts": action.attempts,
                "max_attempts": action.max_attempts,
                "last_error": logs.scrub(error or "")[:500],
                "retry": f"aftersale actions retry {action.id}",
            },
        )
        scope.fingerprint = ["dead-letter", action.rule, action.action_type]
        sentry_sdk.capture_message(
            f"dead letter: {action.action_type} of rule {action.rule} (action {action.id})",
            level="error",
        )


def flush(timeout: float = 5.0) -> None:
    """Send what is queued (at a process's end, and in tests)."""
    if _enabled:
        # deferred import: Sentry is loaded only when SENTRY_DSN is set
        import sentry_sdk

        sentry_sdk.flush(timeout)


def close() -> None:
    """Stop reporting (tests; a process that ends)."""
    global _enabled
    if _enabled:
        # deferred import: Sentry is loaded only when SENTRY_DSN is set
        import sentry_sdk

        sentry_sdk.get_client().close()
        sentry_sdk.init(dsn=None)
        _enabled = False


#: top-level fields of an event that are ours, not data (``aftersale@0.1.0`` looks like an email)
_OWN_FIELDS = frozenset({"release", "environment", "event_id", "timestamp", "platform", "sdk"})


def scrub_event(event):
    """Every string in a Sentry event or breadcrumb with emails and phone numbers masked."""
    if not isinstance(event, dict):
        return _scrub(event)
    return {key: value if key in _OWN_FIELDS else _scrub(value) for key, value in event.items()}


def _scrub(value):
    if isinstance(value, str):
        return logs.scrub(value)
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


def _release() -> str:
    with suppress(PackageNotFoundError):
        return version("aftersale")
    return "unknown"
