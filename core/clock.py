"""Time, injectable: production code asks a clock for ``now()``; tests pass a :class:`FrozenClock`.

All times in Aftersale are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to, so waits of days are tested without sleeping."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment


def as_utc(value: datetime) -> datetime:
    """Naive datetimes from SQLite are UTC; make them aware so comparisons work."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
