"""Delivery channels, one module each; :func:`mail_channel` picks the email one from ``MAIL_URL``,
:func:`sms_channel` the SMS one from ``SMS_URL``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from aftersale.core.config import MAIL_SCHEMES, mask_url
from aftersale.workers.channels.base import (
    Channel,
    ChannelUnavailable,
    PermanentError,
    SendResult,
    TransientError,
)

__all__ = [
    "Channel",
    "ChannelUnavailable",
    "PermanentError",
    "SendResult",
    "TransientError",
    "mail_channel",
    "sms_channel",
]


def _malformed(setting: str, url: str, exc: ValueError) -> ChannelUnavailable:
    """A URL a channel cannot read, said without its password (Config checks most shapes first)."""
    return ChannelUnavailable(f"{setting}={mask_url(url)}: {exc}")


def mail_channel(url: str) -> Channel:
    try:
        return _mail_channel(url)
    except ValueError as exc:
        raise _malformed("MAIL_URL", url, exc) from None


def _mail_channel(url: str) -> Channel:
    scheme = urlsplit(url).scheme
    if scheme in ("smtp", "smtps"):
        # deferred import: only the channel MAIL_URL/SMS_URL names is loaded
        from aftersale.workers.channels.smtp import SMTPChannel

        return SMTPChannel.from_url(url)
    if scheme == "file":
        from aftersale.workers.channels.outbox import FileOutbox

        return FileOutbox(Path(unquote(urlsplit(url).path)))
    if scheme in ("postmark", "postmark+http"):
        from aftersale.workers.channels.postmark import PostmarkChannel

        return PostmarkChannel.from_url(url)
    if scheme == "memory":
        from aftersale.workers.channels.memory import MemoryChannel

        return MemoryChannel()
    raise ChannelUnavailable(
        f"MAIL_URL={mask_url(url)}: no email channel for {scheme!r} ({', '.join(MAIL_SCHEMES)})"
    )


def sms_channel(url: str) -> Channel:
    """The SMS channel for ``SMS_URL``; an empty URL means SMS steps cannot run (a start-up error
    for a worker whose rules use them)."""
    if not url:
        raise ChannelUnavailable(
            "rules use sms steps but SMS_URL is not set"
            " (twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com?from=%2B15005550006)"
        )
    scheme = urlsplit(url).scheme
    if scheme in ("twilio", "twilio+http"):
        # deferred import: only the channel MAIL_URL/SMS_URL names is loaded
        from aftersale.workers.channels.twilio_sms import TwilioChannel

        try:
            return TwilioChannel.from_url(url)
        except ValueError as exc:
            raise _malformed("SMS_URL", url, exc) from None
    if scheme == "memory":
        from aftersale.workers.channels.memory import MemoryChannel

        return MemoryChannel()
    raise ChannelUnavailable(
        f"SMS_URL={mask_url(url)}: no SMS channel for {scheme!r}"
        " (twilio://SID:TOKEN@api.twilio.com?from=+E164)"
    )
