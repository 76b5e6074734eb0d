"""Errors typed by what to do next, shared by channels and platform calls.

:class:`TransientError` (timeouts, lost connections, 429, 5xx, SMTP 4xx) is
retried with backoff, honouring ``retry_after`` when the provider said how
long to wait; :class:`PermanentError` (4xx, SMTP 5xx, a bad address, missing
credentials) fails the action at once with the provider's message.
:class:`Defer` is neither: the action is not ready yet and runs later.
"""

from __future__ import annotations


class DeliveryFailed(Exception):
    def __init__(
        self, message: str, *, status_code: int | None = None, response: str | None = None
    ):
        super().__init__(message)
        self.status_code = status_code
        self.response = response


class TransientError(DeliveryFailed):
    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PermanentError(DeliveryFailed):
    """Retrying will not help: the address, the content or the credentials are wrong."""


class RecipientGone(PermanentError):
    """The provider will never deliver to this address or number (it replied STOP, it hard
    bounced): the action fails and the address is suppressed with ``reason``, so later
    actions skip it instead of failing the same way."""

    def __init__(self, message: str, *, reason: str, **kwargs):
        super().__init__(message, **kwargs)
        self.reason = reason


class Defer(Exception):
    """Not now: run the action again at ``until`` without counting an attempt.

    Raised while preparing an action when something it needs is not ready yet
    (an earlier step of the same rule still creating a discount code, quiet
    hours, a frequency cap window). The action goes back to ``scheduled``.
    """

    def __init__(self, until, reason: str):
        super().__init__(f"deferred until {until.isoformat()}: {reason}")
        self.until = until
        self.reason = reason
