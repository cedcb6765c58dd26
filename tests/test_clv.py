"""Lifetime value: the published CDNOW fits, the scoreboard's measures and customer_scores."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest

from crm_helpers import warehouse as wh
from crm_helpers.information import cdnow
from crm_helpers.knowledge import clv, scoreboard, scores


@pytest.fixture(scope="module")
def cdnow_split() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The CDNOW 1/10 sample's purchase days and their 39-week calibration / 39-week holdout split."""
    tx = cdnow.read_cdnow("sample").rename(columns={"date": "order_date", "dollar_value": "spend"})
    days = tx.groupby(["customer_id", "order_date"], as_index=False)["spend"].sum()
    return days, clv.rfm_split(days, cdnow.CALIBRATION_END, cdnow.HOLDOUT_END)


def test_cdnow_reproduces_the_published_fits(cdnow_split):
    """BG/NBD (Fader, Hardie & Lee 2005) and Gamma-Gamma (Fader & Hardie 2013) to 3 significant
    figures, and the holdout's 1,882 repeat purchase days (weeks 40-78)."""
    days, summary = cdnow_split
    assert len(summary) == 2357 and summary["frequency"].sum() == 2457
    assert (summary["frequency"] > 0).sum() == 946
    assert summary["test_frequency"].sum() == 1882
    bgnbd = clv.parameters(clv.fit_bgnbd(summary))
    for name, published in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert float(f"{bgnbd[name]:.3g}") == pytest.approx(float(f"{published:.3g}")), (name, bgnbd[name])
    spend = clv.parameters(clv.fit_gamma_gamma(summary))
    for name, published in {"p": 6.25, "q": 3.74, "gamma": 15.44}.items():
        assert float(f"{spend[name]:.3g}") == pytest.approx(float(f"{published:.3g}")), (name, spend[name])


def test_scoreboard_measures():
    pred = pd.DataFrame({"actual": np.arange(1.0, 21.0), "perfect": np.arange(1.0, 21.0),
                         "double": np.arange(2.0, 42.0, 2), "reversed": np.arange(20.0, 0, -1)},
                        index=pd.Index(range(20), name="customer_id"))
    board = scoreboard.score(pred, ["perfect", "double", "reversed"])
    assert board.loc["perfect", "total_error"] == 0 and board.loc["perfect", "decile_error"] == 0
    assert board.loc["double", "total_error"] == pytest.approx(1.0)
    assert board.loc["double", "rank_correlation"] == pytest.approx(1.0)
    assert board.loc["reversed", "rank_correlation"] == pytest.approx(-1.0)
    assert scoreboard.winners(board).to_dict() == {"total": "perfect", "deciles": "perfect", "ranking": "perfect"}
    by = scoreboard.score(pred, ["perfect"], pd.Series(["a"] * 10 + ["b"] * 10, index=pred.index))
    assert by.loc[("b", "perfect"), "customers"] == 10


def test_rfm_quintile_baseline_predicts_the_cell_mean():
    idx = pd.Index(range(10), name="customer_id")
    train = pd.DataFrame({"recency_days": range(10), "purchase_days": range(10, 0, -1),
                          "total_spend": range(10, 0, -1)}, index=idx)
    label = pd.Series(np.repeat([5.0, 4, 3, 2, 1], 2), index=idx)
    got = scoreboard.rfm_quintile_baseline(train, label, train)
    assert got.to_numpy() == pytest.approx(label.to_numpy())


def test_writing_scores_twice_for_one_date_keeps_one_row_per_customer(small_warehouse, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(small_warehouse, warehouse)
    with wh.reading(warehouse) as con:
        ids = con.table("dim_customer").customer_id.execute().head(50)
    first = pd.DataFrame({"customer_id": ids, "p_alive": 0.5, "clv": 10.0})
    assert scores.write_customer_scores(warehouse, first, "2025-12-31", "test-1") == 50
    assert scores.write_customer_scores(warehouse, first.head(40).assign(p_alive=0.9), "2025-12-31", "test-2") == 40
    scores.write_customer_scores(warehouse, first.head(5), "2024-12-31", "test-1")
    got = scores.read_customer_scores(warehouse, "2025-12-31")
    assert len(got) == 40 and got["customer_id"].is_unique
    assert (got["p_alive"] == 0.9).all() and (got["model_version"] == "test-2").all()
    assert got["churn_probability"].isna().all() and got["segment"].isna().all()
    with duckdb.connect(str(warehouse), read_only=True) as raw:
        assert raw.execute("SELECT count(*) FROM customer_scores").fetchone()[0] == 45


def test_scores_that_break_a_contract_change_nothing(small_warehouse, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(small_warehouse, warehouse)
    with wh.reading(warehouse) as con:
        ids = con.table("dim_customer").customer_id.execute().head(3)
    scores.write_customer_scores(warehouse, pd.DataFrame({"customer_id": ids, "p_alive": 0.5}), "2025-12-31", "v1")
    bad = pd.DataFrame({"customer_id": ids, "p_alive": [0.5, 1.5, 0.2]})
    with pytest.raises(scores.ScoresRejected, match="p_alive"):
        scores.write_customer_scores(warehouse, bad, "2025-12-31", "v2")
    got = scores.read_customer_scores(warehouse)
    assert len(got) == 3 and (got["model_version"] == "v1").all()
