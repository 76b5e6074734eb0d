"""Outbound webhooks: POST JSON to a URL (Slack, a store's own system), signed.

The body is serialized once and the signature is computed over exactly those
bytes: ``X-Aftersale-Signature: sha256=<hex HMAC-SHA256 with WEBHOOK_SECRET>``.
A receiver checks it by hashing the raw body it got, before parsing.
``X-Aftersale-Delivery`` is the same on every retry of one action, so a
receiver can drop repeats. 2xx is success; redirects are not followed and,
like other 4xx answers, fail at once; 408, 429 and 5xx are retried.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from aftersale.core import http
from aftersale.workers.channels import base as channel_base
from aftersale.workers.channels.base import HTTPChannel, SendResult

SIGNATURE_HEADER = "X-Aftersale-Signature"


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    body: bytes
    delivery_id: str
    event: str
    headers: dict = field(default_factory=dict)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookChannel(HTTPChannel):
    name = "webhook"

    def __init__(self, secret: str, *, timeout: float = 10.0):
        self.secret = secret
        self.timeout = timeout

    def _send_one(self, request: WebhookRequest) -> SendResult:
        headers = {
            **request.headers,
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self.secret, request.body),
            "X-Aftersale-Delivery": request.delivery_id,
            "X-Aftersale-Event": request.event,
        }
        response = http.request(
            self.session,
            "POST",
            request.url,
            "webhook",
            timeout=self.timeout,
            data=request.body,
            headers=headers,
        )
        http.check(response, "webhook")
        return channel_base.result(response, response.headers.get("X-Request-Id"))
