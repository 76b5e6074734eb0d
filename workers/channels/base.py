"""The channel interface, shaped like Django's mail backends.

``open()`` returns True when it created a connection; ``close()`` closes what
``open()`` opened; ``send(messages)`` returns the provider ids of what was
accepted. A channel used as a context manager opens and closes around a
block, while a worker keeps one channel open across many jobs so one SMTP
connection serves them all. :class:`HTTPChannel` is that shape for providers
spoken to over HTTP: the connection it holds is one pooled requests session.

Errors are typed by what to do next: :class:`TransientError` (timeouts,
connection loss, 4xx SMTP replies, HTTP 429 and 5xx) is retried with backoff;
:class:`PermanentError` (5xx SMTP replies, HTTP 4xx, a bad address) fails the
action at once with the provider's message.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aftersale.core import http
from aftersale.core.addresses import is_one_email
from aftersale.core.errors import DeliveryFailed, PermanentError, RecipientGone, TransientError

if TYPE_CHECKING:
    import requests

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")

__all__ = [
    "Channel",
    "ChannelError",
    "ChannelUnavailable",
    "HTTPChannel",
    "PermanentError",
    "RecipientGone",
    "SendResult",
    "TransientError",
]


ChannelError = DeliveryFailed


def require_one_email(address: str) -> str:
    """A channel's last check: exactly one bare address, never a list a provider would fan out."""
    if not is_one_email(address):
        raise PermanentError("recipient is not exactly one valid email address")
    return address


def require_one_number(number: str) -> str:
    """A channel's last check: exactly one E.164 number."""
    if not isinstance(number, str) or not _E164.match(number):
        raise PermanentError("recipient is not exactly one E.164 phone number")
    return number


class ChannelUnavailable(Exception):
    """A configured channel cannot work here (missing optional dependency, bad URL): a start-up error."""


@dataclass
class SendResult:
    """What the provider said: its id for the message, the status code, a truncated answer,
    and ``data`` worth keeping on the action (a created discount code) for later steps."""

    provider_id: str | None
    status_code: int | None = None
    response: str | None = None
    data: dict | None = None


class Channel(ABC):
    name: str = "channel"

    def open(self) -> bool:
        return False

    def close(self) -> None:
        return None

    def __enter__(self):
        self._opened_here = self.open()
        return self

    def __exit__(self, *exc_info):
        if getattr(self, "_opened_here", False):
            self.close()

    @abstractmethod
    def send(self, messages: Sequence) -> list[SendResult]:
        """Send each message; raise on the first failure (the caller sends one at a time)."""


class HTTPChannel(Channel):
    """A channel that speaks to its provider over HTTP through one pooled session.

    ``open()`` creates the session and returns True, or returns False when one
    is already open; ``close()`` closes the session it holds, if any. ``send``
    opens on first use, so a channel works with or without an explicit
    ``open()``; subclasses implement ``_send_one(message) -> SendResult``.
    """

    session: requests.Session | None = None

    def open(self) -> bool:
        if self.session is not None:
            return False
        self.session = http.make_session()
        return True

    def close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.close()

    def send(self, messages: Sequence) -> list[SendResult]:
        self.open()
        return [self._send_one(message) for message in messages]

    @abstractmethod
    def _send_one(self, message) -> SendResult:
        """Send one message through ``self.session``; raise a typed error on failure."""


def result(response, provider_id: str | None, data=None) -> SendResult:
    """What an HTTP provider's answer says about one send, as recorded with the action."""
    return SendResult(
        provider_id=provider_id,
        status_code=response.status_code,
        response=http.truncated(response.text),
        data=data,
    )
