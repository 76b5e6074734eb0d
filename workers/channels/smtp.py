"""Email over SMTP, with STARTTLS or implicit TLS and authentication.

One connection is kept open per worker process and reused across jobs; a
dropped connection is reopened once before the send counts as failed. SMTP
reply codes decide retrying: 4xx transient, 5xx permanent.

The bytes handed to the server are ``OutgoingEmail.as_bytes()``: DKIM-signed when
the message carries a key (the shop's or DKIM_KEY_FILE's, see core/dkim.py), and
sent unchanged, so the signature holds for exactly what the server receives.
"""

from __future__ import annotations

import smtplib
import ssl
import threading
from collections.abc import Sequence
from email.utils import parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from aftersale.workers.channels.base import (
    Channel,
    PermanentError,
    SendResult,
    TransientError,
    require_one_email,
)
from aftersale.workers.mail import OutgoingEmail

TRUE = ("1", "true", "yes", "on")


class SMTPChannel(Channel):
    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username=None,
        password=None,
        use_ssl=False,
        starttls=False,
        timeout: float = 30.0,
        verify_tls: bool = True,
    ):
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.use_ssl, self.starttls = use_ssl, starttls
        self.timeout = timeout
        self.verify_tls = verify_tls
        self.connection: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> SMTPChannel:
        """``smtp://user:pass@host:587?starttls=1`` or ``smtps://host:465``; ``verify=0`` for self-signed."""
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        use_ssl = parts.scheme == "smtps"
        return cls(
            parts.hostname or "localhost",
            parts.port or (465 if use_ssl else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_ssl=use_ssl,
            starttls=query.get("starttls", "0").lower() in TRUE,
            timeout=float(query.get("timeout", 30)),
            verify_tls=query.get("verify", "1").lower() in TRUE,
        )

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def open(self) -> bool:
        if self.connection is not None:
            return False
        try:
            if self.use_ssl:
                conn = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=self._tls_context()
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.starttls:
                    conn.starttls(context=self._tls_context())
            if self.username:
                conn.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentError(
                f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}",
                status_code=exc.smtp_code,
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"cannot connect to SMTP {self.host}:{self.port}: {exc}") from exc
        self.connection = conn
        return True

    def close(self) -> None:
        conn, self.connection = self.connection, None
        if conn is None:
            return
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            conn.close()

    def send(self, messages: Sequence[OutgoingEmail]) -> list[SendResult]:
        with self._lock:
            return [self._send_one(message) for message in messages]

    def _send_one(self, message: OutgoingEmail) -> SendResult:
        require_one_email(message.to)
        for attempt in (1, 2):
            self.open()
            try:
                refused = self.connection.sendmail(
                    _envelope_sender(message), [message.to], message.as_bytes()
                )
            except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                self.close()
                if attempt == 2:
                    raise TransientError(f"SMTP connection lost: {exc}") from exc
                continue
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()))
                self._reset()
                raise _by_code(code, f"recipient refused: {code} {_text(reply)}") from exc
            except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                self._reset()
                raise _by_code(
                    exc.smtp_code, f"SMTP refused: {exc.smtp_code} {_text(exc.smtp_error)}"
                ) from exc
            except smtplib.SMTPException as exc:
                self.close()
                raise TransientError(f"SMTP error: {exc}") from exc
            if refused:
                code, reply = next(iter(refused.values()))
                raise _by_code(code, f"recipient refused: {code} {_text(reply)}")
            return SendResult(provider_id=message["Message-ID"], status_code=250)
        raise AssertionError("unreachable")

    def _reset(self) -> None:
        try:
            self.connection.rset()
        except (OSError, smtplib.SMTPException):
            self.close()


def _envelope_sender(message) -> str:
    """The bare address of From, for MAIL FROM (bounces go there)."""
    return parseaddr(message.sender)[1]


def _by_code(code: int, message: str):
    error = PermanentError if 500 <= (code or 0) < 600 else TransientError
    return error(message, status_code=code)


def _text(reply) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
