"""The periodic report's request: which periods and which slice, checked before any kernel starts.

``crm report`` refuses a bad request in the command itself, with one ``error:`` line: a label
that is no period (``2025-13``), a period outside the data, an unknown region or segment each
raise :class:`ReportRefused`. The check reads three facts from the warehouse (whether it is
integrated, the first and last order date, the store regions) through
:func:`crm_helpers.warehouse.peek`, in plain SQL any engine speaks, so a request is refused (or
accepted) without importing Ibis or pandas; the report's numbers are :mod:`report`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date

from crm_helpers import periods
from crm_helpers import warehouse as wh


class ReportRefused(ValueError):
    """A report request that cannot run: bad period, period outside the data, unknown filter value."""


@dataclass(frozen=True)
class Slice:
    """The report's filters: ``region`` (store region) and ``segment`` (RFM segment), each optional."""

    region: str | None = None
    segment: str | None = None

    def describe(self) -> str:
        """``all customers`` or, e.g., ``region London, segment Champions``."""
        parts = [f"{name} {value}" for name, value in (("region", self.region), ("segment", self.segment)) if value]
        return ", ".join(parts) or "all customers and regions"

    def suffix(self) -> str:
        """A file-name-safe suffix for a filtered report (``""`` without filters)."""
        parts = [f"{name}-{value}" for name, value in (("region", self.region), ("segment", self.segment)) if value]
        return "".join("_" + re.sub(r"[^A-Za-z0-9]+", "-", p).strip("-") for p in parts)


def data_range(con) -> tuple[date, date]:
    """The first and last order date of the star schema, on a :func:`~crm_helpers.warehouse.peek` connection."""
    first, last = con.execute("SELECT CAST(min(order_date) AS DATE), CAST(max(order_date) AS DATE) "
                              "FROM fact_order_line").fetchone()
    return first, last


def store_regions(con) -> list[str]:
    """The store regions of the star schema (``dim_channel.region``, a missing one as ``(unknown)``), sorted."""
    from crm_helpers.information.star import UNKNOWN

    rows = con.execute("SELECT DISTINCT coalesce(region, ?) FROM dim_channel", [UNKNOWN]).fetchall()
    return sorted(region for (region,) in rows)


def integrated(con) -> bool:
    """Whether ``crm integrate`` has built the star schema (the table ``dim_customer`` exists)."""
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'dim_customer'")
                .fetchone()[0])


def check_period(label: str, granularity: str, first, last) -> periods.PeriodBounds:
    """The period quoted by ``label``, if it is a valid label and overlaps ``first``..``last``.

    Raises :class:`ReportRefused` naming the problem: a bad granularity, a label that is not a
    period (``2025-13``, ``2025-Q5``), or a period with no day in the data's range.
    """
    try:
        bounds = periods.bounds(label, granularity)
    except ValueError as err:
        raise ReportRefused(f"--period {label!r}: {err}") from None
    if bounds.end < first or bounds.start > last:
        raise ReportRefused(f"--period {bounds.label}: outside the data, which runs from {first} to {last}")
    return bounds


def check_slice(con, region: str | None, segment: str | None) -> Slice:
    """The report's filters, if each names a known store region / RFM segment; else :class:`ReportRefused`.

    ``con`` is a :func:`~crm_helpers.warehouse.peek` connection (read only when a region is given).
    """
    if region is not None and region not in (known := store_regions(con)):
        raise ReportRefused(f"--region {region!r}: no such store region (regions: {', '.join(known)})")
    if segment is not None:
        from crm_helpers.information.rfm import RFM_SEGMENT_GRID

        if segment not in RFM_SEGMENT_GRID:
            raise ReportRefused(f"--segment {segment!r}: no such RFM segment "
                                f"(segments: {', '.join(RFM_SEGMENT_GRID)})")
    return Slice(region, segment)


def _granularity(granularity: str) -> str:
    try:
        return periods.check_granularity(granularity)
    except ValueError as err:
        raise ReportRefused(f"--granularity: {err}") from None


def check_request(warehouse, labels: list[str], granularity: str, region=None, segment=None) -> list[periods.PeriodBounds]:
    """Validate a report request before any kernel starts: every period, and the filters.

    Opens the warehouse read-only (:func:`~crm_helpers.warehouse.peek`) and closes it again.
    Returns the periods' bounds.
    """
    _granularity(granularity)
    for label in labels:  # a label that is no period is refused before the warehouse is opened
        try:
            periods.bounds(label, granularity)
        except ValueError as err:
            raise ReportRefused(f"--period {label!r}: {err}") from None
    with wh.peek(warehouse) as con:
        if not integrated(con):
            raise wh.WarehouseMissing(f"{warehouse} has no star schema yet: run `crm integrate` first")
        first, last = data_range(con)
        found = [check_period(label, granularity, first, last) for label in labels]
        check_slice(con, region, segment)
    return found


def latest_label(warehouse, granularity: str) -> str:
    """The label of the last period with orders (the default report), read briefly, read-only."""
    _granularity(granularity)
    with wh.peek(warehouse) as con:
        return periods.period_label(data_range(con)[1], granularity)


def period_range(start: str, end: str, granularity: str) -> list[str]:
    """Labels of every period from ``start`` to ``end`` (both included); :class:`ReportRefused` if reversed."""
    try:
        first, last = periods.parse_period(start, granularity), periods.parse_period(end, granularity)
    except ValueError as err:
        raise ReportRefused(f"--from/--to: {err}") from None
    if last < first:
        raise ReportRefused(f"--from {start} is after --to {end}")
    labels, day = [], first
    while day <= last:
        labels.append(periods.period_label(day, granularity))
        day = periods.shift_period(day, granularity, 1)
    return labels


def reporting_period(warehouse, period: str | None, granularity: str, compare_with: str | None = None) -> periods.PeriodBounds:
    """The report's period (default: the latest with data), checked; ``compare_with`` replaces the previous period."""
    bounds = check_request(warehouse, [period or latest_label(warehouse, granularity)], granularity)[0]
    if compare_with is not None:
        other = check_request(warehouse, [compare_with], granularity)[0]
        bounds = replace(bounds, previous=other.label)
    return bounds
