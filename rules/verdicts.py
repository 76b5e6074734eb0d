"""Every rule of an event's kind judged, matched or not, logged and the misses kept.

"Why didn't this customer get the review invite?" is answered from what was
recorded when the event came in, not by re-running ``rules test`` later with
rules and data that may have changed since. A miss keeps the first failing
check and the actual value; a value taken from a customer's contact or
address fields is masked, since these rows stay in the database for
RULE_MISS_DAYS.
"""

from __future__ import annotations

import re
from datetime import datetime

from aftersale.core import logs
from aftersale.core.events import Event
from aftersale.rules.engine import explain
from aftersale.store import why_not
from aftersale.store.why_not import Miss

log = logs.get_logger("rules.verdicts")

#: the last key of a path whose value identifies a person; its actual value is masked
PERSONAL_KEYS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "name",
    "address1",
    "address2",
    "zip",
    "city",
    "company",
    "latitude",
    "longitude",
)
#: ``customer.email eq 'x': actual 'ana@...'`` and, inside a ``not``, ``customer.email: actual ...``
_PERSONAL_ACTUAL = re.compile(
    r"((?:^|[\s(])[\w.]*\b(?:"
    + "|".join(PERSONAL_KEYS)
    + r")(?: [^:;]*)?: actual )('[^']*'|\[[^\]]*\]|[^;)]+)"
)
#: sentences that name several checks, or a check and what a ``not`` saw: kept whole
_WHOLE = ("none of:", "not (")
_ACTUAL = ": actual "


def judge(conn, ruleset, shop_id: int, event_id: int, event: Event, now: datetime) -> None:
    """Log ``rule.matched`` / ``rule.not_matched`` for each rule of the event's kind and store
    the misses (``store/why_not.py``). ``event`` is as the rules saw it (with history facts)."""
    misses = []
    for verdict in explain(ruleset, event, now):
        if verdict.matched:
            log.info("rule.matched", rule=verdict.rule.name)
            continue
        miss = miss_of(verdict.rule.name, verdict.reason or "")
        log.info("rule.not_matched", rule=miss.rule, check=miss.check, actual=miss.actual)
        misses.append(miss)
    why_not.record(conn, shop_id, event_id, misses, now)


def miss_of(rule: str, reason: str) -> Miss:
    """A verdict's sentence split into the failing check and the actual value, made safe.

    ``order.total_price gte Decimal('100'): actual '20.00'`` becomes the check
    ``order.total_price gte Decimal('100')`` and the actual ``'20.00'``. A
    sentence naming several checks (``none of: ...``) or a ``not`` with what it saw
    stays whole as the check.
    """
    safe = logs.scrub(_PERSONAL_ACTUAL.sub(r"\1***", reason))
    check, found, actual = safe.rpartition(_ACTUAL)
    if not found or _ACTUAL in check or check.startswith(_WHOLE):
        return Miss(rule, safe)
    return Miss(rule, check, actual)
