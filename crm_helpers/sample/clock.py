"""Time in the sample world: instants are int64 seconds since 1970-01-01 UTC.

UK local time is derived from the instant with the known British Summer Time transitions
(01:00 UTC on the last Sundays of March and October). Timestamps are formatted through lookup
tables of day and time-of-day strings, which is much faster than strftime on millions of rows.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crm_helpers.config import END_DATE, START_DATE

DAY = 86_400
EPOCH = date(1970, 1, 1)
_TABLE_START = date(1900, 1, 1)
_TABLE_DAYS = (date(2100, 12, 31) - _TABLE_START).days + 1


def day_number(d: date) -> int:
    """Days since 1970-01-01."""
    return (d - EPOCH).days


START_DAY = day_number(START_DATE)
END_DAY = day_number(END_DATE) + 1  # exclusive: first day after the window
START_S = START_DAY * DAY
END_S = END_DAY * DAY  # midnight London = midnight UTC on 1 January
N_MONTHS = (END_DATE.year - START_DATE.year) * 12 + END_DATE.month - START_DATE.month + 1
MONTH_DAYS = 30.4375


def _last_sunday(year: int, month: int) -> date:
    last = date(year, month, 31)
    return last - timedelta(days=(last.weekday() + 1) % 7)


# Instants at which BST starts and ends (01:00 UTC), for the window and the existing base's
# sign-ups (world.EXISTING_BASE_YEARS before it) plus a margin.
_BST_EDGES = np.array(
    [day_number(_last_sunday(y, m)) * DAY + 3600 for y in range(2015, 2028) for m in (3, 10)]
)


def london_offset(utc_s: np.ndarray) -> np.ndarray:
    """UTC offset of Europe/London in seconds (3600 in summer time) at each instant."""
    return np.where(np.searchsorted(_BST_EDGES, utc_s, side="right") % 2 == 1, 3600, 0)


def local_to_utc(local_s: np.ndarray) -> np.ndarray:
    """Instant of a London wall-clock time (daytime hours, so never ambiguous)."""
    return local_s - london_offset(local_s - 3600)


def to_local(utc_s: np.ndarray) -> np.ndarray:
    """London wall-clock seconds since 1970 (for formatting and calendar months)."""
    return utc_s + london_offset(utc_s)


def month_index(secs: np.ndarray) -> np.ndarray:
    """Calendar month of wall-clock seconds, 0 = January of the start year."""
    return _month_of_day()[secs // DAY - day_number(_TABLE_START)]


def month_label(i: int) -> str:
    """'YYYY-MM' for month index i."""
    y, m = divmod(START_DATE.month - 1 + i, 12)
    return f"{START_DATE.year + y}-{m + 1:02d}"


@cache
def _month_of_day() -> np.ndarray:
    days = np.datetime64(_TABLE_START, "D") + np.arange(_TABLE_DAYS)
    months = days.astype("datetime64[M]").astype(int)  # months since 1970-01
    return months - ((START_DATE.year - 1970) * 12 + START_DATE.month - 1)


@cache
def _day_strings(fmt: str) -> pa.Array:
    days = np.datetime64(_TABLE_START, "D") + np.arange(_TABLE_DAYS)
    iso = np.datetime_as_string(days)  # yyyy-mm-dd
    if fmt == "iso":
        return pa.array(iso, pa.string())
    y, m, d = np.strings.slice(iso, 0, 4), np.strings.slice(iso, 5, 7), np.strings.slice(iso, 8, 10)
    uk = np.strings.add(np.strings.add(np.strings.add(d, "/"), np.strings.add(m, "/")), y)
    return pa.array(uk, pa.string())


@cache
def _time_strings(with_seconds: bool) -> pa.Array:
    s = np.arange(DAY)
    hh = np.strings.zfill((s // 3600).astype(str), 2)
    mm = np.strings.zfill((s // 60 % 60).astype(str), 2)
    out = np.strings.add(np.strings.add(hh, ":"), mm)
    if with_seconds:
        out = np.strings.add(np.strings.add(out, ":"), np.strings.zfill((s % 60).astype(str), 2))
    return pa.array(out, pa.string())


def format_date(days: np.ndarray, style: str = "iso") -> pa.Array:
    """Dates (days since 1970) as 'yyyy-mm-dd' (style 'iso') or 'dd/mm/yyyy' (style 'uk')."""
    return _day_strings(style).take(pa.array(np.asarray(days) - day_number(_TABLE_START)))


def format_timestamp(secs: np.ndarray, style: str) -> pa.Array:
    """Wall-clock seconds as text.

    Styles: 'uk' dd/mm/yyyy HH:MM:SS, 'uk_minutes' dd/mm/yyyy HH:MM, 'iso' yyyy-mm-dd HH:MM:SS,
    'iso_z' yyyy-mm-ddTHH:MM:SSZ.
    """
    secs = np.asarray(secs, dtype=np.int64)
    days = format_date(secs // DAY, "iso" if style.startswith("iso") else "uk")
    clock = _time_strings(style != "uk_minutes").take(pa.array(secs % DAY))
    if style == "iso_z":
        return pc.binary_join_element_wise(days, pc.binary_join_element_wise(clock, "Z", ""), "T")
    return pc.binary_join_element_wise(days, clock, " ")
