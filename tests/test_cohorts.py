"""Cohort matrices: equal to pandas, and close to the sample world's true retention."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fixtures_star import optional_fixture, star_tables, star_warehouse, true_retention  # noqa: F401

from crm_helpers import warehouse as wh
from crm_helpers.information import cohorts


def reference_cohorts(tables) -> pd.DataFrame:
    f = tables["fact_order_line"]
    f = f[f["customer_id"].notna()].copy()
    f["month"] = f["order_date"].dt.to_period("M")
    cohort = f[~f["is_return"]].groupby("customer_id")["month"].min().rename("cohort")
    f = f.join(cohort, on="customer_id")
    f["months_since"] = (f["month"] - f["cohort"]).apply(lambda d: d.n)
    size = cohort.value_counts().rename("cohort_size")
    active = f[~f["is_return"]].groupby(["cohort", "months_since"])["customer_id"].nunique().rename("active_customers")
    revenue = f.groupby(["cohort", "months_since"])["line_amount"].sum().rename("revenue")
    out = pd.concat([active, revenue], axis=1).fillna({"active_customers": 0}).reset_index()
    out = out.join(size, on="cohort")
    out["cohort_month"] = out["cohort"].astype(str)
    return out.drop(columns="cohort")


def test_cohort_table_matches_pandas(star_warehouse, star_tables):
    ours = cohorts.cohort_table(wh.connect(star_warehouse, read_only=True))
    ref = reference_cohorts(star_tables)
    m = ours.merge(ref, on=["cohort_month", "months_since"], how="outer", suffixes=("", "_ref"), indicator=True)
    assert (m["_merge"] == "both").all()
    assert (m["cohort_size"] == m["cohort_size_ref"]).all()
    assert (m["active_customers"] == m["active_customers_ref"]).all()
    np.testing.assert_allclose(m["revenue"], m["revenue_ref"], atol=0.005)
    np.testing.assert_allclose(m["retention_rate"], m["active_customers"] / m["cohort_size"])


def test_matrices_shape(star_warehouse):
    table = cohorts.cohort_table(wh.connect(star_warehouse, read_only=True))
    rates = cohorts.retention_matrix(table)
    counts = cohorts.retention_matrix(table, rates=False)
    assert (rates[0] == 1.0).all()
    assert rates.index.is_monotonic_increasing
    # the last cohort is observed for (Dec 2025 - cohort) months, the rest is NaN
    last = rates.index[-1]
    horizon = (pd.Period("2025-12", "M") - pd.Period(last, "M")).n
    assert rates.loc[last, :horizon].notna().all() and rates.loc[last, horizon + 1 :].isna().all()
    sizes = cohorts.cohort_sizes(table)
    np.testing.assert_allclose(counts.div(sizes, axis=0), rates)
    assert sizes.sum() == 600
    cum = cohorts.revenue_matrix(table, cumulative=True)
    per = cohorts.revenue_matrix(table)
    np.testing.assert_allclose(cum.iloc[:, -1].dropna(), per.sum(axis=1)[cum.iloc[:, -1].notna()])


def test_retention_reproduces_truth_within_sampling_error(star_warehouse):
    """Pooled retention k months after acquisition vs the generator's true P_BUY * SURVIVAL**k."""
    curve = cohorts.retention_curve(cohorts.cohort_table(wh.connect(star_warehouse, read_only=True)), max_months=18)
    for k, row in curve.iloc[1:].iterrows():
        p = true_retention(k)
        se = np.sqrt(p * (1 - p) / row["customers"])
        assert abs(row["retention_rate"] - p) < 4 * se, (k, row["retention_rate"], p)


def test_retention_by_cohort_year(star_warehouse):
    by_year = cohorts.retention_by_cohort_year(cohorts.cohort_table(wh.connect(star_warehouse, read_only=True)))
    assert list(by_year.index) == ["2023", "2024", "2025"]
    assert np.isnan(by_year.loc["2025", "month_12"])  # 2025 cohorts are not 12 months old everywhere


def test_small_sample_cohorts_reproduce_truth(request):
    """On the real small sample: pooled retention by months since first purchase is within sampling
    error of truth/cohort_retention.csv (plus 2 points for identity-resolution slack)."""
    path = optional_fixture(request, "small_warehouse")
    truth_dir = optional_fixture(request, "small_truth_dir")
    truth = pd.read_csv(truth_dir / "cohort_retention.csv")
    truth["cohort_month"] = truth["cohort_month"].astype(str).str[:7]
    ours = cohorts.cohort_table(wh.connect(path, read_only=True))
    true_curve = truth.groupby("months_since")[["active_customers", "cohort_size"]].sum()
    true_curve = true_curve["active_customers"] / true_curve["cohort_size"]
    curve = cohorts.retention_curve(ours, max_months=24)
    for k, row in curve.iloc[1:].iterrows():
        p = true_curve.get(k)
        if p is None or row["customers"] < 100:
            continue
        se = np.sqrt(p * (1 - p) / row["customers"])
        assert abs(row["retention_rate"] - p) < 4 * se + 0.02, (k, row["retention_rate"], p)
    sizes = truth.groupby("cohort_month")["cohort_size"].first()
    ours_sizes = cohorts.cohort_sizes(ours).reindex(sizes.index).fillna(0)
    assert abs(ours_sizes.sum() - sizes.sum()) <= 0.03 * sizes.sum()


def test_describe_curve_reads_the_curve():
    curve = pd.DataFrame({"retention_rate": [1.0, 0.3, 0.25, 0.2]}, index=[0, 1, 2, 3])
    assert cohorts.describe_curve(curve) == "Of the customers acquired in a month, 30% bought again in month 1, 20% in month 3"
    assert cohorts.describe_curve(curve.loc[[0]]).startswith("No cohort is old enough")


def test_cohort_years_compared_at_the_same_age():
    from crm_helpers.information.cohorts import compare_years

    ahead = pd.DataFrame({"month_1": [0.30, 0.35], "month_3": [0.20, 0.22]}, index=[2023, 2024])
    assert compare_years(ahead) == ("Between acquisition years, retention at the same age differs by at most "
                                    "5.0 percentage points (Month 1); the latest year is ahead at every horizon measured.")
    mixed = ahead.assign(month_3=[0.25, 0.22])
    assert compare_years(mixed).endswith("no consistent change in retention.")
    assert compare_years(ahead.iloc[:1]).startswith("Only one acquisition year")
