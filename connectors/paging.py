"""Paging through a platform's REST list politely: what Shopify and WooCommerce listings share.

Reconciliation and backfill read many pages in a row, so a 429 or a 5xx in the
middle of a run is expected, not an error: the page is asked again after the
wait the platform names (``Retry-After``) or a doubling back-off, a few times,
before the run gives up with the TransientError (its cursor stays at the last
full page, so the next run resumes there).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aftersale.core import http
from aftersale.core.errors import TransientError

if TYPE_CHECKING:  # annotations only: core/http.py loads requests when it makes a session
    import requests

ATTEMPTS = 6
MAX_WAIT = 60.0
TIMEOUT = 30.0


@dataclass
class Page:
    """One page of a listing: its records and what the platform said about the rest."""

    records: list
    response: requests.Response


def polite_get(
    session: requests.Session,
    url: str,
    what: str,
    *,
    params=None,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs,
) -> requests.Response:
    """GET ``url``, waiting out 429 and 5xx up to :data:`ATTEMPTS` times; the 2xx response."""
    for attempt in range(ATTEMPTS):
        response = http.request(session, "GET", url, what, timeout=TIMEOUT, params=params, **kwargs)
        try:
            http.check(response, what)
            return response
        except TransientError as exc:
            if attempt == ATTEMPTS - 1:
                raise
            wait = exc.retry_after if exc.retry_after is not None else 2.0**attempt
            sleep(min(MAX_WAIT, max(0.0, wait)))
    raise AssertionError("unreachable")


def json_list(response: requests.Response, what: str, key: str | None = None) -> list:
    """The list in a listing's JSON answer (under ``key`` when given)."""
    answer = http.json_or_none(response)
    if key is not None and isinstance(answer, dict):
        answer = answer.get(key)
    if not isinstance(answer, list):
        raise TransientError(
            f"{what}: the answer is not a list of records",
            status_code=response.status_code,
            response=http.truncated(response.text),
        )
    return answer
