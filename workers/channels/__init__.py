"""Delivery channels, one module each; :func:`mail_channel` picks the email one from ``MAIL_URL``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from workers.channels.base import (
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
]


def mail_channel(url: str) -> Channel:
    scheme = urlsplit(url).scheme
    if scheme in ("smtp", "smtps"):
        from workers.channels.smtp import SMTPChannel

        return SMTPChannel.from_url(url)
    if scheme == "file":
        from workers.channels.outbox import FileOutbox

        return FileOutbox(Path(unquote(urlsplit(url).path)))
    if scheme == "memory":
        from workers.channels.memory import MemoryChannel

        return MemoryChannel()
    raise ChannelUnavailable(
        f"MAIL_URL: no email channel for {scheme!r} (smtp, smtps, file, memory)"
    )
