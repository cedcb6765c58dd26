"""Reporting periods: month, quarter and year, as the KPIs, cohorts and reports use them.

A period is identified by its first day (``period_start``) and quoted by a label: ``"2025-12"`` for
a month, ``"2025-Q4"`` for a quarter, ``"2025"`` for a year.

Labels and bounds are plain calendar arithmetic (the standard library's ``datetime``), so ``crm
report`` checks a period before importing Ibis or pandas; only the engine expressions import Ibis.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ibis.expr.types as ir

#: Granularity name -> Ibis truncation unit and length in months.
GRANULARITIES: dict[str, tuple[str, int]] = {"month": ("M", 1), "quarter": ("Q", 3), "year": ("Y", 12)}
#: What a label of each granularity looks like (a month may also be given by a day in it).
LABEL_PATTERNS = {"month": r"\d{4}-\d{2}(-\d{2})?", "quarter": r"\d{4}-Q[1-4]", "year": r"\d{4}"}
LABEL_EXAMPLES = {"month": "2025-12", "quarter": "2025-Q4", "year": "2025"}


def check_granularity(granularity: str) -> str:
    """Return ``granularity`` if it is one of month, quarter, year; raise ``ValueError`` otherwise."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {sorted(GRANULARITIES)}, not {granularity!r}")
    return granularity


def period_start(day: ir.DateValue, granularity: str) -> ir.DateValue:
    """Engine expression: the first day of the period that contains ``day``."""
    unit, _ = GRANULARITIES[check_granularity(granularity)]
    return day.truncate(unit)


def next_period_start(start: ir.DateValue, granularity: str) -> ir.DateValue:
    """Engine expression: the first day of the period after the one starting on ``start``."""
    import ibis

    months = GRANULARITIES[check_granularity(granularity)][1]
    return (start + ibis.interval(months=months)).cast("date")


def as_date(day) -> date:
    """A day given as a ``date``, a ``datetime`` (pandas' ``Timestamp`` is one) or anything pandas reads as one."""
    if isinstance(day, datetime):
        return day.date()
    if isinstance(day, date):
        return day
    import pandas as pd  # a numpy datetime64 or a string: rare, so pandas only then

    return pd.Timestamp(day).date()


def period_label(start, granularity: str) -> str:
    """The label of the period starting on ``start``: ``2025-12``, ``2025-Q4`` or ``2025``."""
    ts = as_date(start)
    if check_granularity(granularity) == "month":
        return f"{ts.year}-{ts.month:02d}"
    if granularity == "quarter":
        return f"{ts.year}-Q{(ts.month - 1) // 3 + 1}"
    return f"{ts.year}"


def parse_period(label: str, granularity: str) -> date:
    """The first day of the period quoted as ``label`` (``2025-12``, ``2025-Q4``, ``2025``)."""
    check_granularity(granularity)
    text = str(label).strip()
    if not re.fullmatch(LABEL_PATTERNS[granularity], text, flags=re.IGNORECASE):
        raise ValueError(f"{label!r} is not a {granularity} label (like {LABEL_EXAMPLES[granularity]})")
    if granularity == "quarter":
        year, quarter = text.upper().split("-Q")
        return date(int(year), 3 * (int(quarter) - 1) + 1, 1)
    if granularity == "year":
        return date(int(text[:4]), 1, 1)
    day = date.fromisoformat(text if len(text) > 7 else text + "-01")  # "2025-13": month must be in 1..12
    return date(day.year, day.month, 1)


def shift_period(start, granularity: str, n: int = -1) -> date:
    """The first day of the period ``n`` periods after (negative: before) the one starting on ``start``.

    Counted in calendar months; a day past the end of the target month becomes its last day.
    """
    day = as_date(start)
    year, month = divmod(day.month - 1 + GRANULARITIES[check_granularity(granularity)][1] * n, 12)
    year, month = day.year + year, month + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def periods_per_year(granularity: str) -> int:
    """How many periods make a year (12, 4 or 1): the lag of a year-on-year comparison."""
    return 12 // GRANULARITIES[check_granularity(granularity)][1]


@dataclass(frozen=True)
class PeriodBounds:
    """A reporting period and the periods it is compared with.

    ``label`` (``2025-12``), ``granularity``, ``start`` and ``end`` (first and last day, both
    included), ``previous`` (label of the period before) and ``year_earlier`` (label of the same
    period a year before).
    """

    label: str
    granularity: str
    start: date
    end: date
    previous: str
    year_earlier: str

    def contains(self, day: ir.DateValue) -> ir.BooleanValue:
        """Engine expression: ``day`` falls in the period."""
        return day.between(self.start, self.end)

    def describe(self) -> str:
        """One line for a report: the period, its days and what it is compared with."""
        against = self.previous if self.previous == self.year_earlier else (
            f"{self.previous} and with {self.year_earlier} a year earlier")
        return f"Reporting period {self.label} ({self.start} to {self.end}), compared with {against}"


def bounds(label: str, granularity: str) -> PeriodBounds:
    """The first and last day of the period quoted as ``label``, and the labels it is compared with."""
    start = parse_period(label, granularity)
    end = shift_period(start, granularity, 1) - timedelta(days=1)
    previous = shift_period(start, granularity, -1)
    year_earlier = shift_period(start, granularity, -periods_per_year(granularity))
    return PeriodBounds(period_label(start, granularity), granularity, start, end,
                        period_label(previous, granularity), period_label(year_earlier, granularity))
