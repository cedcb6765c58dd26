"""Acquisition cohorts: retention and revenue by cohort and months since first purchase.

Definitions (as quoted in the notebook):

- **Cohort**: the month of a customer's first purchase (``cohort_month``, e.g. ``2024-03``).
- **months_since**: whole calendar months between the cohort month and the activity month
  (0 = the acquisition month itself).
- **Active customers**: cohort members with at least one purchase (a sale line, not a return) in
  that month. **Retention rate** = active customers / cohort size (1 at months_since 0).
- **Revenue**: the cohort's net revenue in that month (sales minus returns, on the day they
  happen); **revenue per customer** divides it by the cohort size, and the cumulative version adds
  the months up (the cohort's average customer value so far).

The same columns as the sample world's ``truth/cohort_retention.csv`` (cohort_month,
months_since, cohort_size, active_customers, retention_rate), plus revenue columns.
"""

from __future__ import annotations

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crm_helpers.information import star


def _month_index(day: ir.DateValue) -> ir.IntegerValue:
    return day.year() * 12 + day.month() - 1


def cohort_lines(con=None, end=None) -> ir.Table:
    """Identified customers' lines with cohort month index and months_since (engine expression)."""
    lines = star.customer_lines(con, end)
    first = star.first_purchases(lines)
    first = first.select("customer_id", cohort=_month_index(first.first_purchase))
    j = lines.join(first, "customer_id")
    return j.mutate(month=_month_index(j.order_date)).mutate(months_since=lambda t: t.month - t.cohort)


def cohort_table(con=None, end=None) -> pd.DataFrame:
    """Long cohort table: one row per cohort_month and months_since with a purchase or revenue.

    Columns: cohort_month ('YYYY-MM'), months_since, cohort_size, active_customers,
    retention_rate, revenue, revenue_per_customer, cumulative_revenue_per_customer. Cells where no
    member bought are absent (retention 0); :func:`retention_matrix` fills them.
    """
    j = cohort_lines(con, end)
    size = j.group_by("cohort").aggregate(cohort_size=j.customer_id.nunique())
    cells = j.group_by(["cohort", "months_since"]).aggregate(
        active_customers=j.customer_id.nunique(where=j.is_purchase),
        revenue=j.line_amount.sum().cast("float64"),
    )
    df = cells.join(size, "cohort").to_pandas().sort_values(["cohort", "months_since"], ignore_index=True)
    df.insert(0, "cohort_month", [f"{c // 12}-{c % 12 + 1:02d}" for c in df.pop("cohort")])
    df["retention_rate"] = df["active_customers"] / df["cohort_size"]
    df["revenue_per_customer"] = df["revenue"] / df["cohort_size"]
    df["cumulative_revenue_per_customer"] = df.groupby("cohort_month")["revenue_per_customer"].cumsum()
    cols = ["cohort_month", "months_since", "cohort_size", "active_customers", "retention_rate",
            "revenue", "revenue_per_customer", "cumulative_revenue_per_customer"]
    return df[cols]


def last_month(table: pd.DataFrame) -> pd.Period:
    """The last calendar month observed in a cohort table."""
    months = [pd.Period(c, "M") + int(m) for c, m in zip(table["cohort_month"], table["months_since"], strict=True)]
    return max(months)


def _observable(table: pd.DataFrame, matrix: pd.DataFrame, last: pd.Period | None = None) -> pd.DataFrame:
    """Observed cells without activity become 0; cells after the last observed month stay NaN."""
    last = last or last_month(table)
    cols = list(range(0, int(table["months_since"].max()) + 1))
    matrix = matrix.reindex(columns=cols).astype("float64")
    horizon = np.array([(last - pd.Period(c, "M")).n for c in matrix.index])
    seen = np.arange(len(cols))[None, :] <= horizon[:, None]
    matrix = matrix.fillna(0).where(seen)
    matrix.columns.name = "months_since"
    return matrix


def retention_matrix(table: pd.DataFrame, rates: bool = True, last: pd.Period | None = None) -> pd.DataFrame:
    """Cohort x months_since matrix of retention rates (or active-customer counts).

    Unobserved cells (after the last month of data) are NaN; observed months without any purchase
    are 0.
    """
    value = "retention_rate" if rates else "active_customers"
    return _observable(table, table.pivot(index="cohort_month", columns="months_since", values=value), last)


def revenue_matrix(table: pd.DataFrame, per_customer: bool = True, cumulative: bool = False) -> pd.DataFrame:
    """Cohort x months_since matrix of net revenue: total, per cohort member, or cumulative per member."""
    value = "revenue_per_customer" if per_customer or cumulative else "revenue"
    m = _observable(table, table.pivot(index="cohort_month", columns="months_since", values=value))
    return m.cumsum(axis=1) if cumulative else m


def cohort_sizes(table: pd.DataFrame) -> pd.Series:
    """Number of customers acquired in each cohort month."""
    return table.groupby("cohort_month")["cohort_size"].first()


def retention_curve(table: pd.DataFrame, max_months: int | None = None, last: pd.Period | None = None) -> pd.DataFrame:
    """Pooled retention by months_since over all cohorts observed that long.

    retention_rate = sum of active customers / sum of cohort sizes, over the cohorts whose
    ``months_since`` is observed; also the number of cohorts and customers it rests on.
    """
    m_active = retention_matrix(table, rates=False, last=last)
    sizes = cohort_sizes(table).reindex(m_active.index)
    observed = m_active.notna()
    out = pd.DataFrame(
        {
            "cohorts": observed.sum(),
            "customers": observed.mul(sizes, axis=0).sum(),
            "active_customers": m_active.fillna(0).sum(),
        }
    )
    out["retention_rate"] = out["active_customers"] / out["customers"]
    if max_months is not None:
        out = out.loc[:max_months]
    return out


def retention_by_cohort_year(table: pd.DataFrame, months: tuple[int, ...] = (1, 3, 6, 12)) -> pd.DataFrame:
    """Does retention improve? Pooled retention at a few horizons, by year of acquisition."""
    t = table.assign(cohort_year=table["cohort_month"].str[:4])
    last = last_month(table)
    rows = {}
    for year, part in t.groupby("cohort_year"):
        curve = retention_curve(part, last=last)
        rows[year] = curve["retention_rate"].reindex(list(months))
    out = pd.DataFrame(rows).T
    out.columns = [f"month_{m}" for m in months]
    out.index.name = "cohort_year"
    return out


def describe_curve(curve: pd.DataFrame, months: tuple[int, ...] = (1, 3, 6, 12)) -> str:
    """One sentence from :func:`retention_curve`: the share of a cohort buying again at a few ages."""
    seen = [m for m in months if m in curve.index]
    if not seen:
        return "No cohort is old enough yet to measure retention"
    rate = curve["retention_rate"]
    first, *later = seen
    return (f"Of the customers acquired in a month, {rate[first]:.0%} bought again in month {first}"
            + "".join(f", {rate[m]:.0%} in month {m}" for m in later))


def compare_years(by_year: pd.DataFrame) -> str:
    """One sentence comparing acquisition years at the same age (:func:`retention_by_cohort_year`):
    the largest gap between years, and whether the latest year is ahead or behind at every horizon."""
    from crm_helpers import display

    spread = (by_year.max() - by_year.min()).dropna()
    if len(by_year) < 2 or spread.empty:
        return "Only one acquisition year so far: no comparison between years yet."
    latest = by_year.diff().iloc[-1].dropna()
    trend = ("the latest year is ahead at every horizon measured." if (latest > 0).all() else
             "the latest year is behind at every horizon measured." if (latest < 0).all() else
             "no year is ahead at every horizon, so these data show no consistent change in retention.")
    return (f"Between acquisition years, retention at the same age differs by at most "
            f"{display.fmt(spread.max() * 100, display.NUMBER, 1)} percentage points "
            f"({display.header(spread.idxmax())}); {trend}")
