"""Measuring campaigns (wisdom/measure.py) and touch-point changes (wisdom/touchpoints.py),
checked against the sample world's designed truth."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep

from crm_helpers import config
from crm_helpers import truth as tr
from crm_helpers import warehouse as wh
from crm_helpers.sample import world as w
from crm_helpers.wisdom import measure, touchpoints


def designed_effects(truth_dir) -> pd.Series:
    """Each campaign's designed effect: the contacted-weighted mean true individual uplift."""
    effects = tr.read_truth("campaign_effects", truth_dir)
    weighted = (effects.true_uplift * effects.contacted).groupby(effects.campaign_id).sum()
    return weighted / effects.groupby("campaign_id").contacted.sum()


def test_uplift_interval_is_newcombes():
    low, high = measure.uplift_interval(30, 100, 20, 100)
    expected = confint_proportions_2indep(30, 100, 20, 100, method="newcomb", compare="diff")
    assert (low, high) == pytest.approx(expected)
    assert np.isnan(measure.uplift_interval(3, 10, 0, 0)[0])


def test_incremental_totals_scale_the_mean_difference():
    t, c = np.array([0, 10, 20, 30.0]), np.array([0, 0, 10, 10.0])
    total, low, high = measure.incremental(t, c, 100)
    assert total == pytest.approx(1000) and low < total < high


def test_contact_costs_default_to_the_contract():
    assert config.Settings().contact_costs == {"email": 0.05, "sms": 0.12, "call": 4.50}


@pytest.fixture(scope="module")
def results(small_warehouse):
    with wh.reading(small_warehouse) as con:
        return measure.measure(con, measured_on="2026-01-01"), measure.contact_outcomes(con)


def test_results_have_the_contract_columns_and_count_every_contacted_customer(results):
    res, outcomes = results
    assert list(res.columns) == list(measure.COLUMNS)
    whole = measure.whole(res)
    counted = outcomes.groupby("campaign_id").size()
    assert (whole.n_treatment + whole.n_control).equals(counted.reindex(whole.index))
    assert (whole.uplift_low <= whole.uplift).all() and (whole.uplift <= whole.uplift_high).all()
    channels = res[(res.channel != "all") & (res.segment == "all")]
    assert channels.groupby("campaign_id").n_treatment.sum().equals(whole.n_treatment)
    assert (whole.contact_cost > 0).all()


def test_write_results_replaces_a_campaigns_rows(results, small_warehouse, tmp_path):
    res, _ = results
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(small_warehouse, copy)
    measure.write_results(copy, res)
    measure.write_results(copy, res[res.campaign_id == "C01"])
    with wh.reading(copy) as con:
        stored = measure.read_results(con)
    assert len(stored) == len(res)
    assert stored.measured_on.astype(str).eq("2026-01-01").all()


def test_small_world_intervals_mostly_cover_the_designed_effect(results, small_truth_dir):
    whole = measure.whole(results[0])
    designed = designed_effects(small_truth_dir).reindex(whole.index)
    covered = (whole.uplift_low <= designed) & (designed <= whole.uplift_high)
    assert covered.mean() >= 0.75, whole.assign(designed=designed)[["uplift_low", "uplift_high", "designed"]]


def test_did_on_a_designed_rate_change():
    """A hand-made panel: the treated region gains 10 points after the change; DiD finds it."""
    rng = np.random.default_rng(0)
    months = pd.date_range("2024-01-01", periods=12, freq="MS")
    rows = []
    for r, base in zip(["A", "B", "C", "D"], [0.6, 0.7, 0.65, 0.5], strict=True):
        for k, m in enumerate(months):
            p = base + 0.01 * k + (0.10 if r == "A" and m >= months[6] else 0)
            n = 2000
            rows.append({"region": r, "month": m, "interactions": n, "hits": rng.binomial(n, p)})
    rates = pd.DataFrame(rows).assign(rate=lambda d: d.hits / d.interactions)
    result = touchpoints.did(None, "A", months[6], comparison=["B", "C", "D"], rates=rates)
    assert result["low"] < 0.10 < result["high"] and result["p_value"] < 0.001
    assert touchpoints.pre_trend(result)["p_value"] > 0.01
    trends = touchpoints.trend_lines(result)
    assert set(trends.group) == {"A", "Comparison regions"} and len(trends) == 24


@pytest.mark.slow
def test_intervals_cover_the_designed_effect_on_20k(world_20k):
    """Issue 12: measured per-campaign uplift intervals cover the designed effect for >= 7/8."""
    with wh.reading(world_20k / "warehouse.duckdb") as con:
        whole = measure.whole(measure.measure(con))
    designed = designed_effects(world_20k / "truth").reindex(whole.index)
    covered = (whole.uplift_low <= designed) & (designed <= whole.uplift_high)
    assert covered.mean() >= 7 / 8, whole.assign(designed=designed)[["uplift_low", "uplift_high", "designed"]]


@pytest.mark.slow
def test_did_recovers_the_designed_touchpoint_change_on_20k(world_20k):
    design = tr.read_truth("touchpoints", world_20k / "truth").iloc[0]
    assert design.region == w.TOUCHPOINT_REGION
    with wh.reading(world_20k / "warehouse.duckdb") as con:
        result = touchpoints.did(con, design.region, design.start_date, outcome=design.outcome)
    assert result["low"] <= design.designed_effect <= result["high"], result
    assert result["effect"] > 0 and result["p_value"] < 0.1
