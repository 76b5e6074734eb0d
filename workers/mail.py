"""An email ready to send: the fields an API provider needs, and MIME bytes for SMTP and files.

Built like Django's ``EmailMessage``: a plain object holding sender, recipient,
subject, text, HTML and extra headers, turned into MIME only when a channel
needs bytes, with the ``compat32`` classes of the standard library. The
policy-based ``email.message.EmailMessage`` parses every header it is given
and re-folds it on output; measured in a worker, that was two fifths of the
time spent per email.

Headers are never folded inside a value (lines stay under RFC 5322's 998
characters), so a long signed unsubscribe URL stays one clickable URL;
non-ASCII text goes out as RFC 2047 encoded words, bodies as quoted-printable
UTF-8.
"""

from __future__ import annotations

from datetime import datetime
from email import charset as email_charset
from email.generator import BytesGenerator
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr, getaddresses
from io import BytesIO

_UTF8 = email_charset.Charset("utf-8")
_UTF8.header_encoding = email_charset.QP
_UTF8.body_encoding = email_charset.QP
_POLICY = compat32.clone(linesep="\r\n", max_line_length=998)
ADDRESS_HEADERS = ("From", "To", "Reply-To")


class OutgoingEmail:
    """One message; ``message["Message-ID"]`` and friends read like an ``email.message``."""

    def __init__(
        self,
        *,
        sender: str,
        to: str,
        subject: str,
        text: str,
        html: str | None,
        message_id: str,
        date: datetime,
        reply_to: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.sender = sender
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
        self.message_id = message_id
        self.date = date
        self.reply_to = reply_to
        self.headers = dict(headers or {})
        self._bytes: bytes | None = None

    # -- reading it like a message ---------------------------------------------

    def header_items(self) -> list[tuple[str, str]]:
        """Every header, in the order they are written."""
        items = [
            ("From", self.sender),
            ("To", self.to),
            ("Subject", self.subject),
            ("Date", format_datetime(self.date)),
            ("Message-ID", self.message_id),
        ]
        if self.reply_to:
            items.append(("Reply-To", self.reply_to))
        items.extend(self.headers.items())
        return items

    def get(self, name: str, default=None):
        lowered = name.lower()
        return next((v for k, v in self.header_items() if k.lower() == lowered), default)

    def __getitem__(self, name: str):
        return self.get(name)

    # -- bytes for SMTP and files -------------------------------------------------

    def as_bytes(self) -> bytes:
        if self._bytes is None:
            out = BytesIO()
            BytesGenerator(out, mangle_from_=False, policy=_POLICY).flatten(self._mime())
            self._bytes = out.getvalue()
        return self._bytes

    def _mime(self):
        text = MIMEText(self.text, "plain", _UTF8)
        if self.html:
            message = MIMEMultipart("alternative", policy=_POLICY)
            message.attach(text)
            message.attach(MIMEText(self.html, "html", _UTF8))
        else:
            message = text
        for name, value in self.header_items():
            if name in ADDRESS_HEADERS:
                message[name] = encode_addresses(value)
            else:
                message[name] = _encoded(value)
        return message


def _encoded(value: str):
    """ASCII as it is; anything else as encoded words."""
    return value if value.isascii() else Header(value, _UTF8, maxlinelen=998)


def encode_addresses(value: str) -> str:
    """``Ana Petrović <ana@example.com>`` with the name encoded and an IDN domain in punycode."""
    encoded = []
    for name, address in getaddresses([value]):
        local, _, domain = address.rpartition("@")
        if domain and not domain.isascii():
            domain = domain.encode("idna").decode("ascii")
        encoded.append(
            formataddr((name, f"{local}@{domain}" if local else address), charset="utf-8")
        )
    return ", ".join(encoded)
