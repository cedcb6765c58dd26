"""Forecasts (crm_helpers.knowledge.forecast): the monthly series, the calendar's Easter regressor,
the methods and the rolling-origin backtest.

The small world checks the mechanics and loose targets; the default 20k world (`slow`) checks
the targets: best method's one-month-ahead MAPE at most 0.10 and at most half of seasonal
naive's for each series, and 80% intervals covering 70-90% of the backtest points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_helpers import truth as tr
from crm_helpers import warehouse as wh
from crm_helpers.information import kpis
from crm_helpers.knowledge import forecast as fc


@pytest.fixture(scope="module")
def small_series(small_warehouse) -> pd.DataFrame:
    with wh.reading(small_warehouse) as con:
        return fc.monthly_series(con)


def test_monthly_series_is_complete_and_matches_the_kpis(small_warehouse, small_series):
    with wh.reading(small_warehouse) as con:
        table = kpis.kpi_table(con, "month").set_index("period_start")
    assert fc.missing_months(small_series) == [] and len(small_series) == 36
    assert np.allclose(small_series["revenue"], table.loc[small_series.index, "revenue"])
    assert (small_series["new_customers"] <= table.loc[small_series.index, "new_customers"]).all()
    assert (small_series["new_customers"] > 0).all()


def test_easter_regressor_matches_the_designed_calendar(small_truth_dir):
    """Truth: the months the regressor gives Easter are those of the world's Easter days."""
    cal = tr.read_truth("calendar", small_truth_dir)
    easter = cal[cal["kind"] == "holiday"]
    months = pd.date_range("2023-01-01", "2025-12-01", freq="MS")
    reg = fc.holiday_regressors(months)["easter"]
    for row in easter.itertuples():
        days = pd.date_range(row.first_day, row.last_day)
        for month, n in pd.Series(days.to_period("M")).value_counts().items():
            assert reg[month.to_timestamp()] == pytest.approx(n / len(days))
    assert reg.sum() == pytest.approx(len(easter))


def test_easter_shares_split_across_months():
    reg = fc.holiday_regressors(pd.date_range("2024-03-01", "2024-04-01", freq="MS"))["easter"]
    assert reg.tolist() == pytest.approx([0.8, 0.2])  # Maundy Thursday 28 March to Easter Monday 1 April


def test_missing_months_are_named():
    s = pd.DataFrame({"revenue": [1.0, 2.0, 3.0]}, index=pd.to_datetime(["2024-01-01", "2024-02-01", "2024-04-01"]))
    assert fc.missing_months(s) == ["2024-03"]


def test_seasonal_naive_repeats_last_year():
    idx = pd.date_range("2022-01-01", periods=24, freq="MS")
    y = pd.Series(np.arange(1, 25, dtype=float) * 10, index=idx)
    out = fc.seasonal_naive(y, 14)
    assert out["forecast"].tolist() == pytest.approx(y.iloc[12:].tolist() + y.iloc[12:14].tolist())
    assert (out["lower"] <= out["forecast"]).all() and (out["forecast"] <= out["upper"]).all()
    assert out.index[0] == pd.Timestamp("2024-01-01")


def test_models_recover_a_clean_seasonal_trend():
    """On a noiseless growing seasonal series, both models forecast within 2%."""
    idx = pd.date_range("2021-01-01", periods=36, freq="MS")
    season = 1 + 0.2 * np.sin(2 * np.pi * np.arange(36) / 12)
    y = pd.Series(1000 * 1.01 ** np.arange(36) * season, index=idx)
    for method in (fc.holt_winters, fc.sarimax):
        out = method(y.iloc[:30], 6)
        assert np.allclose(out["forecast"], y.iloc[30:], rtol=0.02), method.__name__


def test_backtest_shape_and_accuracy(small_series):
    results = fc.backtest(small_series, origins=3, horizon=2, progress=False)
    assert len(results) == 3 * 3 * 3 * 2
    assert results.groupby(["series", "method", "origin"]).size().eq(2).all()
    assert (results["month"] >= results["origin"]).all()
    first = results[results["step"] == 1]
    assert (first["month"] == first["origin"]).all()
    acc = fc.accuracy(results)
    assert acc.xs(fc.BENCHMARK, level="method")["mape_vs_benchmark"].eq(1).all()
    assert set(fc.best_methods(acc)) <= set(fc.METHODS) - {fc.BENCHMARK}


def test_small_world_forecasts_beat_seasonal_naive(small_series):
    """Small world, loose: revenue and active customers beat seasonal naive one month ahead."""
    acc = fc.accuracy(fc.backtest(small_series, progress=False))
    best = fc.best_methods(acc)
    for series in ("revenue", "active_customers"):
        assert acc.loc[(series, best[series]), "mape_vs_benchmark"] < 0.8


def test_forecast_runs_past_the_end(small_series):
    future = fc.forecast(small_series, dict.fromkeys(small_series.columns, "Holt-Winters"), horizon=12)
    assert len(future) == 36 and future["month"].min() == small_series.index[-1] + pd.offsets.MonthBegin(1)
    assert (future["lower"] <= future["upper"]).all()


@pytest.mark.slow
def test_backtest_targets_on_the_default_world(world_20k):
    """20k world (measured: revenue 0.085 by SARIMAX + Easter, 0.41 of seasonal naive's; active
    customers 0.040, 0.20; new customers 0.071, 0.29; pooled coverage 0.78)."""
    with wh.reading(world_20k / "warehouse.duckdb") as con:
        series = fc.monthly_series(con)
    assert len(series) == 36
    results = fc.backtest(series, progress=False)
    acc = fc.accuracy(results)
    best = fc.best_methods(acc)
    print(acc)
    for series_name, method in best.items():
        row = acc.loc[(series_name, method)]
        assert row["mape"] <= 0.10 and row["mape_vs_benchmark"] <= 0.5, (series_name, method, row)
    chosen = results.merge(best.rename("method").reset_index())
    assert 0.70 <= chosen["covered"].mean() <= 0.90, chosen["covered"].mean()


def test_revenue_outlook_forecasts_the_year_from_the_months_before_it(small_warehouse):
    """The periodic report's forecast: fitted on the months before January, the year's twelve
    months, actuals up to the period only; none without two years before."""
    with wh.reading(small_warehouse) as con:
        history, outlook = fc.revenue_outlook(con, "2025-05-31")
        _, too_early = fc.revenue_outlook(con, "2024-05-31")
    assert too_early is None
    assert outlook["month"].tolist() == list(pd.date_range("2025-01-01", periods=12, freq="MS"))
    assert outlook["actual"].notna().sum() == 5 and history.index.max() == pd.Timestamp("2025-05-01")
    assert np.allclose(outlook["actual"].dropna(), history.loc["2025-01-01":"2025-05-01"])
    assert (outlook["lower"] <= outlook["forecast"]).all() and (outlook["forecast"] <= outlook["upper"]).all()
    words = fc.outlook_words(outlook, lambda v: f"£{v:,.0f}")
    assert words.startswith("2025 so far (5 months)") and "remaining 7 months" in words
    assert fc.outlook_words(None, str).startswith("No forecast")
