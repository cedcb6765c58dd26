"""The numbers of the periodic report: one period's KPIs against its comparisons, and what moved.

Every figure comes from the modules that define it (``kpis`` for KPIs, ``olap`` for the cube,
``rfm`` for segments, ``data.quality``'s bookkeeping tables for the loads): this module chooses
the period, the slice and the comparisons, and puts the results side by side. A *slice* is the
report's optional filters: ``region`` is the store region of the sale (the star schema's
``store_region``; web sales are in the web store's region), ``segment`` the customer's RFM segment
(:data:`crm_helpers.information.rfm.RFM_SEGMENT_GRID`) as of the period's last day. The knowledge
stage has no segments of its own yet; when it has, ``segment`` will mean those.

The request itself (the periods and the slice, checked before any notebook kernel starts) is
:mod:`crm_helpers.information.report_request`'s; its names are available here too.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import numpy as np
import pandas as pd

from crm_helpers import display, periods
from crm_helpers import warehouse as wh
from crm_helpers.information import kpis, olap, rfm
from crm_helpers.information.report_request import (  # noqa: F401 (the request's names, for the notebook and tests)
    ReportRefused,
    Slice,
    check_period,
    check_request,
    check_slice,
    data_range,
    latest_label,
    period_range,
    reporting_period,
    store_regions,
)

#: The KPIs at the top of the report, and in the index of reports.
HEADLINE_KPIS = ["revenue", "active_customers", "new_customers", "orders", "aov", "retention_rate"]
#: KPIs whose movement the commentary may quote (churn mirrors retention, returning mirrors new).
MOVEMENT_KPIS = ["revenue", "active_customers", "new_customers", "lapsed_customers", "orders", "aov",
                 "purchase_frequency", "retention_rate", "top20_revenue_share"]
#: The date that places a staging record in a period, per staging table (the canonical schema's columns).
RECORD_DATES = {"stg_customer": "signup_ts", "stg_order_line": "order_ts", "stg_interaction": "interaction_ts",
                "stg_campaign": "start_date", "stg_campaign_contact": "contact_date",
                "stg_campaign_response": "response_date"}
#: How many periods the trend charts show.
TREND_PERIODS = 12


# --- the numbers -------------------------------------------------------------------------------

def segments_at(con, day) -> pd.DataFrame:
    """Each customer's RFM segment as of ``day`` (``customer_id``, ``segment``): the segment filter."""
    scored = rfm.rfm_scores(rfm.customer_summary(con, observation_period_end=day))
    return scored.select("customer_id", "segment").to_pandas()


def slice_filters(con, bounds: periods.PeriodBounds, where: Slice) -> dict:
    """Keyword arguments of :func:`kpis.kpi_table` for a slice: ``where`` and ``customer_attributes``."""
    args: dict = {}
    if where.region is not None:
        args["where"] = {"store_region": where.region}
    if where.segment is not None:
        args["customer_attributes"] = segments_at(con, bounds.end)
        args["where"] = {**args.get("where", {}), "segment": where.segment}
    return args


def kpi_history(con, bounds: periods.PeriodBounds, where: Slice = Slice(), n: int = TREND_PERIODS) -> pd.DataFrame:
    """:func:`kpis.kpi_table` for the ``n`` periods up to the reporting one, and the year before them.

    Enough history for the trend charts (each of the ``n`` periods with its year-earlier value)
    and both comparisons (and an earlier ``compare_with`` period). Raises :class:`ReportRefused` when
    the reporting period has no purchase in the slice (a one-line reason, not an empty report).
    """
    first = min(periods.shift_period(bounds.start, bounds.granularity, -(n - 1 + periods.periods_per_year(bounds.granularity))),
                periods.parse_period(bounds.previous, bounds.granularity))
    table = kpis.kpi_table(con, bounds.granularity, start=first, end=bounds.start,
                           **slice_filters(con, bounds, where))
    current = table[table["period"] == bounds.label]
    if current.empty or current["active_customers"].iloc[0] == 0:
        raise ReportRefused(f"{bounds.label} ({where.describe()}): no purchase by an identified customer "
                            f"in this period, so there is nothing to report")
    return table


def headline(history: pd.DataFrame, bounds: periods.PeriodBounds) -> pd.DataFrame:
    """Each KPI in the period, the previous period and the same period a year earlier.

    One row per KPI of :data:`kpis.KPI_DEFINITIONS` (index ``kpi``); columns ``current``,
    ``previous``, ``year_earlier`` and the changes ``change_previous``, ``change_year``
    (differences) and ``pct_previous``, ``pct_year`` (relative to the comparison's size). A
    comparison period without data is NaN.
    """
    by_period = history.set_index("period")[list(kpis.KPI_DEFINITIONS)]
    pick = {"current": bounds.label, "previous": bounds.previous, "year_earlier": bounds.year_earlier}
    out = pd.DataFrame({name: by_period.loc[label] if label in by_period.index else np.nan
                        for name, label in pick.items()})
    out.index.name = "kpi"
    for which, short in (("previous", "previous"), ("year_earlier", "year")):
        out[f"change_{short}"] = out["current"] - out[which]
        out[f"pct_{short}"] = out[f"change_{short}"] / out[which].abs().replace(0, np.nan)
    return out


def headline_figures(table: pd.DataFrame, bounds: periods.PeriodBounds, where: Slice, settings) -> dict:
    """The report's headline, as plain JSON values for the executed notebook's metadata.

    ``period``, ``granularity``, ``previous``, ``year_earlier``, ``slice``, the ``settings``'
    ``organisation``, ``currency`` and ``locale``, ``columns`` (the :data:`HEADLINE_KPIS` in order,
    with their names) and ``kpis``: each in the period and both comparisons (None where not measured).
    """
    def plain(value):
        return None if pd.isna(value) else (int(value) if float(value).is_integer() and abs(value) > 1 else float(value))

    return {"period": bounds.label, "granularity": bounds.granularity, "previous": bounds.previous,
            "year_earlier": bounds.year_earlier, "slice": where.describe(),
            "organisation": settings.organisation, "currency": settings.currency, "locale": settings.locale,
            "columns": [[kpi, kpi_name(kpi).capitalize()] for kpi in HEADLINE_KPIS],
            "kpis": {kpi: {col: plain(table.loc[kpi, col]) for col in ("current", "previous", "year_earlier")}
                     for kpi in HEADLINE_KPIS}}


def movements(table: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """The ``n`` largest movements of the period: KPI and comparison with the largest relative change.

    Rates (retention, top-20% share) move by their relative change too, so a rise from 30% to 33%
    counts as +10%. One row per KPI at most (its larger comparison). Columns kpi, comparison
    (``previous`` / ``year_earlier``), current, before, pct.
    """
    rows = []
    for kpi in MOVEMENT_KPIS:
        for which, pct in (("previous", "pct_previous"), ("year_earlier", "pct_year")):
            value = table.loc[kpi, pct]
            if pd.notna(value) and value != 0:
                rows.append({"kpi": kpi, "comparison": which, "current": table.loc[kpi, "current"],
                             "before": table.loc[kpi, which], "pct": value})
    moves = pd.DataFrame(rows, columns=["kpi", "comparison", "current", "before", "pct"])
    moves = moves.assign(size=moves["pct"].abs()).sort_values(["size", "kpi"], ascending=[False, True])
    return moves.drop_duplicates("kpi").head(n).drop(columns="size").reset_index(drop=True)


def customer_flows(history: pd.DataFrame) -> pd.DataFrame:
    """New, returning and lapsed customers per period (index: period label)."""
    return history.set_index("period")[["new_customers", "returning_customers", "lapsed_customers"]]


def top_customers(con, bounds: periods.PeriodBounds, where: Slice = Slice()) -> pd.DataFrame:
    """The period's active customers ranked by net revenue (largest first), by pseudonymous key only.

    Columns customer_id, revenue, customer_share, revenue_share (:func:`kpis.ranked_shares`):
    the base of the concentration figures; a customer with only returns in the period is not
    among them (as in the KPIs). No name or contact detail is read.
    """
    args = slice_filters(con, bounds, where)
    lines = kpis.kpi_lines(con, bounds.granularity, None, args.get("customer_attributes"),
                                   args.get("where"))
    lines = lines.filter(bounds.contains(lines.order_date))
    cust = lines.group_by("customer_id").aggregate(revenue=lines.line_amount.sum().cast("float64"),
                                                   bought=lines.is_purchase.any())
    return kpis.ranked_shares(cust.filter(cust.bought).drop("bought").to_pandas(), "revenue")


def cube_slice(con, bounds: periods.PeriodBounds, where: Slice = Slice(), measure: str = "revenue") -> pd.DataFrame:
    """``measure`` in the period by store region x channel, with totals (:meth:`olap.Cube.pivot`).

    All sales, anonymous ones included (the cube's view); the region filter dices the cube, the
    segment filter keeps the segment's customers' sales only.
    """
    cube = olap.Cube.from_warehouse(con).measures(measure).for_period(bounds)
    if where.region is not None:
        cube = cube.dice(store_region=where.region)
    if where.segment is not None:
        seg = segments_at(con, bounds.end)
        ids = seg.loc[seg["segment"] == where.segment, "customer_id"].tolist()
        cube = cube.dice(customer_id=ids or [-1])
    wide = cube.pivot("store_region", "channel", measure)
    return wide[[c for c in wide.columns if c != olap.TOTAL] + [olap.TOTAL]].rename_axis(index="store region")


def load_quality(con, bounds: periods.PeriodBounds) -> pd.DataFrame:
    """Quarantine rate of the period's loads by source, against the source's usual rate.

    A file belongs to the period when most of its loaded records are dated in it (the date of
    :data:`RECORD_DATES`); files without dated records (catalogues, store lists) belong to none.
    Columns (index ``source``): files, rows_read, rows_quarantined, quarantine_rate (the period's
    files) and usual_rate (all the source's files). Sources without a file in the period are left out.
    """
    con = wh.as_connection(con)
    present = set(con.list_tables())
    parts = []
    for table, column in RECORD_DATES.items():
        if table in present:
            t = con.table(table)
            day = t[column].cast("date")
            parts.append(t.select("source", "file", inside=bounds.contains(day).fill_null(False).cast("int64")))
    if not parts:
        return pd.DataFrame(columns=["files", "rows_read", "rows_quarantined", "quarantine_rate", "usual_rate"])
    records = ibis.union(*parts, distinct=False)
    dated = records.group_by(["source", "file"]).aggregate(share=records.inside.mean())
    audit = con.table("load_audit")
    audit = audit.filter(audit.rows_read.notnull())
    usual = audit.group_by("source").aggregate(usual_rate=(audit.rows_quarantined.sum() / audit.rows_read.sum()))
    mine = audit.join(dated.filter(dated.share > 0.5), ["source", "file"])
    period = mine.group_by("source").aggregate(files=mine.file.nunique(), rows_read=mine.rows_read.sum(),
                                               rows_quarantined=mine.rows_quarantined.sum())
    out = period.join(usual, "source").order_by("source").to_pandas().set_index("source")
    out.insert(3, "quarantine_rate", out["rows_quarantined"] / out["rows_read"].where(out["rows_read"] > 0))
    return out.astype({"files": "int64", "rows_read": "int64", "rows_quarantined": "int64"})


# --- one call for the notebook --------------------------------------------------------------

@dataclass
class PeriodReport:
    """Every table of one period's report (see the functions that make each)."""

    bounds: periods.PeriodBounds
    where: Slice
    history: pd.DataFrame   # kpi_history
    table: pd.DataFrame     # headline
    moves: pd.DataFrame     # movements
    ranked: pd.DataFrame    # top_customers
    cube: pd.DataFrame      # cube_slice
    quality: pd.DataFrame   # load_quality


def compute(warehouse, bounds: periods.PeriodBounds, where: Slice = Slice()) -> PeriodReport:
    """All of one period's numbers, read in one short read-only visit to the warehouse.

    The report does not hold the warehouse while it draws, so ``crm collect`` is not kept waiting.
    """
    with wh.reading(warehouse) as con:
        history = kpi_history(con, bounds, where)
        table = headline(history, bounds)
        return PeriodReport(bounds, where, history, table, movements(table), top_customers(con, bounds, where),
                            cube_slice(con, bounds, where), load_quality(con, bounds))


# --- words ------------------------------------------------------------------------------------

#: Each KPI's display unit (:mod:`crm_helpers.display`): count, money, rate or number.
DISPLAY_UNITS = {kpi: display.unit_of(unit) for kpi, unit in kpis.KPI_UNITS.items()}
#: How a KPI is named in a sentence.
KPI_NAMES = {"aov": "average order value", "top20_revenue_share": "revenue share of the top 20% of customers"}


def kpi_name(kpi: str) -> str:
    """A KPI's name in words: ``retention_rate`` -> ``retention rate``."""
    return KPI_NAMES.get(kpi, kpi.replace("_", " "))


def fmt(value, kpi: str) -> str:
    """A KPI value for a sentence, in its unit (:func:`crm_helpers.display.fmt`)."""
    return display.fmt(value, DISPLAY_UNITS.get(kpi, display.NUMBER))


def comparison_name(bounds: periods.PeriodBounds, which: str) -> str:
    """``2025-10 (previous period)`` or ``2024-11 (a year earlier)``."""
    return f"{bounds.previous} (previous period)" if which == "previous" else f"{bounds.year_earlier} (a year earlier)"


def headline_view(table: pd.DataFrame, bounds: periods.PeriodBounds) -> pd.DataFrame:
    """The headline KPIs for reading: the value in the period and its change against each comparison,
    in words (:func:`crm_helpers.display.change`; rates move in percentage points)."""
    def change(kpi, which):
        return display.change(table.loc[kpi, "current"], table.loc[kpi, which], DISPLAY_UNITS[kpi])

    rows = {kpi_name(k).capitalize(): {
        bounds.label: fmt(table.loc[k, "current"], k),
        f"against {comparison_name(bounds, 'previous')}": change(k, "previous"),
        f"against {comparison_name(bounds, 'year_earlier')}": change(k, "year_earlier"),
    } for k in HEADLINE_KPIS + ["lapsed_customers", "top20_revenue_share"]}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("KPI")


def commentary(moves: pd.DataFrame, bounds: periods.PeriodBounds) -> list[str]:
    """The largest movements (:func:`movements`) as sentences, each with its numbers."""
    return [f"{kpi_name(m.kpi).capitalize()} {'rose' if m.pct > 0 else 'fell'} {display.fmt(abs(m.pct), display.RATE)} "
            f"against {comparison_name(bounds, m.comparison)}, from {fmt(m.before, m.kpi)} to "
            f"{fmt(m.current, m.kpi)}." for m in moves.itertuples()]


def concentration_words(table: pd.DataFrame, bounds: periods.PeriodBounds) -> str:
    """One sentence on the period's revenue concentration, from the KPIs (:func:`headline`), so it
    quotes the same top-20% share as the headline table."""
    active = table.loc["active_customers", "current"]
    return (f"In {bounds.label}, {display.fmt(active, display.COUNT)} customers bought; the top "
            f"{display.fmt(kpis.top_count(int(active)), display.COUNT)} of them "
            f"({display.fmt(kpis.TOP_SHARE, display.RATE, 0)}) made "
            f"{display.fmt(table.loc['top20_revenue_share', 'current'], display.RATE)} of the period's net revenue "
            f"({display.fmt(table.loc['revenue', 'current'], display.MONEY)}).")


def quality_words(quality: pd.DataFrame) -> str:
    """One sentence on the period's loads: which sources quarantined more than usual, if any."""
    if quality.empty:
        return "No file of this period was loaded, so there is no load to check."
    worse = quality[quality["quarantine_rate"] > quality["usual_rate"]]
    if worse.empty:
        return (f"{display.fmt(quality['files'].sum(), display.COUNT)} files of this period from {len(quality)} sources; no source "
                "quarantined more than its usual rate.")
    listed = "; ".join(f"{s}: {display.fmt(r.quarantine_rate, display.RATE, 2)} against "
                       f"{display.fmt(r.usual_rate, display.RATE, 2)} usually" for s, r in worse.iterrows())
    return f"Sources quarantining more of this period's rows than usual: {listed}."
