"""Errors typed by what to do next, shared by channels and platform calls.

:class:`TransientError` (timeouts, lost connections, 429, 5xx, SMTP 4xx) is
retried with backoff, honouring ``retry_after`` when the provider said how
long to wait; :class:`PermanentError` (4xx, SMTP 5xx, a bad address, missing
credentials) fails the action at once with the provider's message.
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
