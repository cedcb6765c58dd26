"""Reporting periods: labels, bounds and the periods a report compares with."""

from datetime import date

import pytest

from crm_helpers import periods


@pytest.mark.parametrize(("label", "granularity", "start", "end", "previous", "year_earlier"), [
    ("2024-02", "month", date(2024, 2, 1), date(2024, 2, 29), "2024-01", "2023-02"),
    ("2025-01-17", "month", date(2025, 1, 1), date(2025, 1, 31), "2024-12", "2024-01"),
    ("2025-Q1", "quarter", date(2025, 1, 1), date(2025, 3, 31), "2024-Q4", "2024-Q1"),
    ("2024", "year", date(2024, 1, 1), date(2024, 12, 31), "2023", "2023"),
])
def test_bounds(label, granularity, start, end, previous, year_earlier):
    b = periods.bounds(label, granularity)
    assert (b.start, b.end, b.previous, b.year_earlier) == (start, end, previous, year_earlier)
    assert b.label == periods.period_label(start, granularity)


def test_describe_names_the_comparisons():
    assert periods.bounds("2025-12", "month").describe() == (
        "Reporting period 2025-12 (2025-12-01 to 2025-12-31), compared with 2025-11 and with 2024-12 a year earlier")
    assert periods.bounds("2025", "year").describe().endswith("compared with 2024")


def test_bad_label_rejected():
    with pytest.raises(ValueError, match="not a quarter label"):
        periods.bounds("2025-13", "quarter")
