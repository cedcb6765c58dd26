"""Each KPI against an independent pandas computation on the synthetic star (to the cent)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fixtures_star import optional_fixture, star_tables, star_warehouse  # noqa: F401

from crm_helpers import warehouse as wh
from crm_helpers.information import kpis

FREQ = {"month": "M", "quarter": "Q", "year": "Y"}


def reference_kpis(tables, granularity="month", by=None, attrs=None) -> pd.DataFrame:
    """Plain-pandas KPIs, written from the definitions (not from crm_helpers)."""
    f = tables["fact_order_line"]
    f = f[f["customer_id"].notna()].copy()
    f["customer_id"] = f["customer_id"].astype("int64")
    region = tables["dim_customer"].set_index("customer_id")["region"]
    f["region"] = f["customer_id"].map(region)
    if attrs is not None:
        f = f.merge(attrs, on="customer_id", how="left")
    f["period"] = f["order_date"].dt.to_period(FREQ[granularity])
    keys = [] if by is None else [by]
    buys = f[~f["is_return"]]
    first = buys.groupby("customer_id")["order_date"].min().dt.to_period(FREQ[granularity])
    all_periods = pd.period_range(f["period"].min(), f["period"].max(), freq=FREQ[granularity])
    slices = [()] if not keys else [(v,) for v in sorted(f[by].unique())]
    rows = []
    for p in all_periods:
        for s in slices:
            sel = f["period"] == p
            bsel = buys["period"] == p
            psel = buys["period"] == p - 1
            if keys:
                sel &= f[by] == s[0]
                bsel &= buys[by] == s[0]
                psel &= buys[by] == s[0]
            lines, now = f[sel], buys[bsel]
            active = set(now["customer_id"])
            prev = set(buys.loc[psel, "customer_id"])
            if not len(lines) and not prev:
                continue
            revenue = lines["line_amount"].sum()
            orders = now["order_id"].nunique()
            new = {c for c in active if first[c] == p}
            cust_rev = lines.groupby("customer_id")["line_amount"].sum()
            ranked = sorted(cust_rev.items(), key=lambda kv: (-kv[1], kv[0]))
            n_top = math.ceil(round(0.2 * len(active), 9))
            top = sum(v for _, v in ranked[:n_top])
            row = dict(
                period_start=p.start_time,
                active_customers=len(active),
                new_customers=len(new),
                returning_customers=len(active - new),
                lapsed_customers=len(prev - active),
                revenue=revenue,
                orders=orders,
                aov=revenue / orders if orders else np.nan,
                purchase_frequency=orders / len(active) if active else np.nan,
                retention_rate=len(prev & active) / len(prev) if prev else np.nan,
                churn_rate=len(prev - active) / len(prev) if prev else np.nan,
                top20_revenue_share=top / revenue if revenue else np.nan,
            )
            if keys:
                row[by] = s[0]
            rows.append(row)
    return pd.DataFrame(rows)


def _compare(ours: pd.DataFrame, ref: pd.DataFrame, keys: list[str]) -> None:
    on = ["period_start", *keys]
    m = ours.merge(ref, on=on, how="outer", suffixes=("", "_ref"), indicator=True)
    assert (m["_merge"] == "both").all(), m.loc[m["_merge"] != "both", on + ["_merge"]]
    for kpi in kpis.KPI_DEFINITIONS:
        a, b = m[kpi].to_numpy(float), m[f"{kpi}_ref"].to_numpy(float)
        if kpi in ("revenue", "aov"):
            np.testing.assert_allclose(a, b, atol=0.005, err_msg=kpi)  # to the cent
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=kpi)


@pytest.mark.parametrize("granularity", ["month", "quarter", "year"])
def test_kpis_match_pandas(star_warehouse, star_tables, granularity):
    con = wh.connect(star_warehouse, read_only=True)
    ours = kpis.kpi_table(con, granularity)
    _compare(ours, reference_kpis(star_tables, granularity), [])


@pytest.mark.parametrize("by", ["channel", "region", "category"])
def test_kpis_by_slice_match_pandas(star_warehouse, star_tables, by):
    con = wh.connect(star_warehouse, read_only=True)
    ours = kpis.kpi_table(con, "quarter", by=by)
    if by == "category":
        prod = star_tables["dim_product"].set_index("sku")["category"]
        star_tables = dict(star_tables)
        f = star_tables["fact_order_line"].copy()
        f["category"] = f["sku"].map(prod)
        star_tables["fact_order_line"] = f
    _compare(ours, reference_kpis(star_tables, "quarter", by), [by])


def test_kpis_by_customer_attribute(star_warehouse, star_tables):
    attrs = pd.DataFrame({"customer_id": range(1, 601), "segment": [f"s{i % 3}" for i in range(1, 601)]})
    con = wh.connect(star_warehouse, read_only=True)
    ours = kpis.kpi_table(con, "year", by="segment", customer_attributes=attrs)
    _compare(ours, reference_kpis(star_tables, "year", "segment", attrs), ["segment"])


def test_identities(star_warehouse):
    t = kpis.kpi_table(wh.connect(star_warehouse, read_only=True), "month")
    assert (t["new_customers"] + t["returning_customers"] == t["active_customers"]).all()
    assert (t["previous_active"].iloc[1:].to_numpy() == t["active_customers"].iloc[:-1].to_numpy()).all()
    r = t["retention_rate"].dropna()
    assert np.allclose(r + t.loc[r.index, "churn_rate"], 1.0)
    assert t["new_customers"].sum() == 600  # every customer is new exactly once


def test_dashboard_latest_against_previous(star_warehouse):
    con = wh.connect(star_warehouse, read_only=True)
    d = kpis.kpi_dashboard(con, granularity="month")
    assert d.attrs["period"] == "2025-12" and d.attrs["previous_period"] == "2025-11"
    t = kpis.kpi_table(con, "month").set_index("period")
    row = d.set_index("kpi")
    for kpi in kpis.KPI_DEFINITIONS:
        assert row.loc[kpi, "current"] == pytest.approx(t.loc["2025-12", kpi], nan_ok=True)
        assert row.loc[kpi, "previous"] == pytest.approx(t.loc["2025-11", kpi], nan_ok=True)
    assert row.loc["revenue", "change"] == pytest.approx(t.loc["2025-12", "revenue"] - t.loc["2025-11", "revenue"])
    assert set(d["definition"]) == set(kpis.KPI_DEFINITIONS.values())


def test_dashboard_quarter_and_year(star_warehouse):
    con = wh.connect(star_warehouse, read_only=True)
    q = kpis.kpi_dashboard(con, "2025-Q2", "quarter").set_index("kpi")
    t = kpis.kpi_table(con, "quarter").set_index("period")
    assert q.loc["orders", "current"] == t.loc["2025-Q2", "orders"]
    assert q.loc["orders", "previous"] == t.loc["2025-Q1", "orders"]
    y = kpis.kpi_dashboard(con, "2024", "year").set_index("kpi")
    assert y.loc["revenue", "previous"] == pytest.approx(kpis.kpi_table(con, "year").set_index("period").loc["2023", "revenue"])


def test_where_filter_equals_slice(star_warehouse):
    con = wh.connect(star_warehouse, read_only=True)
    web = kpis.kpi_table(con, "year", where={"channel": "web"}).set_index("period")
    sliced = kpis.kpi_table(con, "year", by="channel").query("channel == 'web'").set_index("period")
    pd.testing.assert_series_equal(web["revenue"], sliced["revenue"])
    pd.testing.assert_series_equal(web["active_customers"], sliced["active_customers"])


def test_customer_revenue_pareto(star_warehouse, star_tables):
    ranked = kpis.customer_revenue(wh.connect(star_warehouse, read_only=True))
    f = star_tables["fact_order_line"].dropna(subset=["customer_id"])
    assert ranked["revenue"].sum() == pytest.approx(f["line_amount"].sum(), abs=0.005)
    assert ranked["revenue_share"].iloc[-1] == pytest.approx(1.0)
    assert ranked["revenue"].is_monotonic_decreasing


def test_kpis_on_small_sample(request):
    """On the real small sample: customer KPIs equal pandas on the warehouse tables."""
    from fixtures_star import load_tables

    path = optional_fixture(request, "small_warehouse")
    ours = kpis.kpi_table(wh.connect(path), "quarter")
    _compare(ours, reference_kpis(load_tables(path), "quarter"), [])


def test_top_share_follows_the_kpi_rule():
    import pandas as pd

    from crm_helpers.information.kpis import top_share

    ranked = pd.DataFrame({"revenue": [50.0, 20.0, 10.0, 10.0, 5.0, 5.0]})  # 6 customers: top 20% = 2
    assert top_share(ranked, 0.2) == pytest.approx(0.7)
    assert top_share(ranked, 1.0) == pytest.approx(1.0)


def test_top_rule_is_one_definition():
    """The notebook's "top 20% by profit" and the KPI's top share count the same customers."""
    ranked = pd.DataFrame({"customer_id": range(11), "revenue": np.arange(11, 0, -1.0)})
    assert kpis.top_count(11) == 3 and kpis.top_count(10) == 2 and kpis.top_count(0) == 0
    assert kpis.in_top(ranked).tolist() == [True] * 3 + [False] * 8
    assert kpis.top_share(ranked) == pytest.approx((11 + 10 + 9) / 66)


def test_new_customers_are_the_first_purchases(star_warehouse):
    """kpis (new customers), rfm (first_purchase) and cohorts (cohort size) share one first purchase."""
    from crm_helpers.information import cohorts, rfm

    con = wh.connect(star_warehouse, read_only=True)
    new = kpis.kpi_table(con, "month").set_index("period")["new_customers"]
    first = rfm.customer_summary(con).to_pandas()["first_purchase"]
    by_month = pd.to_datetime(first).dt.strftime("%Y-%m").value_counts()
    sizes = cohorts.cohort_sizes(cohorts.cohort_table(con))
    assert new[new > 0].to_dict() == by_month.sort_index().to_dict() == sizes.to_dict()


def _dashboard(revenue, active, retention, aov):
    rows = {"revenue": revenue, "active_customers": active, "retention_rate": retention, "aov": aov}
    d = pd.DataFrame([(k, *v) for k, v in rows.items()], columns=["kpi", "current", "previous"])
    d["change"] = d["current"] - d["previous"]
    d["change_pct"] = d["change"] / d["previous"].abs()
    d.attrs.update(period="2025-12", previous_period="2025-11")
    return d


def test_headline_directions_follow_the_numbers():
    from crm_helpers.config import Settings

    up = kpis.headline(_dashboard((1100.0, 1000.0), (90, 100), (0.30, 0.40), (20.0, 20.0)), Settings())
    assert up == ("2025-12 against 2025-11: revenue rose 10.0% to £1,100; active customers fell 10.0% to 90; "
                  "retention fell from 40.0% to 30.0%; average order value held at £20.00")
    euro = Settings(currency="EUR", locale="de_DE")
    down = kpis.headline(_dashboard((900.0, 1000.0), (110, 100), (0.5, 0.4), (18.5, 20.0)), euro)
    assert f"revenue fell 10.0% to {euro.money(900, 0)};" in down and "retention rose from 40.0% to 50.0%" in down
    assert "average order value fell from 20,00\xa0€ to 18,50\xa0€" in down and "£" not in down


def test_concentration_sentence(star_warehouse):
    ranked = kpis.customer_revenue(wh.connect(star_warehouse, read_only=True))
    text = kpis.concentration(ranked)
    assert text.startswith(f"{len(ranked):,} customers; the top 20% make {kpis.top_share(ranked):.0%} of revenue")
