"""What every HTTP channel shares: one pooled session, timeouts, and status codes read as
what to do next (Saleor's rule: never retry 3xx or 4xx except 408 and 429).

``Retry-After`` is honoured in both of its forms (seconds, or an HTTP date).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aftersale import __version__
from aftersale.core.errors import PermanentError, RecipientGone, TransientError

if TYPE_CHECKING:
    import requests

RESPONSE_LIMIT = 2000
ERRNO = re.compile(r"\[Errno -?\d+\][^\"')]*")
USER_AGENT = f"Aftersale/{__version__} (+https://github.com/aftersale)"
#: answers worth retrying besides 5xx: request timeout, too early, too many requests
RETRYABLE = {408, 425, 429}


def make_session(pool: int = 10) -> requests.Session:
    """A session with a connection pool, so a worker reuses TLS connections across jobs."""
    # requests costs a web worker 4 MB, and the web process makes HTTP calls only when a
    # store is installed (so request() below imports it too)
    # deferred import: loaded by the first session made
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def request(session: requests.Session, method: str, url: str, what: str, *, timeout, **kwargs):
    """Send one request; a connection problem or timeout is a TransientError."""
    # deferred import: see make_session (already loaded by then; this only names it)
    import requests

    try:
        return session.request(method, url, timeout=timeout, allow_redirects=False, **kwargs)
    except requests.Timeout as exc:
        raise TransientError(f"{what}: timed out after {timeout}s") from exc
    except requests.ConnectionError as exc:
        host = urlsplit(url).netloc
        raise TransientError(f"{what}: cannot connect to {host}: {_reason(exc)}") from exc


def check(
    response: requests.Response, what: str, detail: str | None = None, gone: str | None = None
) -> None:
    """Raise the error a non-2xx answer calls for; ``detail`` is the provider's own message,
    ``gone`` the suppression reason when the provider said the recipient is gone for good."""
    status = response.status_code
    if 200 <= status < 300:
        return
    message = f"{what}: HTTP {status}" + (f": {detail}" if detail else "")
    body = truncated(response.text)
    if gone:
        raise RecipientGone(message, reason=gone, status_code=status, response=body)
    if status >= 500 or status in RETRYABLE:
        raise TransientError(
            message,
            status_code=status,
            response=body,
            retry_after=retry_after(response.headers.get("Retry-After")),
        )
    raise PermanentError(message, status_code=status, response=body)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (``120`` or an HTTP date); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def json_or_none(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return None


def truncated(text: str | None) -> str | None:
    if not text:
        return None
    return text if len(text) <= RESPONSE_LIMIT else text[:RESPONSE_LIMIT] + "..."


def _reason(exc: Exception) -> str:
    """Why a connection failed, without the URL (a webhook URL may carry a token in its path)."""
    found = ERRNO.search(str(exc))
    if found:
        return found.group(0).strip()
    for name in ("NameResolutionError", "SSLError", "ProtocolError", "RemoteDisconnected"):
        if name in str(exc):
            return name
    return type(exc).__name__
