"""Customer KPIs: one definition of each, for any period and any slice.

The definitions, as an analyst would quote them (period P = a month, quarter or year; a *purchase*
is an order line that is not a return; only identified customers count, anonymous walk-in sales
are left out of every customer KPI):

- **Active customers**: customers with at least one purchase in P.
- **New customers**: active customers whose first purchase ever (in any slice) falls in P.
- **Returning customers**: active customers who had bought before P (active minus new).
- **Lapsed customers**: customers active in the previous period P-1 but not in P.
- **Revenue**: net sales of P: sales minus returns, each dated on the day it happened.
- **Orders**: distinct orders with at least one purchase line in P (a return is not an order).
- **Average order value (AOV)**: revenue / orders.
- **Purchase frequency**: orders / active customers.
- **Retention rate**: share of P-1's active customers who are active again in P.
- **Churn rate**: 1 - retention rate = lapsed customers / active customers of P-1.
- **Top-20% revenue share**: share of P's revenue made by the top 20% of its active customers,
  ranked by their net revenue in P (the top ceil(0.2 x active customers); ties broken by id).

A *slice* (``by=``) is any column of :func:`crm_helpers.star.order_lines` (channel, category,
region, tier, store_name, acquisition_channel, ...) or of a customer table passed as
``customer_attributes`` (such as RFM segments). For a customer attribute (region, segment) the
slice is a group of customers; for a transaction attribute (channel, category) a customer is active
in every slice they bought in, and retention means "bought in this slice again".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crm_helpers import periods
from crm_helpers import warehouse as wh
from crm_helpers.config import Settings
from crm_helpers.information import star

KPI_DEFINITIONS: dict[str, str] = {
    "active_customers": "customers with at least one purchase in the period",
    "new_customers": "active customers whose first purchase ever falls in the period",
    "returning_customers": "active customers who had bought before the period",
    "lapsed_customers": "customers active in the previous period but not in this one",
    "revenue": "net sales of the period: sales minus returns (currency units)",
    "orders": "distinct orders with at least one purchase line in the period",
    "aov": "average order value: revenue / orders (currency units)",
    "purchase_frequency": "orders per active customer",
    "retention_rate": "share of the previous period's active customers active again",
    "churn_rate": "1 - retention rate: lapsed / previous period's active customers",
    "top20_revenue_share": "share of revenue from the top 20% of active customers by revenue",
}

#: KPI -> display unit, used by the dashboard and the plots (``star.MONEY``: the warehouse's currency).
KPI_UNITS: dict[str, str] = {
    "active_customers": "customers",
    "new_customers": "customers",
    "returning_customers": "customers",
    "lapsed_customers": "customers",
    "revenue": star.MONEY,
    "orders": "orders",
    "aov": f"{star.MONEY} per order",
    "purchase_frequency": "orders per customer",
    "retention_rate": "%",
    "churn_rate": "%",
    "top20_revenue_share": "%",
}

#: The "top customers" of every concentration figure: the top 20%, that is ceil(0.2 x customers).
TOP_SHARE = 0.2


def _as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def kpi_lines(
    con,
    granularity: str = "month",
    by: str | Sequence[str] | None = None,
    customer_attributes: ir.Table | pd.DataFrame | None = None,
    where: Mapping[str, object] | None = None,
) -> ir.Table:
    """Identified customers' order lines with ``period_start`` and the slice columns (engine).

    ``customer_attributes``: a table with ``customer_id`` and customer-level columns (e.g. an RFM
    ``segment``) to slice by; customers missing from it fall in ``(unknown)``. ``where``: equality
    (scalar) or membership (list) filters on any column, applied before computing the KPIs.
    """
    con = wh.as_connection(con)
    lines = star.customer_lines(con)
    if customer_attributes is not None:
        attrs = customer_attributes
        if isinstance(attrs, pd.DataFrame):
            attrs = ibis.memtable(attrs)
        extra = [c for c in attrs.columns if c != "customer_id"]
        lines = lines.left_join(attrs, "customer_id").select(
            *lines.columns, *[attrs[c].cast("string").fill_null(star.UNKNOWN).name(c) for c in extra]
        )
    for col, value in (where or {}).items():
        if isinstance(value, (list, tuple, set)):
            lines = lines.filter(lines[col].isin(list(value)))
        else:
            lines = lines.filter(lines[col] == value)
    keys = _as_list(by)
    return lines.mutate(period_start=periods.period_start(lines.order_date, granularity)).select(
        "customer_id", "order_id", "order_date", "period_start", "line_amount", "is_purchase", *keys
    )


def _revenue_orders(lines: ir.Table, keys: list[str]) -> ir.Table:
    return lines.group_by(["period_start", *keys]).aggregate(
        revenue=lines.line_amount.sum().cast("float64"),
        orders=lines.order_id.nunique(where=lines.is_purchase),
    )


def _activity(lines: ir.Table, keys: list[str]) -> ir.Table:
    """Distinct (customer, period, slice) with a purchase."""
    buys = lines.filter(lines.is_purchase)
    return buys.select("customer_id", "period_start", *keys).distinct()


def _first_period(con, granularity: str) -> ir.Table:
    """Each customer's first purchase period, over all slices."""
    first = star.first_purchases(star.customer_lines(con))
    return first.mutate(first_period=periods.period_start(first.first_purchase, granularity))


def _active_new(con, lines: ir.Table, keys: list[str], granularity: str) -> ir.Table:
    act = _activity(lines, keys)
    first = _first_period(con, granularity)
    j = act.join(first, "customer_id")
    return j.group_by(["period_start", *keys]).aggregate(
        active_customers=j.customer_id.count(),
        new_customers=j.customer_id.count(where=j.first_period == j.period_start),
        returning_customers=j.customer_id.count(where=j.first_period < j.period_start),
    )


def _retention(lines: ir.Table, keys: list[str], granularity: str) -> ir.Table:
    """Per period: active customers of the previous period, and how many of them are active again."""
    act = _activity(lines, keys)
    prev = act.select(
        "customer_id", *keys, period_start=periods.next_period_start(act.period_start, granularity)
    )
    last = act.period_start.max().as_scalar()
    prev = prev.filter(prev.period_start <= last)
    seen = act.mutate(again=ibis.literal(1))
    j = prev.left_join(seen, ["customer_id", "period_start", *keys])
    return j.group_by(["period_start", *keys]).aggregate(
        previous_active=j.customer_id.count(),
        retained_customers=j.again.count(),
    )


def _top_share(lines: ir.Table, keys: list[str], share: float = TOP_SHARE) -> ir.Table:
    """Revenue of the top ``share`` of active customers per period and slice."""
    part = ["period_start", *keys]
    cust = lines.group_by(["customer_id", *part]).aggregate(
        revenue=lines.line_amount.sum(), active=lines.is_purchase.any()
    )
    cust = cust.mutate(
        rank=ibis.row_number().over(group_by=part, order_by=[ibis.desc("revenue"), "customer_id"]),
        n_active=cust.active.cast("int64").sum().over(group_by=part),
    )
    top = cust.filter(cust["rank"] < (cust.n_active * share - 1e-9).ceil())  # rank is 0-based
    return top.group_by(part).aggregate(top_revenue=top.revenue.sum().cast("float64"))


def kpi_table(
    con=None,
    granularity: str = "month",
    by: str | Sequence[str] | None = None,
    customer_attributes: ir.Table | pd.DataFrame | None = None,
    where: Mapping[str, object] | None = None,
    start=None,
    end=None,
) -> pd.DataFrame:
    """All customer KPIs per period (and slice), one row each, sorted by period.

    Columns: period (label), period_start, the slice columns, then every KPI of
    :data:`KPI_DEFINITIONS` plus previous_active and retained_customers. ``start``/``end``
    (labels or dates) keep only periods in that range after computing (so the first kept period
    still has its retention against the one before).
    """
    con = wh.as_connection(con)
    periods.check_granularity(granularity)
    keys = _as_list(by)
    lines = kpi_lines(con, granularity, keys, customer_attributes, where)
    part = ["period_start", *keys]
    frames = [
        _revenue_orders(lines, keys).to_pandas(),
        _active_new(con, lines, keys, granularity).to_pandas(),
        _retention(lines, keys, granularity).to_pandas(),
        _top_share(lines, keys).to_pandas(),
    ]
    out = frames[0]
    for frame in frames[1:]:
        out = out.merge(frame, on=part, how="outer")
    counts = ["orders", "active_customers", "new_customers", "returning_customers", "previous_active",
              "retained_customers"]
    out[counts] = out[counts].fillna(0).astype("int64")
    out[["revenue", "top_revenue"]] = out[["revenue", "top_revenue"]].fillna(0.0).astype("float64")
    out = _derive(out)
    out["period_start"] = pd.to_datetime(out["period_start"])
    out.insert(0, "period", [periods.period_label(p, granularity) for p in out["period_start"]])
    out = out.sort_values(part, ignore_index=True)
    if start is not None:
        out = out[out["period_start"] >= pd.Timestamp(_as_date(start, granularity))]
    if end is not None:
        out = out[out["period_start"] <= pd.Timestamp(_as_date(end, granularity))]
    cols = ["period", "period_start", *keys, *KPI_DEFINITIONS, "previous_active", "retained_customers"]
    return out[cols].reset_index(drop=True)


def _derive(out: pd.DataFrame) -> pd.DataFrame:
    """Ratios and differences from the counted KPIs (returning customers are counted, not derived,
    so new + returning = active is a check)."""
    out["lapsed_customers"] = out["previous_active"] - out["retained_customers"]
    out["aov"] = _ratio(out["revenue"], out["orders"])
    out["purchase_frequency"] = _ratio(out["orders"], out["active_customers"])
    out["retention_rate"] = _ratio(out["retained_customers"], out["previous_active"])
    out["churn_rate"] = 1.0 - out["retention_rate"]
    out["top20_revenue_share"] = _ratio(out["top_revenue"], out["revenue"])
    return out


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    den = den.astype("float64")
    return (num.astype("float64") / den.where(den != 0, np.nan)).astype("float64")


def _as_date(value, granularity: str):
    if isinstance(value, str):
        return periods.parse_period(value, granularity)
    return value


def latest_period(con=None, granularity: str = "month") -> str:
    """The label of the last period with orders in the warehouse."""
    return periods.period_label(star.latest_order_date(con), granularity)


def kpi_dashboard(
    con=None,
    period: str | None = None,
    granularity: str = "month",
    by: str | Sequence[str] | None = None,
    **kwargs,
) -> pd.DataFrame:
    """The KPIs of one period against the previous period, one row per KPI.

    ``period``: a label (``2025-12``, ``2025-Q4``, ``2025``), default the latest period with data.
    Columns: kpi, unit, current, previous, change (current - previous), change_pct (relative
    change), definition. With ``by``, one block of rows per slice (the slice columns come first).
    """
    con = wh.as_connection(con)
    bounds = periods.bounds(period or latest_period(con, granularity), granularity)
    current, previous = bounds.start, periods.parse_period(bounds.previous, granularity)
    table = kpi_table(con, granularity, by=by, start=previous, end=current, **kwargs)
    keys = _as_list(by)
    long = table.melt(id_vars=["period_start", *keys], value_vars=list(KPI_DEFINITIONS), var_name="kpi")
    long["which"] = np.where(long["period_start"] == pd.Timestamp(current), "current", "previous")
    wide = long.pivot_table(index=[*keys, "kpi"], columns="which", values="value", sort=False,
                            dropna=False).reset_index()
    for col in ("current", "previous"):
        if col not in wide:
            wide[col] = np.nan
    wide["change"] = wide["current"] - wide["previous"]
    wide["change_pct"] = _ratio(wide["change"], wide["previous"].abs())
    wide["unit"] = wide["kpi"].map(KPI_UNITS)
    wide["definition"] = wide["kpi"].map(KPI_DEFINITIONS)
    order = {k: i for i, k in enumerate(KPI_DEFINITIONS)}
    wide = wide.sort_values([*keys, "kpi"], key=lambda s: s.map(order) if s.name == "kpi" else s)
    wide.columns.name = None
    wide.attrs["period"] = bounds.label
    wide.attrs["previous_period"] = bounds.previous
    return wide[[*keys, "kpi", "unit", "current", "previous", "change", "change_pct", "definition"]].reset_index(drop=True)


def kpi_series(kpis: pd.DataFrame, kpi: str) -> pd.Series:
    """One KPI as a Series indexed by period label (from :func:`kpi_table` without slices)."""
    return kpis.set_index("period")[kpi]


def customer_revenue(con=None, period: str | None = None, granularity: str = "year") -> pd.DataFrame:
    """Net revenue per identified customer in one period (default: all history), largest first.

    The base of the Pareto curve: columns customer_id, revenue, customer_share (cumulative share of
    customers), revenue_share (cumulative share of revenue).
    """
    lines = star.customer_lines(con)
    if period is not None:
        lines = lines.filter(periods.bounds(period, granularity).contains(lines.order_date))
    cust = lines.group_by("customer_id").aggregate(revenue=lines.line_amount.sum().cast("float64"))
    return ranked_shares(cust.to_pandas(), "revenue")


def ranked_shares(customers: pd.DataFrame, value: str) -> pd.DataFrame:
    """Customers ranked by ``value`` (largest first, ties by id) with cumulative shares.

    Adds customer_share (cumulative share of customers) and ``<value>_share`` (cumulative share
    of ``value``): the Pareto curve of revenue or profit concentration.
    """
    df = customers.sort_values([value, "customer_id"], ascending=[False, True], ignore_index=True)
    df["customer_share"] = np.arange(1, len(df) + 1) / len(df)
    df[f"{value}_share"] = df[value].cumsum() / df[value].sum()
    return df


def top_count(customers: int, top: float = TOP_SHARE) -> int:
    """How many customers the top ``top`` share is: ceil(top x customers), the KPI's rule."""
    return int(np.ceil(customers * top - 1e-9))


def in_top(ranked: pd.DataFrame, top: float = TOP_SHARE) -> pd.Series:
    """True for the customers of a ranked table (largest first) in its top ``top`` share."""
    return pd.Series(np.arange(len(ranked)) < top_count(len(ranked), top), index=ranked.index)


def top_share(ranked: pd.DataFrame, top: float = TOP_SHARE, value: str = "revenue") -> float:
    """Share of ``value`` made by the top ``top`` of customers in a ranked table (largest first).

    The same rule as the ``top20_revenue_share`` KPI: the top ceil(top x customers) count.
    """
    return float(ranked[value][in_top(ranked, top)].sum() / ranked[value].sum())


def concentration(ranked: pd.DataFrame, top: float = TOP_SHARE, value: str = "revenue") -> str:
    """One sentence on how concentrated ``value`` is in a ranked table (:func:`ranked_shares`)."""
    half = (ranked[f"{value}_share"] < 0.5).mean()
    return (f"{len(ranked):,} customers; the top {top:.0%} make {top_share(ranked, top, value):.0%} "
            f"of {value}; {half:.0%} of customers make half of it")


def headline(dashboard: pd.DataFrame, settings: Settings) -> str:
    """The dashboard (:func:`kpi_dashboard`, no slices) in one sentence; every direction is computed.

    Revenue and active customers move by their relative change, retention by its level, the
    average order value by its amount in the ``settings``' currency.
    """
    d = dashboard.set_index("kpi")
    money = settings.money
    parts = [_moved("revenue", d.loc["revenue"], lambda v: money(v, 0), relative=True),
             _moved("active customers", d.loc["active_customers"], "{:,.0f}".format, relative=True),
             _moved("retention", d.loc["retention_rate"], "{:.1%}".format),
             _moved("average order value", d.loc["aov"], money)]
    return f"{dashboard.attrs['period']} against {dashboard.attrs['previous_period']}: " + "; ".join(parts)


def _moved(name: str, row: pd.Series, shown, relative: bool = False) -> str:
    """A KPI's movement in words: "rose 3.1% to ...", "fell from 35.0% to 33.0%", or the value alone."""
    if pd.isna(row["current"]):
        return f"{name} not measured"
    if pd.isna(row["previous"]) or (relative and pd.isna(row["change_pct"])):
        return f"{name} {shown(row['current'])}"
    verb = "rose" if row["change"] > 0 else "fell" if row["change"] < 0 else "held"
    if verb == "held":
        return f"{name} held at {shown(row['current'])}"
    if relative:
        return f"{name} {verb} {abs(row['change_pct']):.1%} to {shown(row['current'])}"
    return f"{name} {verb} from {shown(row['previous'])} to {shown(row['current'])}"
