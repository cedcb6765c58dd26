"""RFM summary: equal to pymc-marketing's rfm_summary on CDNOW, and to pandas on the star schema."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_star import optional_fixture, star_tables, star_warehouse  # noqa: F401
from pymc_marketing.clv.utils import rfm_summary as pymc_rfm_summary

from crm_helpers import warehouse as wh
from crm_helpers.information import cdnow, rfm


@pytest.fixture(scope="module")
def cdnow_master():
    return cdnow.read_cdnow("master")


@pytest.fixture(scope="module")
def cdnow_master_table():
    return cdnow.cdnow_table("master")


CASES = [
    dict(time_unit="D"),
    dict(time_unit="W"),
    dict(time_unit="D", time_scaler=7),
    dict(time_unit="D", time_scaler=7, observation_period_end=cdnow.CALIBRATION_END),
    dict(time_unit="W", observation_period_end="1997-09-30"),
    dict(time_unit="D", include_first_transaction=True),
    dict(time_unit="D", observation_period_end="1998-01-15", include_first_transaction=True),
]


@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: "-".join(f"{v}" for v in k.values()))
def test_cdnow_equals_pymc_marketing(cdnow_master, cdnow_master_table, kwargs):
    ours = rfm.rfm_summary(cdnow_master_table, "customer_id", "date", "dollar_value", **kwargs).to_pandas()
    ref = pymc_rfm_summary(cdnow_master, "customer_id", "date", "dollar_value", **kwargs)
    assert list(ours.columns) == list(ref.columns)
    assert len(ours) == len(ref) == 23_570 if "observation_period_end" not in kwargs else len(ours) == len(ref)
    pd.testing.assert_frame_equal(ours, ref, check_dtype=False, rtol=1e-9, atol=1e-9)


def test_cdnow_without_monetary(cdnow_master, cdnow_master_table):
    ours = rfm.rfm_summary(cdnow_master_table, "customer_id", "date").to_pandas()
    ref = pymc_rfm_summary(cdnow_master, "customer_id", "date")
    pd.testing.assert_frame_equal(ours, ref, check_dtype=False)


def test_cdnow_sample_published_calibration_figures():
    """Fader, Hardie & Lee (2005): 946 of 2,357 customers repeat, 2,457 repeat purchases by week 39."""
    s = cdnow.cdnow_table("sample")
    summary = rfm.rfm_summary(
        s, "customer_id", "date", "dollar_value", cdnow.CALIBRATION_END, time_unit="D", time_scaler=7
    ).to_pandas()
    assert len(summary) == 2_357
    assert (summary["frequency"] > 0).sum() == 946
    assert summary["frequency"].sum() == 2_457
    assert summary["T"].max() == pytest.approx(272 / 7)  # 1997-01-01 .. 1997-09-30: 272 days = 38.86 weeks


# --- warehouse -------------------------------------------------------------------------------------


def reference_summary(tables, end) -> pd.DataFrame:
    """The per-customer summary in plain pandas, from the written definitions."""
    f = tables["fact_order_line"]
    f = f[f["customer_id"].notna() & (f["order_date"] <= pd.Timestamp(end))].copy()
    f["customer_id"] = f["customer_id"].astype("int64")
    buys = f[~f["is_return"]]
    days = buys.groupby(["customer_id", "order_date"])["line_amount"].sum().reset_index()
    rows = []
    for cid, d in days.groupby("customer_id"):
        d = d.sort_values("order_date")
        first, last = d["order_date"].iloc[0], d["order_date"].iloc[-1]
        lines = f[f["customer_id"] == cid]
        rows.append(
            dict(
                customer_id=cid,
                frequency=len(d) - 1,
                recency=(last - first).days,
                T=(pd.Timestamp(end) - first).days,
                monetary_value=d["line_amount"].iloc[1:].mean() if len(d) > 1 else 0.0,
                first_purchase=first,
                last_purchase=last,
                purchase_days=len(d),
                recency_days=(pd.Timestamp(end) - last).days,
                orders=buys.loc[buys["customer_id"] == cid, "order_id"].nunique(),
                gross_sales=lines.loc[~lines["is_return"], "line_amount"].sum(),
                returns=-lines.loc[lines["is_return"], "line_amount"].sum(),
                total_spend=lines["line_amount"].sum(),
                cost_of_goods=lines["cost_amount"].sum(),
                margin=lines["line_amount"].sum() - lines["cost_amount"].sum(),
            )
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("end", ["2025-12-31", "2024-06-30"])
def test_customer_summary_matches_pandas(star_warehouse, star_tables, end):
    ours = rfm.customer_summary(wh.connect(star_warehouse, read_only=True), observation_period_end=end).to_pandas()
    ref = reference_summary(star_tables, end)
    assert list(ours["customer_id"]) == list(ref["customer_id"])  # to the customer
    for col in ["frequency", "recency", "T", "purchase_days", "recency_days", "orders"]:
        np.testing.assert_array_equal(ours[col].to_numpy(float), ref[col].to_numpy(float), err_msg=col)
    for col in ["monetary_value", "gross_sales", "returns", "total_spend", "cost_of_goods", "margin"]:
        np.testing.assert_allclose(ours[col], ref[col], atol=0.005, err_msg=col)  # to the cent
    for col in ["first_purchase", "last_purchase"]:
        assert (pd.to_datetime(ours[col]) == ref[col]).all()


def test_customer_summary_equals_pymc_on_purchase_lines(star_warehouse, star_tables):
    f = star_tables["fact_order_line"]
    buys = f[f["customer_id"].notna() & ~f["is_return"]].astype({"customer_id": "int64"})
    ref = pymc_rfm_summary(buys, "customer_id", "order_date", "line_amount", observation_period_end="2025-12-31")
    ours = rfm.customer_summary(wh.connect(star_warehouse, read_only=True), "2025-12-31").to_pandas()[rfm.SUMMARY_COLUMNS]
    pd.testing.assert_frame_equal(ours, ref, check_dtype=False, atol=1e-6)


def test_return_only_day_is_not_a_purchase_day(star_warehouse, star_tables):
    """Customer 2's return on 2025-11-03 (no purchase that day) changes spend, not frequency."""
    ours = rfm.customer_summary(wh.connect(star_warehouse, read_only=True)).to_pandas().set_index("customer_id")
    f = star_tables["fact_order_line"]
    c2 = f[f["customer_id"] == 2]
    buy_days = c2.loc[~c2["is_return"], "order_date"].nunique()
    assert pd.Timestamp("2025-11-03") not in set(c2.loc[~c2["is_return"], "order_date"])
    assert ours.loc[2, "purchase_days"] == buy_days
    assert ours.loc[2, "total_spend"] == pytest.approx(c2["line_amount"].sum(), abs=0.005)


def test_rfm_scores_are_quintiles(star_warehouse):
    scored = rfm.rfm_scores(rfm.customer_summary(wh.connect(star_warehouse, read_only=True))).to_pandas()
    n = len(scored)
    for score, col, asc in [("r_score", "recency_days", False), ("f_score", "purchase_days", True),
                            ("m_score", "total_spend", True)]:
        values = scored[col] if asc else -scored[col]
        pr = (values.rank(method="min") - 1) / (n - 1)
        expected = np.minimum(np.floor(pr * 5).astype(int) + 1, 5)
        assert (scored[score] == expected).all(), score
        assert scored[score].between(1, 5).all()
    # recency_days has few ties: each quintile holds about a fifth of the customers
    assert scored["r_score"].value_counts().between(0.15 * n, 0.25 * n).all()
    assert (scored["rfm_score"] == scored[["r_score", "f_score", "m_score"]].astype(str).agg("".join, axis=1)).all()


def test_segments_cover_the_grid(star_warehouse):
    grid = rfm.segment_grid()
    assert len(grid) == 25 and not grid.duplicated(["r_score", "f_score"]).any()
    scored = rfm.rfm_scores(rfm.customer_summary(wh.connect(star_warehouse, read_only=True))).to_pandas()
    assert scored["segment"].notna().all()
    champions = scored[scored["segment"] == "Champions"]
    assert (champions["r_score"] == 5).all() and (champions["f_score"] >= 4).all()
    profile = rfm.segment_profile(scored)
    assert profile["customers"].sum() == len(scored)
    assert profile["margin_share"].sum() == pytest.approx(1.0)


def test_profitability_matches_pandas(star_warehouse, star_tables):
    prof = rfm.profitability(wh.connect(star_warehouse, read_only=True)).set_index("customer_id")
    f = star_tables["fact_order_line"].dropna(subset=["customer_id"])
    g = f.groupby(f["customer_id"].astype("int64"))
    ref = g["line_amount"].sum() - g["cost_amount"].sum()
    assert set(prof.index) == set(ref.index)
    np.testing.assert_allclose(prof.loc[ref.index, "profit"], ref, atol=0.005)
    gross = f[~f["is_return"]].groupby(f["customer_id"].astype("int64"))["line_amount"].sum()
    np.testing.assert_allclose(
        prof.loc[ref.index, "gross_sales"] - prof.loc[ref.index, "returns"] - prof.loc[ref.index, "cost_of_goods"],
        prof.loc[ref.index, "profit"], atol=0.005,
    )
    np.testing.assert_allclose(prof.loc[gross.index, "gross_sales"], gross, atol=0.005)
    assert prof["profit_rank"].is_monotonic_increasing and prof["profit"].is_monotonic_decreasing
    assert prof["profit_share"].iloc[-1] == pytest.approx(1.0)


def test_customer_traits(star_warehouse):
    traits = rfm.customer_traits(wh.connect(star_warehouse, read_only=True))
    assert traits["customer_id"].is_unique and len(traits) == 600
    assert traits["web_share"].between(0, 1).all()
    assert set(traits["main_channel"]) <= {"store", "web"}


def test_summary_on_small_sample(request):
    """On the real small sample: the warehouse summary equals pymc-marketing on the purchase lines."""
    from fixtures_star import load_tables

    path = optional_fixture(request, "small_warehouse")
    f = load_tables(path)["fact_order_line"]
    buys = f[f["customer_id"].notna() & ~f["is_return"]].astype({"customer_id": "int64"})
    end = buys["order_date"].max()
    ref = pymc_rfm_summary(buys, "customer_id", "order_date", "line_amount", observation_period_end=end)
    ours = rfm.customer_summary(wh.connect(path), end).to_pandas()[rfm.SUMMARY_COLUMNS]
    pd.testing.assert_frame_equal(ours, ref, check_dtype=False, atol=1e-6)


def test_losses_sentence_in_the_settings_currency():
    from crm_helpers import plots
    from crm_helpers.config import Settings

    profit = pd.DataFrame({"customer_id": [1, 2, 3], "profit": [120.0, -15.5, -4.5]})
    before = plots.current_settings()
    try:
        plots.set_currency(Settings())
        assert rfm.losses(profit) == "2 customers (66.7%) lost money, together £20.00 against £100.00 of total profit."
        plots.set_currency(Settings(currency="EUR", locale="fr_FR"))
        euro = rfm.losses(profit.assign(profit=[10.0, 5.0, 1.0]))
        assert euro == "No customer lost money; total profit 16,00\xa0€, so there is no whale curve."
    finally:
        plots.set_currency(before)


def test_losses_sentence_says_whether_the_curve_is_a_whale_curve():
    whale = pd.DataFrame({"profit": [80.0, 40.0, -20.0], "customer_share": [1 / 3, 2 / 3, 1.0],
                          "profit_share": [0.8, 1.2, 1.0]})
    said = rfm.losses(whale)
    assert "the curve peaks at **120.0% of profit** at 67% of the customers" in said and "give back 20.0%" in said
    flat = whale.assign(profit=[80.0, 20.0, -0.01], profit_share=[0.8, 1.0001, 1.0])
    assert "no whale curve" in rfm.losses(flat) and "its peak is 100.0%" in rfm.losses(flat)


def test_margin_leaders_sentence():
    profile = pd.DataFrame({"margin_share": [0.5, 0.3, 0.2], "customer_share": [0.1, 0.2, 0.7]},
                           index=["Champions", "Loyal customers", "Hibernating"])
    assert rfm.margin_leaders(profile) == "Champions and Loyal customers carry 80% of the margin with 30% of the customers"


def test_profitability_as_of_a_date(star_warehouse, star_tables):
    """Only the lines up to the end of observation count (star.customer_lines(con, end))."""
    end = pd.Timestamp("2024-06-30")
    profit = rfm.profitability(wh.connect(star_warehouse, read_only=True), observation_period_end=end)
    f = star_tables["fact_order_line"].dropna(subset=["customer_id"])
    f = f[f["order_date"] <= end]
    assert profit["revenue"].sum() == pytest.approx(f["line_amount"].sum(), abs=0.005)
    assert profit["profit"].sum() == pytest.approx((f["line_amount"] - f["cost_amount"]).sum(), abs=0.005)


def test_web_share_follows_the_declared_web_channel(star_warehouse):
    con = wh.connect(star_warehouse, read_only=True)
    web = rfm.customer_traits(con).set_index("customer_id")["web_share"]
    none = rfm.customer_traits(con, web_channel="online").set_index("customer_id")["web_share"]
    assert web.max() > 0 and (none == 0).all()
