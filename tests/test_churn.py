"""crm_helpers.knowledge.churn: features and label on a hand-made warehouse, the leakage guard
(nothing dated after the cut-off changes a feature), the models on the small world, and the
gradient-boosted model against the RFM baseline on the default 20k world (slow)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from crm_helpers import truth as tr
from crm_helpers import warehouse as wh
from crm_helpers.knowledge import churn

CUT = date(2024, 6, 30)

TINY = """
CREATE TABLE dim_product (sku VARCHAR, product_name VARCHAR, category VARCHAR, tier VARCHAR);
INSERT INTO dim_product VALUES ('A', 'a', 'Home', 'basic'), ('B', 'b', 'Home', 'premium');
CREATE TABLE dim_channel (store_id VARCHAR, store_name VARCHAR, region VARCHAR, channel VARCHAR);
INSERT INTO dim_channel VALUES ('S1', 'Store 1', 'North', 'store'), ('WEB', 'Web', NULL, 'web');
CREATE TABLE dim_customer (customer_id BIGINT, signup_date DATE, acquisition_channel VARCHAR,
                           region VARCHAR);
INSERT INTO dim_customer VALUES (1, '2022-01-01', 'store', 'North'), (2, '2024-02-01', 'web', NULL),
                                (3, '2024-07-01', 'web', NULL);
CREATE TABLE fact_order_line (order_id VARCHAR, line_no INTEGER, customer_id BIGINT,
    order_ts TIMESTAMP, order_date DATE, store_id VARCHAR, channel VARCHAR, sku VARCHAR,
    quantity INTEGER, unit_price DECIMAL(12,2), line_amount DECIMAL(12,2),
    cost_amount DECIMAL(14,2), is_return BOOLEAN);
INSERT INTO fact_order_line VALUES
  ('O1', 1, 1, '2024-01-10 10:00', '2024-01-10', 'WEB', 'web', 'A', 1, 10, 10, 5, false),
  ('O1', 2, 1, '2024-01-10 10:00', '2024-01-10', 'WEB', 'web', 'B', 1, 30, 30, 15, false),
  ('O2', 1, 1, '2024-06-20 10:00', '2024-06-20', 'S1', 'store', 'B', 2, 20, 40, 20, false),
  ('R1', 1, 1, '2024-06-25 10:00', '2024-06-25', 'S1', 'store', 'A', -1, 10, -10, -5, true),
  ('O3', 1, 2, '2024-02-01 10:00', '2024-02-01', 'WEB', 'web', 'A', 3, 10, 30, 15, false),
  ('O4', 1, 3, '2024-07-05 10:00', '2024-07-05', 'WEB', 'web', 'A', 1, 10, 10, 5, false),
  ('O5', 1, 1, '2024-08-01 10:00', '2024-08-01', 'S1', 'store', 'B', 1, 30, 30, 15, false),
  ('O6', 1, 1, '2024-09-30 10:00', '2024-09-30', 'S1', 'store', 'B', 1, 30, 30, 15, false);
CREATE TABLE fact_interaction (interaction_id VARCHAR, interaction_date DATE, reason_code VARCHAR,
                               outcome VARCHAR, customer_id BIGINT);
INSERT INTO fact_interaction VALUES ('I1', '2024-05-01', 'COMPLAINT', 'escalated', 1),
                                    ('I2', '2024-07-15', 'COMPLAINT', 'escalated', 1),
                                    ('I3', '2024-03-01', 'DELIVERY', 'resolved', 2);
CREATE TABLE fact_campaign_contact (campaign_id VARCHAR, contact_date DATE, customer_id BIGINT);
INSERT INTO fact_campaign_contact VALUES ('C1', '2024-03-01', 1), ('C2', '2024-07-01', 1),
                                         ('C2', '2024-07-01', 2);
CREATE TABLE fact_campaign_response (campaign_id VARCHAR, response_date DATE, response_type VARCHAR,
                                     customer_id BIGINT);
INSERT INTO fact_campaign_response VALUES ('C1', '2024-03-05', 'purchase', 1),
                                          ('C2', '2024-07-02', 'click', 2);
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """Three customers with known histories around the cut-off 2024-06-30."""
    path = tmp_path_factory.mktemp("churn") / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(TINY)
    return path


def test_features_and_label_of_a_hand_made_warehouse(tiny):
    with wh.reading(tiny) as con:
        x = churn.features(con, CUT)
        y = churn.labels(con, CUT, window_days=90)
        latest = churn.latest_inputs(con, CUT)
        with pytest.raises(ValueError, match="after the last order day"):
            churn.labels(con, CUT, window_days=100)
    # Customer 3 first bought after the cut-off: not at risk yet.
    assert list(x.index) == [1, 2] and list(y.index) == [1, 2]
    assert y.to_dict() == {1: False, 2: True}  # 1 buys on 1 Aug, 2 never again
    one = x.loc[1]
    assert one["recency_days"] == 10 and one["orders"] == 2 and one["purchase_days"] == 2
    assert one["order_value"] == pytest.approx(40) and one["revenue"] == pytest.approx(70)
    assert one["return_lines"] == 1 and one["return_share"] == pytest.approx(10 / 80)
    assert one["tenure_days"] == (CUT - date(2022, 1, 1)).days and one["existing_base"] == 1
    assert one["history_days"] == 172 and one["mean_gap_days"] == pytest.approx(162)
    assert one["overdue_ratio"] == pytest.approx(10 / 162)
    assert one["orders_recent"] == 2 and one["orders_earlier"] == 0
    assert one["lines_per_order"] == pytest.approx(1.5) and one["items_per_order"] == pytest.approx(2)
    assert one["tier_share:premium"] == pytest.approx(2 / 3)
    assert one["channel_share:web"] == pytest.approx(0.5)
    # The complaint of 15 July and the campaign sent on 1 July come after the cut-off.
    assert one["contacts"] == 1 and one["contacts:COMPLAINT"] == 1 and one["outcome:escalated"] == 1
    assert one["days_since_contact"] == 60
    assert one["campaign_contacts"] == 1 and one["responses:purchase"] == 1
    assert one["days_since_response"] == 117
    two = x.loc[2]
    assert two["existing_base"] == 0 and np.isnan(two["mean_gap_days"])
    assert two["contacts:COMPLAINT"] == 0 and two["campaign_contacts"] == 0
    assert np.isnan(two["days_since_response"]) and "responses:click" not in x.columns
    assert latest.max() <= CUT


def test_gains_reliability_and_evaluation_of_a_perfect_score():
    y = pd.Series([True] * 20 + [False] * 80, index=range(100))
    s = pd.Series(np.r_[np.linspace(0.9, 0.8, 20), np.linspace(0.3, 0.0, 80)], index=range(100))
    g = churn.gains(y, s)
    assert g["lift"].iloc[:2].tolist() == [5.0, 5.0] and g["gains"].iloc[1] == 1.0
    got = churn.evaluate(y, s)
    assert got["auc"] == 1.0 and got["top_decile_lift"] == 5.0 and got["customers"] == 100
    rel = churn.reliability(y, s, bins=5)
    assert rel["customers"].tolist() == [20] * 5 and rel["observed"].iloc[-1] == 1.0


def test_importance_in_words_reads_the_direction_from_the_data():
    rng = np.random.default_rng(0)
    n = 2000
    x = pd.DataFrame({"recency_days": rng.integers(0, 365, n),
                      "contacts:COMPLAINT": rng.choice([0, 1, 2], n, p=[0.8, 0.15, 0.05]),
                      "orders": rng.integers(1, 30, n)}).rename_axis("customer_id")
    risk = x["recency_days"] / 365 + 0.3 * x["contacts:COMPLAINT"]
    y = pd.Series(rng.random(n) < risk.clip(0, 1), index=x.index)
    imp = pd.DataFrame({"auc_drop": [0.2, 0.05, 0.0]}, index=["recency_days", "contacts:COMPLAINT", "orders"])
    words = churn.importance_in_words(imp, x, y)
    assert len(words) == 2  # a feature that does not move the AUC is not described
    assert words[0].startswith("The more days since the last purchase, the higher the risk")
    assert words[1].startswith("The more complaint contacts, the higher the risk")
    assert "of customers with 0 churned, against" in words[1] and "% with 2 (AUC" in words[1]
    y_reversed = pd.Series(rng.random(n) < 1 - x["recency_days"] / 365, index=x.index)
    assert "the lower the risk" in churn.importance_in_words(imp.head(1), x, y_reversed)[0]


def scrambled_after(warehouse: Path, tmp_path: Path, cut: date) -> Path:
    """A copy of ``warehouse`` whose rows dated after ``cut`` are altered in every dated table:
    customers shuffled, amounts and codes changed, some rows deleted and earlier rows copied
    past the cut-off."""
    copy = tmp_path / "scrambled.duckdb"
    shutil.copy(warehouse, copy)
    c = f"DATE '{cut}'"
    with duckdb.connect(str(copy)) as con:
        con.execute(f"""
            UPDATE fact_order_line SET customer_id = (customer_id * 7919 + line_no) % 1500 + 1,
                   line_amount = -3 * line_amount, is_return = NOT is_return, quantity = quantity + 5
             WHERE order_date > {c};
            DELETE FROM fact_order_line WHERE order_date > {c} AND line_no = 2;
            INSERT INTO fact_order_line SELECT * REPLACE (order_ts + INTERVAL 400 DAY AS order_ts,
                   order_date + INTERVAL 400 DAY AS order_date, order_id || 'X' AS order_id)
              FROM fact_order_line WHERE order_date BETWEEN {c} - INTERVAL 200 DAY AND {c};
            DELETE FROM fact_order_line WHERE order_date > {c} + INTERVAL 500 DAY;
            UPDATE fact_interaction SET reason_code = 'COMPLAINT', outcome = 'escalated',
                   customer_id = customer_id + 1 WHERE interaction_date > {c};
            INSERT INTO fact_interaction SELECT * REPLACE (interaction_date + INTERVAL 1 DAY
                   AS interaction_date) FROM fact_interaction WHERE interaction_date = {c};
            UPDATE fact_campaign_contact SET customer_id = customer_id + 1 WHERE contact_date > {c};
            INSERT INTO fact_campaign_contact SELECT * REPLACE ({c} + INTERVAL 1 DAY AS contact_date)
              FROM fact_campaign_contact WHERE contact_date <= {c};
            UPDATE fact_campaign_response SET response_type = 'click', customer_id = customer_id + 2
             WHERE response_date > {c};
        """)
    return copy


def test_nothing_after_the_cut_off_changes_a_feature(small_warehouse, tmp_path):
    with wh.reading(small_warehouse) as con:
        cut = churn.default_cut_off(con)
        before = churn.features(con, cut)
    scrambled = scrambled_after(small_warehouse, tmp_path, cut)
    with wh.reading(scrambled) as con:
        after = churn.features(con, cut)
        assert churn.latest_inputs(con, cut).max() <= cut
        later = churn.features(con, cut + pd.Timedelta(days=30))
    pd.testing.assert_frame_equal(before, after)
    assert not later["recency_days"].equals(before["recency_days"].reindex(later.index))  # it can change


def model_aucs(warehouse: Path, seed: int = 0) -> dict:
    """Test-set AUCs of the gradient-boosted model, the RFM baseline and BG/NBD at the default cut-off."""
    with wh.reading(warehouse) as con:
        cut = churn.default_cut_off(con)
        x, y = churn.features(con, cut), churn.labels(con, cut)
        btyd = churn.btyd_churn(con, cut, seed=seed)
    train, test = churn.split(y, seed=seed)
    gbm = churn.fit(x.loc[train], y, seed=seed)
    rfm = churn.fit_rfm_baseline(x.loc[train], y)
    scores = {"gbm": churn.score(gbm, x.loc[test]), "rfm": churn.score(rfm, x.loc[test]),
              "btyd": btyd.reindex(test)}
    table = churn.compare(y.loc[test], scores)
    return {**table["auc"].to_dict(), "calibration_error": table.loc["gbm", "calibration_error"],
            "labels": y, "cut": cut}


def test_models_on_the_small_world(small_world):
    got = model_aucs(small_world / "warehouse.duckdb")
    assert got["gbm"] >= 0.7 and got["gbm"] >= got["rfm"] - 0.02, got
    assert got["btyd"] >= 0.65, got
    assert got["calibration_error"] <= 0.08, got
    # Everyone the world designed to have left by the cut-off is labelled churned.
    with wh.reading(small_world / "warehouse.duckdb") as con:
        person = tr.customer_persons(con, small_world / "truth")
    people = tr.read_truth("people", small_world / "truth").set_index("person_id")
    gone = pd.to_datetime(people["dropout_date"]) <= pd.Timestamp(got["cut"])
    y = got["labels"]
    left = gone.reindex(person.reindex(y.index)).fillna(False).to_numpy(dtype=bool)
    assert left.sum() > 50 and y[left].mean() >= 0.98


@pytest.mark.slow
def test_gradient_boosting_beats_rfm_on_the_default_world(world_20k):
    got = model_aucs(world_20k / "warehouse.duckdb")
    assert got["gbm"] >= got["rfm"] + 0.02, got
    assert got["gbm"] >= got["btyd"], got
