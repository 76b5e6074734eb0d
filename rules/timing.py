"""When a message may go out: the recipient's time zone, quiet hours and send windows.

One function, :func:`release_at`, answers "the earliest moment at or after
``moment`` this rule's message may be sent to this recipient", and every
path that sets or reaches a due time asks it: planning, a ``wait_for``
release or timeout, a frequency-cap deferral, a retry, a manual retry, and
the last check before sending. So a rule's quiet hours and ``send_at`` slot
hold however the action got to be due.

The recipient's time zone comes from the order's shipping address (then
billing address) country, else the territory of the customer's locale (``de-AT``),
through CLDR's territory -> zones table (Babel);
a country spanning several zones is narrowed by the customer's phone number
(``phonenumbers``' prefix -> zone table), and otherwise falls back to the
shop's zone unless all the country's zones agree on the offset at that
moment. Without any of that, the shop's ``timezone`` applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.core import Locale, UnknownLocaleError, get_global

from aftersale.core.steps import MESSAGE_STEPS

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: how many quiet-hours / send-window adjustments may chain before we give up moving
MAX_MOVES = 16


@dataclass(frozen=True)
class SendWindow:
    """``send_at: {local: "10:00-12:00", days: [mon, ...]}`` compiled: local slot and weekdays."""

    start: dt_time
    end: dt_time
    days: frozenset[int]  # 0 = Monday, as datetime.weekday()

    def describe(self) -> str:
        names = ",".join(DAYS[d] for d in sorted(self.days))
        return f"{self.start:%H:%M}-{self.end:%H:%M} {names}"


def recipient_zone(order: dict | None, customer: dict | None, shop_zone: str, at: datetime) -> str:
    """The IANA zone to read local times in for this recipient (the shop's when unknown)."""
    order = order or {}
    country = None
    for key in ("shipping_address", "billing_address"):
        address = order.get(key) or {}
        country = address.get("country_code") or address.get("country")
        if country:
            break
    if not country:  # the customer's own data: a locale such as de-AT names a country
        country = _locale_territory((customer or {}).get("locale") or order.get("locale"))
    candidates = _country_zones(str(country).upper()) if country else ()
    if not candidates:
        return shop_zone
    if len(candidates) == 1:
        return candidates[0]
    if shop_zone in candidates:
        return shop_zone
    phone = (customer or {}).get("phone") or order.get("phone")
    by_phone = _phone_zone(phone, str(country).upper()) if phone else None
    if by_phone in candidates:
        return by_phone
    offsets = {at.astimezone(ZoneInfo(zone)).utcoffset() for zone in candidates}
    return candidates[0] if len(offsets) == 1 else shop_zone


@lru_cache(maxsize=512)
def _locale_territory(locale: str | None) -> str | None:
    if not locale:
        return None
    try:
        return Locale.parse(str(locale).replace("-", "_")).territory
    except (ValueError, TypeError, UnknownLocaleError):
        return None


@lru_cache(maxsize=512)
def _country_zones(country: str) -> tuple[str, ...]:
    zones = []
    for name in get_global("territory_zones").get(country, ()):
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        zones.append(name)
    return tuple(zones)


def _phone_zone(phone: str, country: str) -> str | None:
    # deferred import: its tables cost the web process a megabyte it never uses
    import phonenumbers
    from phonenumbers import timezone as phone_zones

    try:
        number = phonenumbers.parse(str(phone), country)
    except phonenumbers.NumberParseException:
        return None
    found = phone_zones.time_zones_for_number(number)
    return found[0] if len(found) == 1 else None


def honours_timing(rule, step_type: str) -> bool:
    """Whether this step of the rule is held to quiet hours or a send window at all."""
    if step_type not in MESSAGE_STEPS:
        return False
    return rule.honours_quiet_hours() or rule.send_at is not None


def release_at(rule, settings, moment: datetime, zone: str, step_type: str = "email") -> datetime:
    """The first moment at or after ``moment`` inside the rule's send window (if any) and
    outside the shop's quiet hours (if the rule honours them), read in ``zone``."""
    if not honours_timing(rule, step_type):
        return moment
    quiet = settings.quiet_hours if rule.honours_quiet_hours() else None
    tz = ZoneInfo(zone)
    for _ in range(MAX_MOVES):
        moved = after_quiet_hours(next_slot(moment, rule.send_at, tz), quiet, tz)
        if moved == moment:
            return moment
        moment = moved
    return moment


def after_quiet_hours(moment: datetime, quiet: tuple | None, tz: ZoneInfo) -> datetime:
    """``moment``, or the end of the quiet hours (local time in ``tz``) when it falls inside."""
    if not quiet:
        return moment
    start, end = quiet
    local = moment.astimezone(tz)
    clock = local.time()
    overnight = start > end  # e.g. 21:00-08:00
    inside = (clock >= start or clock < end) if overnight else (start <= clock < end)
    if not inside:
        return moment
    day = local.date()
    if overnight and clock >= start:
        day += timedelta(days=1)
    return datetime.combine(day, end, tzinfo=tz).astimezone(UTC)


def next_slot(moment: datetime, window: SendWindow | None, tz: ZoneInfo) -> datetime:
    """``moment`` when it is inside a send slot, else the start of the next slot (local)."""
    if window is None:
        return moment
    local = moment.astimezone(tz)
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        opens = datetime.combine(day, window.start, tzinfo=tz)
        closes = datetime.combine(day, window.end, tzinfo=tz)
        if offset == 0 and opens <= local < closes:
            return moment
        if opens >= local:
            return opens.astimezone(UTC)
    return moment  # no day allowed: the schema refuses an empty day list


def parse_window(text: str, days) -> SendWindow:
    """``"10:00-12:00"`` and ``[mon, tue]`` -> :class:`SendWindow`; ValueError says what is wrong."""
    parts = str(text).split("-")
    if len(parts) != 2:
        raise ValueError(f"local is a slot like '10:00-12:00', got {text!r}")
    start, end = (_clock(p) for p in parts)
    if not start < end:
        raise ValueError(f"the slot {text!r} must end after it starts, on the same day")
    if days is None:
        days = DAYS
    if not isinstance(days, list | tuple) or not days:
        raise ValueError("days is a non-empty list such as [mon, tue, wed, thu, fri]")
    wanted = set()
    for day in days:
        name = str(day).lower()[:3]
        if name not in DAYS:
            raise ValueError(f"unknown day {day!r}; days are {', '.join(DAYS)}")
        wanted.add(DAYS.index(name))
    return SendWindow(start, end, frozenset(wanted))


def _clock(text: str) -> dt_time:
    hours, _, minutes = text.strip().partition(":")
    try:
        value = dt_time(int(hours), int(minutes or 0))
    except ValueError as exc:
        raise ValueError(f"expected a time of day like 10:00, got {text.strip()!r}") from exc
    return value
