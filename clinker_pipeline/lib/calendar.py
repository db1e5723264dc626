"""The planning calendar: which instants each model period covers.

The model's periods are plain integers; feeds arrive with timestamps. 3-hourly forecasts, weekly
prices and telemetry (seconds) all need the same mapping onto periods, so it lives here once.
Periods are calendar months starting at the plan start (the ERP mapping's `plan_start`), in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime


@dataclass(frozen=True)
class PeriodWindow:
    period: int
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600.0

    def overlap_hours(self, start: datetime, end: datetime) -> float:
        """Hours of [start, end) that fall inside this period."""
        lo, hi = max(self.start, start), min(self.end, end)
        return max((hi - lo).total_seconds() / 3600.0, 0.0)


def monthly_periods(plan_start: date, periods: int) -> list[PeriodWindow]:
    """Period k (1-based) is the k-th calendar month from the month of `plan_start`."""
    if periods < 1:
        raise ValueError("periods must be >= 1")
    out = []
    for k in range(periods + 1):
        months = plan_start.year * 12 + plan_start.month - 1 + k
        out.append(datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC))
    return [PeriodWindow(k + 1, out[k], out[k + 1]) for k in range(periods)]


def period_of(windows: list[PeriodWindow], instant: datetime) -> int | None:
    """The period containing `instant` (aware), or None outside the horizon."""
    for window in windows:
        if window.start <= instant < window.end:
            return window.period
    return None


def current_period(windows: list[PeriodWindow], now: datetime) -> PeriodWindow | None:
    """The period live readings belong to: the one containing `now`; the first one while the
    horizon has not started (today's silo stock is that period's opening stock); None after it."""
    if not windows:
        return None
    if now < windows[0].start:
        return windows[0]
    for window in windows:
        if window.start <= now < window.end:
            return window
    return None
