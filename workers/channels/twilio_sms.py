"""SMS through Twilio's REST API (``SMS_URL=twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com?from=...``).

``from`` is the sending number in E.164 (``%2B15005550006`` in the URL), or
``messaging_service=MG...`` lets a Twilio Messaging Service pick one. Twilio
answers 201 with the message ``sid``; a 400 carries Twilio's error code
(21211 invalid number, 21610 the recipient replied STOP): permanent. 429 and
5xx are retried. ``twilio+http://`` talks plain HTTP, for a local stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from aftersale.core import http
from aftersale.workers.channels import base as channel_base
from aftersale.workers.channels.base import (
    ChannelUnavailable,
    HTTPChannel,
    SendResult,
    require_one_number,
)

API_VERSION = "2010-04-01"
#: Twilio error codes meaning the number will not take our texts: 21610 the recipient replied
#: STOP; 21614 not a mobile number
GONE = {21610: "unsubscribed", 21614: "bounced"}


@dataclass(frozen=True)
class SMSMessage:
    to: str  # E.164
    body: str


class TwilioChannel(HTTPChannel):
    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        base_url: str,
        *,
        sender: str | None = None,
        messaging_service: str | None = None,
        timeout: float = 15.0,
    ):
        if not account_sid or not auth_token:
            raise ChannelUnavailable(
                "SMS_URL: twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com?from=..."
            )
        if not sender and not messaging_service:
            raise ChannelUnavailable("SMS_URL needs from=+E164 or messaging_service=MG...")
        self.account_sid = account_sid
        self.auth = (account_sid, auth_token)
        self.base_url = base_url.rstrip("/")
        self.sender = sender
        self.messaging_service = messaging_service
        self.timeout = timeout

    @classmethod
    def from_url(cls, url: str) -> TwilioChannel:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        scheme = "http" if parts.scheme == "twilio+http" else "https"
        host = parts.hostname or "api.twilio.com"
        netloc = f"{host}:{parts.port}" if parts.port else host
        sender = query.get("from", "").strip()
        if sender and not sender.startswith("+") and sender.isdigit():
            sender = "+" + sender  # a literal '+' in a query string arrives as a space
        return cls(
            unquote(parts.username or ""),
            unquote(parts.password or ""),
            f"{scheme}://{netloc}",
            sender=sender or None,
            messaging_service=query.get("messaging_service") or None,
            timeout=float(query.get("timeout", 15)),
        )

    def _send_one(self, message: SMSMessage) -> SendResult:
        form = {"To": require_one_number(message.to), "Body": message.body}
        if self.messaging_service:
            form["MessagingServiceSid"] = self.messaging_service
        else:
            form["From"] = self.sender
        response = http.request(
            self.session,
            "POST",
            f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Messages.json",
            "Twilio",
            timeout=self.timeout,
            data=form,
            auth=self.auth,
        )
        answer = http.json_or_none(response) or {}
        detail = None
        if answer.get("code"):
            detail = f"error {answer['code']}: {answer.get('message', '')}"
        http.check(response, "Twilio", detail, gone=GONE.get(answer.get("code")))
        return channel_base.result(response, answer.get("sid"))
