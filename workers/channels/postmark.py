"""Email through Postmark's HTTP API (``MAIL_URL=postmark://SERVER_TOKEN@api.postmarkapp.com``).

The composed :class:`~workers.mail.OutgoingEmail` is what goes out, field by field: From,
To, Reply-To, Subject, the text and HTML parts, and every other header
(List-Unsubscribe, X-Aftersale-Rule, Message-ID) as Postmark ``Headers``.
Postmark answers 200 with its MessageID; 422 with an ErrorCode for a message
it will not send (inactive recipient, bad address: permanent); 429 and 5xx
are retried. ``postmark+http://`` talks plain HTTP, for a local stand-in.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from aftersale.core import http
from aftersale.workers.channels import base as channel_base
from aftersale.workers.channels.base import (
    ChannelUnavailable,
    HTTPChannel,
    SendResult,
    require_one_email,
)
from aftersale.workers.mail import OutgoingEmail

#: Postmark ErrorCode 406: the recipient hard bounced or marked mail as spam before
INACTIVE_RECIPIENT = 406
#: headers Postmark takes as fields of its own, not as custom headers
OWN_FIELDS = {"from", "to", "cc", "bcc", "reply-to", "subject", "date", "mime-version"}


class PostmarkChannel(HTTPChannel):
    name = "postmark"

    def __init__(self, token: str, base_url: str, *, stream: str = "outbound", timeout=15.0):
        if not token:
            raise ChannelUnavailable("MAIL_URL: postmark://SERVER_TOKEN@api.postmarkapp.com")
        self.token = token
        self.base_url = base_url.rstrip("/")
        self.stream = stream
        self.timeout = timeout

    @classmethod
    def from_url(cls, url: str) -> PostmarkChannel:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        scheme = "http" if parts.scheme == "postmark+http" else "https"
        host = parts.hostname or "api.postmarkapp.com"
        netloc = f"{host}:{parts.port}" if parts.port else host
        return cls(
            unquote(parts.username or ""),
            f"{scheme}://{netloc}",
            stream=query.get("stream", "outbound"),
            timeout=float(query.get("timeout", 15)),
        )

    def _send_one(self, message: OutgoingEmail) -> SendResult:
        response = http.request(
            self.session,
            "POST",
            f"{self.base_url}/email",
            "Postmark",
            timeout=self.timeout,
            json=self.payload(message),
            headers={
                "Accept": "application/json",
                "X-Postmark-Server-Token": self.token,
            },
        )
        answer = http.json_or_none(response) or {}
        detail = None
        if answer.get("ErrorCode"):
            detail = f"ErrorCode {answer['ErrorCode']}: {answer.get('Message', '')}"
        gone = "bounced" if answer.get("ErrorCode") == INACTIVE_RECIPIENT else None
        http.check(response, "Postmark", detail, gone=gone)
        return channel_base.result(response, answer.get("MessageID"))

    def payload(self, message) -> dict:
        """Postmark's JSON for one composed message."""
        body = {
            "From": message.sender,
            "To": require_one_email(message.to),
            "Subject": message.subject or "",
            "MessageStream": self.stream,
            "Headers": [
                {"Name": name, "Value": value}
                for name, value in message.header_items()
                if name.lower() not in OWN_FIELDS and not name.lower().startswith("content-")
            ],
            "TextBody": message.text,
        }
        if message.reply_to:
            body["ReplyTo"] = message.reply_to
        if message.html:
            body["HtmlBody"] = message.html
        return body
