"""Per-customer RFM summary, RFM scores and segments, and customer profitability.

The summary is computed in the engine and follows pymc-marketing's ``rfm_summary`` (ex-``lifetimes``)
convention, so it feeds the CLV models (BG/NBD, Pareto/NBD, Gamma-Gamma) directly:

- dates are floored to the ``time_unit`` ("D" = day, "W" = week starting Monday) and the
  ``observation_period_end`` is floored the same way; purchases after it are ignored;
- **frequency** = number of *repeat* purchase periods (days), i.e. distinct purchase days - 1;
- **recency** = time from the first to the last purchase day; **T** = time from the first purchase
  day to the end of observation (the customer's age, or tenure), both in ``time_unit`` divided by
  ``time_scaler`` (use ``time_unit="D", time_scaler=7`` for the weeks of the CDNOW papers);
- **monetary_value** = mean of the repeat days' totals (all of a day's purchases summed),
  0 if the customer has no repeat purchase.

On the warehouse, a purchase day is a day with at least one sale line; a day with only returns is
*not* a purchase day. A purchase day's value is its sales, gross of returns (spend models need
positive transaction values); returns come off ``total_spend`` (net revenue), ``margin`` and
``profit``, on the day they happen.
"""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crm_helpers import warehouse as wh
from crm_helpers.config import Settings
from crm_helpers.information import kpis, star

TIME_UNIT_DAYS = {"D": 1, "W": 7}

#: Named RFM segments on the recency x frequency score grid (rows R 1..5, columns F 1..5).
RFM_SEGMENT_GRID: dict[str, list[tuple[int, int]]] = {
    "Champions": [(5, 4), (5, 5)],
    "Loyal customers": [(3, 4), (3, 5), (4, 4), (4, 5)],
    "Potential loyalists": [(4, 2), (4, 3), (5, 2), (5, 3)],
    "New customers": [(5, 1)],
    "Promising": [(4, 1)],
    "Need attention": [(3, 3)],
    "About to sleep": [(3, 1), (3, 2)],
    "Can't lose them": [(1, 5), (2, 5)],
    "At risk": [(1, 3), (1, 4), (2, 3), (2, 4)],
    "Hibernating": [(1, 1), (1, 2), (2, 1), (2, 2)],
}

SUMMARY_COLUMNS = ["customer_id", "frequency", "recency", "T", "monetary_value"]


def floor_to_unit(value, time_unit: str = "D") -> date:
    """Floor a date/datetime/string to the start of its ``time_unit`` period, as pandas does."""
    _check_unit(time_unit)
    return pd.Timestamp(value).to_period(time_unit).to_timestamp().date()


def _check_unit(time_unit: str) -> None:
    if time_unit not in TIME_UNIT_DAYS:
        raise ValueError(f"time_unit must be one of {sorted(TIME_UNIT_DAYS)}, not {time_unit!r}")


def _floored(col: ir.Value, time_unit: str) -> ir.DateValue:
    """Engine expression: the start day of the ``time_unit`` period of a date/timestamp column."""
    day = col.date() if col.type().is_timestamp() else col.cast("date")
    return day if time_unit == "D" else day.truncate("W")


def purchase_periods(
    transactions: ir.Table,
    customer_id_col: str = "customer_id",
    datetime_col: str = "datetime",
    monetary_value_col: str | None = None,
    observation_period_end=None,
    time_unit: str = "D",
) -> tuple[ir.Table, ir.Value]:
    """One row per customer and purchase period (day/week) up to the end of observation.

    Returns the table (customer_id, period, value) and the floored end of observation (a literal,
    or, if not given, the last purchase period as a scalar engine expression).
    """
    _check_unit(time_unit)
    value = transactions[monetary_value_col] if monetary_value_col else ibis.literal(0)
    t = transactions.select(
        customer_id=transactions[customer_id_col],
        period=_floored(transactions[datetime_col], time_unit),
        value=value,
    )
    if observation_period_end is None:
        end = t.period.max().as_scalar()
    else:
        end = ibis.literal(floor_to_unit(observation_period_end, time_unit), type="date")
    t = t.filter(t.period <= end)
    days = t.group_by(["customer_id", "period"]).aggregate(value=t.value.sum())
    return days, end


def rfm_summary(
    transactions: ir.Table,
    customer_id_col: str = "customer_id",
    datetime_col: str = "datetime",
    monetary_value_col: str | None = None,
    observation_period_end=None,
    time_unit: str = "D",
    time_scaler: float = 1,
    include_first_transaction: bool = False,
) -> ir.Table:
    """The CLV summary (customer_id, frequency, recency, T[, monetary_value]) as an engine expression.

    Same arguments and results as ``pymc_marketing.clv.utils.rfm_summary``, on any Ibis table of
    transactions; ``.to_pandas()`` the result. With ``include_first_transaction=True`` the RFM
    segmentation variant: frequency counts all purchase periods, recency = time since the last
    purchase, monetary_value = mean over all purchase periods, and no T.
    """
    days, end = purchase_periods(
        transactions, customer_id_col, datetime_col, monetary_value_col, observation_period_end, time_unit
    )
    cust = _customer_periods(days, end)
    unit = TIME_UNIT_DAYS[time_unit] * float(time_scaler)
    span = (cust.last_day - cust.first_day).cast("float64") / unit
    tenure = (cust.end_day - cust.first_day).cast("float64") / unit
    n = cust.n_periods.cast("float64")
    if include_first_transaction:
        cols = dict(frequency=n, recency=tenure - span)
        mean = cust.total_value.cast("float64") / n
    else:
        cols = dict(frequency=n - 1, recency=span, T=tenure)
        repeat_total = cust.total_value.cast("float64") - cust.first_value
        mean = ibis.cases((cust.n_periods > 1, repeat_total / (n - 1)), else_=0.0)
    if monetary_value_col:
        cols["monetary_value"] = mean
    return cust.select("customer_id", **cols).order_by("customer_id")


@ibis.udf.agg.builtin(name="min_by")
def _min_by(arg: dt.float64, key: dt.date) -> dt.float64:
    """The value of ``arg`` on the row with the smallest ``key`` (DuckDB ``arg_min``, Spark ``min_by``).

    Ibis's own ``argmin`` compiles to an ordered ``FIRST(... ORDER BY ...)``, twice as slow here.
    """


def _customer_periods(days: ir.Table, end: ir.Value) -> ir.Table:
    """Per customer: first/last purchase period (as epoch days), count, total and first value."""
    cust = days.group_by("customer_id").aggregate(
        first_period=days.period.min(),
        last_period=days.period.max(),
        n_periods=days.period.count(),
        total_value=days.value.sum(),
        first_value=_min_by(days.value.cast("float64"), days.period),
    )
    return cust.mutate(
        first_day=cust.first_period.epoch_days(),
        last_day=cust.last_period.epoch_days(),
        end_day=end.epoch_days(),
    )


def observation_end(con=None, observation_period_end=None) -> date:
    """The end of observation: the given date, else the last order date in the warehouse."""
    if observation_period_end is not None:
        return pd.Timestamp(observation_period_end).date()
    return star.latest_order_date(con)


def customer_summary(con=None, observation_period_end=None, time_unit: str = "D", time_scaler: float = 1) -> ir.Table:
    """The per-customer summary of the warehouse (engine expression), one row per customer.

    Columns: customer_id, frequency, recency, T, monetary_value (the ``rfm_summary`` convention,
    purchase days), first_purchase, last_purchase (dates), purchase_days (frequency + 1 with time_unit "D"),
    recency_days (days from the last purchase to the end of observation), orders, gross_sales,
    returns (positive amount), total_spend (net revenue = gross_sales - returns),
    cost_of_goods, margin (total_spend - cost_of_goods), all up to ``observation_period_end``
    (default the last order date). Customers without a purchase by then are left out.
    """
    con = wh.as_connection(con)
    end = observation_end(con, observation_period_end)
    lines = star.customer_lines(con, end)
    buys = lines.filter(lines.is_purchase)
    rfm = rfm_summary(buys, "customer_id", "order_date", "line_amount", end, time_unit, time_scaler)
    money = _money(lines).join(star.first_purchases(lines), "customer_id").join(
        buys.group_by("customer_id").aggregate(
            last_purchase=buys.order_date.max(),
            purchase_days=buys.order_date.nunique(),
            orders=buys.order_id.nunique(),
        ),
        "customer_id",
    )
    out = rfm.join(money, "customer_id")
    return out.mutate(
        recency_days=(ibis.literal(end).epoch_days() - out.last_purchase.epoch_days()).cast("int64")
    ).order_by("customer_id")


def _money(lines: ir.Table) -> ir.Table:
    """Per customer: gross sales, returns, net revenue, cost of goods and margin (floats)."""
    m = star.money_measures(lines)
    return lines.group_by("customer_id").aggregate(
        gross_sales=m["gross_sales"], returns=m["returns"], total_spend=m["revenue"],
        cost_of_goods=m["cost_of_goods"], margin=m["margin"])


def profitability(con=None, observation_period_end=None) -> pd.DataFrame:
    """Per-customer profit: revenue minus cost of goods and returns, largest first.

    profit = gross_sales - returns - cost_of_goods, where cost_of_goods sums the lines'
    ``cost_amount`` (a return line carries the returned goods' cost with a minus sign, as the
    warehouse records it). Also profit_margin (profit / net revenue), profit_rank (1 = most
    profitable), customer_share and profit_share (cumulative, for a Pareto/Stobachoff view).
    Customers with lines but no purchase by the end (only returns) are included.
    """
    con = wh.as_connection(con)
    lines = star.customer_lines(con, observation_end(con, observation_period_end))
    df = _money(lines).rename(revenue="total_spend", profit="margin").to_pandas()
    df = kpis.ranked_shares(df, "profit")
    df["profit_margin"] = df["profit"] / df["revenue"].where(df["revenue"] != 0)
    df["profit_rank"] = np.arange(1, len(df) + 1)
    return df


def losses(profit: pd.DataFrame) -> str:
    """One sentence on the customers who lost money in :func:`profitability`, and whether they bend
    its cumulative profit share into a *whale curve* (a peak above 100%, :func:`crm_helpers.plots.whale_peak`).

    Numbers in the notebook's settings (:mod:`crm_helpers.display`). Without ``customer_share`` and
    ``profit_share`` columns the sentence says nothing about the curve.
    """
    from crm_helpers import display
    from crm_helpers.plots import whale_peak

    losing = profit[profit["profit"] < 0]
    total = display.fmt(profit["profit"].sum(), display.MONEY)
    if losing.empty:
        return f"No customer lost money; total profit {total}, so there is no whale curve."
    said = (f"{display.count_of(len(losing), 'customer')} ({display.fmt(len(losing) / len(profit), display.RATE)}) "
            f"lost money, together {display.fmt(-losing['profit'].sum(), display.MONEY)} against {total} of total profit")
    if not {"customer_share", "profit_share"} <= set(profit.columns):
        return said + "."
    peak = whale_peak(profit["customer_share"].to_numpy(), profit["profit_share"].to_numpy())
    if peak is None:
        return (f"{said}: too little to lift the curve visibly above 100% (its peak is "
                f"{display.fmt(profit['profit_share'].max(), display.RATE)}), so these data show **no whale curve**; "
                "profit concentration is the Pareto curve above.")
    return (f"{said}: the curve peaks at **{display.fmt(peak[1], display.RATE)} of profit** at "
            f"{display.fmt(peak[0], display.RATE, 0)} of the customers, and the rest give back "
            f"{display.fmt(peak[1] - 1, display.RATE)} of it (the whale curve, marked on the chart).")


def _quintile(order_by) -> ir.IntegerValue:
    """Engine expression: 1 + floor(5 x percent rank), capped at 5; ties share the lower score."""
    pr = ibis.percent_rank().over(order_by=order_by)
    return ibis.least((pr * 5).floor().cast("int64") + 1, 5)


def segment_grid() -> pd.DataFrame:
    """The 25 cells of the R x F score grid with their segment name."""
    rows = [(r, f, name) for name, cells in RFM_SEGMENT_GRID.items() for r, f in cells]
    return pd.DataFrame(rows, columns=["r_score", "f_score", "segment"]).sort_values(["r_score", "f_score"], ignore_index=True)


def rfm_scores(summary: ir.Table) -> ir.Table:
    """RFM quintile scores and named segments (engine expression).

    ``summary`` is :func:`customer_summary` (or any table with customer_id, recency_days,
    purchase_days, total_spend). Scores 1..5, 5 = best: R on recency_days (more recent is better),
    F on purchase_days, M on total_spend; each score is 1 + floor(5 x percent rank), so each
    quintile holds a fifth of the customers and tied customers share the lower score. rfm_score is
    the three digits (e.g. "545"); segment comes from the R x F grid of :data:`RFM_SEGMENT_GRID`.
    """
    scored = summary.mutate(
        r_score=_quintile(ibis.desc(summary.recency_days)),
        f_score=_quintile(summary.purchase_days),
        m_score=_quintile(summary.total_spend),
    )
    scored = scored.mutate(
        rfm_score=scored.r_score.cast("string") + scored.f_score.cast("string") + scored.m_score.cast("string")
    )
    grid = ibis.memtable(segment_grid())
    out = scored.left_join(grid, ["r_score", "f_score"])
    return out.select(*scored.columns, "segment").order_by("customer_id")


def segment_profile(scored: pd.DataFrame, value: str = "margin") -> pd.DataFrame:
    """Segments side by side: size, shares of customers/revenue/``value``, and typical R, F, M.

    ``scored`` is :func:`rfm_scores` as pandas (customer-level, so pandas is fine here).
    """
    g = scored.groupby("segment", observed=True)
    out = pd.DataFrame(
        {
            "customers": g.size(),
            "recency_days": g["recency_days"].median(),
            "purchase_days": g["purchase_days"].median(),
            "total_spend": g["total_spend"].median(),
        }
    )
    out[f"{value}_total" if value in out else value] = g[value].sum()
    out["customer_share"] = out["customers"] / out["customers"].sum()
    out["revenue_share"] = g["total_spend"].sum() / scored["total_spend"].sum()
    out[f"{value}_share"] = g[value].sum() / scored[value].sum()
    return out.sort_values(f"{value}_share", ascending=False)


def margin_leaders(profile: pd.DataFrame, value: str = "margin", n: int = 2) -> str:
    """One sentence: the ``n`` segments of :func:`segment_profile` with the largest share of ``value``,
    their share of it and their share of the customers."""
    lead = profile.head(n)
    names = " and ".join(lead.index.astype(str))
    return (f"{names} carry {lead[f'{value}_share'].sum():.0%} of the {value} "
            f"with {lead['customer_share'].sum():.0%} of the customers")


def customer_traits(con=None, observation_period_end=None, web_channel: str = Settings.web_channel) -> pd.DataFrame:
    """What describes a customer besides RFM: region, acquisition channel, main channel and category,
    share of spend in the ``web_channel`` (the settings' web channel), number of categories bought
    (one row per customer, pandas)."""
    con = wh.as_connection(con)
    lines = star.customer_lines(con, observation_end(con, observation_period_end))
    lines = lines.filter(lines.is_purchase)
    web = lines.channel == web_channel
    base = lines.group_by("customer_id").aggregate(
        region=lines.region.arbitrary(),
        acquisition_channel=lines.acquisition_channel.arbitrary(),
        web_share=(lines.line_amount.sum(where=web).fill_null(0) / lines.line_amount.sum()).cast("float64"),
        categories=lines.category.nunique(),
    )
    main = {}
    for dim in ("channel", "category"):
        by = lines.group_by(["customer_id", dim]).aggregate(spend=lines.line_amount.sum())
        by = by.mutate(rn=ibis.row_number().over(group_by="customer_id", order_by=[ibis.desc("spend"), dim]))
        main[dim] = by.filter(by.rn == 0).select("customer_id", **{f"main_{dim}": by[dim]})
    out = base.join(main["channel"], "customer_id").join(main["category"], "customer_id")
    return out.order_by("customer_id").to_pandas()
