"""Changes at touch points, measured by difference in differences.

A change made in one region from a date (a new call-centre script, a new returns desk) is
measured by comparing how a rate moved there with how it moved in the other regions over the
same months. The monthly rate per region is computed in the engine (interactions joined to the
customer's home region); the small region x month table comes to pandas for the regression:

    rate[r, m] = region effect[r] + month effect[m] + effect x (treated[r] x after[m]) + error

(two-way fixed effects, each cell weighted by its interactions; ordinary least squares in
statsmodels). ``effect`` is the change's effect on the rate, in points. Standard errors are
heteroscedasticity-robust (HC1) by default; ``cov="cluster"`` clusters by region, which needs
many more regions than a retailer usually has to be trusted.

The assumptions, in words: without the change the treated region's rate would have moved like
the comparison regions' (parallel trends: :func:`pre_trend` tests it on the months before);
nothing else changed in that region at that date; customers did not move between regions
because of it; and the change did not reach the comparison regions.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

UNKNOWN = "(unknown)"


def comparison_regions(con, region: str) -> list[str]:
    """Regions that have stores (``dim_channel`` rows of the settings' store channel), other than ``region``: the default
    comparison group (customers without a store region, such as online-only ones, are left out:
    where they live is unknown)."""
    from crm_helpers import warehouse as wh

    channels = con.table("dim_channel")
    stores = channels.filter(channels.channel == wh.settings(con).store_channel) \
        .select("region").distinct().to_pandas()["region"].dropna()
    return sorted(r for r in stores if r != region and r != UNKNOWN)


def monthly_rates(con, outcome: str, column: str = "outcome", table: str = "fact_interaction",
                  date_column: str = "interaction_date", regions=None) -> pd.DataFrame:
    """Share of interactions whose ``column`` equals ``outcome``, per customer home region and
    month (engine aggregate): region, month (first day), interactions, hits, rate."""
    facts = con.table(table)
    customers = con.table("dim_customer").select("customer_id", "region")
    j = facts.join(customers, "customer_id")
    if regions is not None:
        j = j.filter(j.region.isin(list(regions)))
    j = j.mutate(month=j[date_column].truncate("M"))
    out = j.group_by(["region", "month"]).aggregate(
        interactions=j.count(), hits=(j[column] == outcome).cast("int64").sum()).to_pandas()
    out["month"] = pd.to_datetime(out["month"])
    out["rate"] = out.hits / out.interactions
    return out.sort_values(["region", "month"], ignore_index=True)


def _frame(rates: pd.DataFrame, region: str, change_date) -> pd.DataFrame:
    change = pd.Timestamp(change_date)
    return rates.assign(treated=(rates.region == region).astype(int),
                        after=(rates.month >= change).astype(int)).assign(
        treated_after=lambda d: d.treated * d.after)


def did(con, region: str, change_date, outcome: str = "resolved", column: str = "outcome",
        table: str = "fact_interaction", date_column: str = "interaction_date", comparison=None,
        cov: str = "HC1", alpha: float = 0.05, rates: pd.DataFrame | None = None) -> dict:
    """Difference in differences of a rate around a change in one region.

    region: where the change happened; change_date: its first day (months from that one are
    "after"; use the first of a month); outcome / column / table / date_column: the rate is the
    share of ``table`` rows whose ``column`` equals ``outcome``, by month of ``date_column`` and
    customer home region; comparison: regions compared with (default
    :func:`comparison_regions`); cov: "HC1" or "cluster" (by region); rates: a precomputed
    :func:`monthly_rates` table. Returns effect, low, high, p_value, the raw
    difference of means (before/after x treated/comparison), the fitted model and the rates used.
    """
    comparison = list(comparison or comparison_regions(con, region))
    if rates is None:
        rates = monthly_rates(con, outcome, column, table, date_column, [region, *comparison])
    data = _frame(rates[rates.region.isin([region, *comparison])], region, change_date)
    if data.treated.sum() == 0 or data.after.sum() == 0 or (data.after == 0).sum() == 0:
        raise ValueError(f"no months of {region!r} on both sides of {change_date}")
    model = smf.wls("rate ~ treated_after + C(region) + C(month)", data=data, weights=data.interactions)
    kwargs = {"groups": pd.factorize(data.region)[0]} if cov == "cluster" else {}
    fit = model.fit(cov_type="cluster" if cov == "cluster" else cov, cov_kwds=kwargs or None)
    low, high = fit.conf_int(alpha).loc["treated_after"]
    means = data.groupby(["treated", "after"]).apply(lambda g: g.hits.sum() / g.interactions.sum(),
                                                     include_groups=False)
    return {"region": region, "change_date": pd.Timestamp(change_date).date(), "outcome": outcome,
            "effect": float(fit.params["treated_after"]), "low": float(low), "high": float(high),
            "p_value": float(fit.pvalues["treated_after"]),
            "before_treated": means.get((1, 0), np.nan), "after_treated": means.get((1, 1), np.nan),
            "before_comparison": means.get((0, 0), np.nan), "after_comparison": means.get((0, 1), np.nan),
            "comparison": comparison, "months_before": int(data.loc[data.after == 0, "month"].nunique()),
            "months_after": int(data.loc[data.after == 1, "month"].nunique()), "fit": fit, "rates": data}


def pre_trend(result: dict) -> dict:
    """Parallel trends before the change: does the treated region's rate drift away from the
    comparison's in the months before? Fits rate ~ region + month + treated x months-since-start
    on the "before" months; returns the slope difference per month, its interval and p-value."""
    data = result["rates"]
    before = data[data.after == 0].copy()
    before["t"] = (before.month.dt.year * 12 + before.month.dt.month)
    before["t"] -= before.t.min()
    before["treated_t"] = before.treated * before.t
    fit = smf.wls("rate ~ treated_t + C(region) + C(month)", data=before, weights=before.interactions).fit(cov_type="HC1")
    low, high = fit.conf_int().loc["treated_t"]
    return {"slope": float(fit.params["treated_t"]), "low": float(low), "high": float(high),
            "p_value": float(fit.pvalues["treated_t"])}


def trend_lines(result: dict) -> pd.DataFrame:
    """Monthly rate of the treated region and of the comparison regions pooled (weighted by
    interactions), for the parallel-trends chart: month, group, rate, after."""
    data = result["rates"]
    data = data.assign(group=np.where(data.treated == 1, result["region"], "Comparison regions"))
    out = data.groupby(["month", "group"]).agg(hits=("hits", "sum"), interactions=("interactions", "sum")).reset_index()
    out["rate"] = out.hits / out.interactions
    out["after"] = out.month >= pd.Timestamp(result["change_date"])
    return out


def first_of_month(d) -> date:
    """The first day of ``d``'s month (a change is measured from whole months)."""
    t = pd.Timestamp(d)
    return date(t.year, t.month, 1)


def trend_chart(result: dict, ax=None):
    """The parallel-trends chart: the treated region's monthly rate and the comparison regions'
    pooled rate, with the change's month marked."""
    import matplotlib.pyplot as plt

    from crm_helpers import plots

    lines = trend_lines(result)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    for name, g in lines.groupby("group", sort=False):
        ax.plot(g.month, g.rate, marker="o", ms=3, label=name)
    ax.axvline(pd.Timestamp(result["change_date"]), color="0.4", ls="--", lw=1, label="change")
    direction = "rose" if result["effect"] > 0 else "fell"
    title = (f"{result['region']}'s share of {result['outcome']} interactions {direction} by "
             f"{abs(result['effect']) * 100:.1f} points against the other regions after the change")
    import matplotlib.dates as mdates

    ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 7)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))
    return plots.finish(ax, title, x="Month", y=f"Share {result['outcome']}", yunit="rate")
