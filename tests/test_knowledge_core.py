"""Unit tests of crm_helpers.knowledge.clv and .segments on hand-made frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_helpers.knowledge import clv, segments


def test_rfm_split_births_the_existing_base_the_day_before_the_data():
    purchases = pd.DataFrame({
        "customer_id": [1, 1, 1, 2, 2, 3],
        "order_date": pd.to_datetime(["2023-01-08", "2023-01-15", "2023-03-05",
                                      "2023-01-08", "2023-01-22", "2023-02-05"]),
        "signup_date": pd.to_datetime(["2019-05-01"] * 3 + ["2023-01-08"] * 2 + ["2023-02-01"]),
    })
    out = clv.rfm_split(purchases, "2023-01-31", "2023-03-31", data_start="2023-01-01") \
        .set_index("customer_id")
    # Customer 1 signed up before the data: born 2022-12-31, both January purchases are repeats.
    assert out.loc[1, "frequency"] == 2 and out.loc[1, "existing_base"]
    assert out.loc[1, "recency"] == pytest.approx(15 / 7)
    assert out.loc[1, "T"] == pytest.approx(31 / 7)
    assert out.loc[1, "test_frequency"] == 1
    # Customer 2 was born at their first purchase; customer 3 first bought in the holdout.
    assert out.loc[2, "frequency"] == 1 and not out.loc[2, "existing_base"]
    assert out.loc[2, "T"] == pytest.approx(23 / 7)
    assert 3 not in out.index


def test_holdout_check_figures():
    pred = pd.DataFrame({"customer_id": range(10), "expected_purchases": np.arange(1.0, 11.0),
                         "actual_purchases": np.arange(1, 11) * 2, "p_alive": np.linspace(0, 1, 10)})
    got = clv.holdout_check(pred, pd.Series([False] * 5 + [True] * 5), deciles=5)
    assert got["total_ratio"] == pytest.approx(0.5)
    assert got["decile_mape"] == pytest.approx(0.5)
    assert got["p_alive_auc"] == 1.0


def test_segment_features_and_clusters_are_ordered_by_rate():
    rng = np.random.default_rng(0)
    n = 400
    fast = np.arange(n) < n // 2
    mix = pd.DataFrame({
        "orders": np.where(fast, 40, 4), "first_purchase": pd.Timestamp("2023-01-01"),
        "last_purchase": pd.Timestamp("2025-12-31"), "lines": np.where(fast, 120, 4),
        "web_orders": np.where(fast, 2, 4),
        "tier:basic": np.where(fast, 10, 4), "tier:premium": np.where(fast, 110, 0),
        "category:Home": rng.integers(0, 3, n), "category:Garden": rng.integers(0, 3, n),
    }, index=pd.Index(range(n), name="customer_id"))
    mix.loc[n - 5:, "orders"] = 1  # too few orders to be segmented
    features = segments.segment_features(mix, end="2025-12-31")
    assert len(features) == n - 5
    assert features.loc[0, "log_rate"] == pytest.approx(np.log(40 / ((1095 + 30) / 30.4375)))
    assert 0 < features.loc[n - 10, "web_share"] < 1  # shrunk, not 100%
    cluster = segments.cluster_customers(features, k=2)
    assert (cluster[fast[: n - 5]] == 1).all() and (cluster[~fast[: n - 5]] == 2).all()
