"""The notebooks' own checks can fail: a warehouse that breaks an invariant stops the notebook.

nbval runs every notebook on the sound small sample (``make test``); here a copy of its
warehouse is corrupted in one place and the notebook that checks that invariant must raise,
naming what broke.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

papermill = pytest.importorskip("papermill")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def corrupted_copy(warehouse: Path, tmp_path: Path, sql: str) -> Path:
    """A copy of ``warehouse`` with ``sql`` applied to it."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute(sql)
    return copy


def failed_check(notebook: str, data_dir: Path, warehouse: Path, tmp_path: Path) -> str:
    """Run ``notebook`` on ``warehouse``; return the failing assertion's message."""
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        papermill.execute_notebook(NOTEBOOKS / notebook, tmp_path / notebook, cwd=NOTEBOOKS,
                                   parameters={"data_dir": str(data_dir), "warehouse": str(warehouse)},
                                   progress_bar=False)
    assert failure.value.ename == "AssertionError"
    return failure.value.evalue


def test_a_lost_staging_row_stops_collect(small_world, small_warehouse, tmp_path):
    """01: delete one staged order line, and its file no longer balances."""
    with duckdb.connect(str(small_warehouse), read_only=True) as con:
        (file,) = con.execute("SELECT min(file) FROM stg_order_line").fetchone()
    warehouse = corrupted_copy(small_warehouse, tmp_path, f"""
        DELETE FROM stg_order_line WHERE file = '{file}'
          AND record_no = (SELECT min(record_no) FROM stg_order_line WHERE file = '{file}')""")
    message = failed_check("01_collect.ipynb", small_world, warehouse, tmp_path)
    assert message.startswith("files that do not balance") and file in message


def test_a_fact_without_its_customer_stops_integrate(small_world, small_warehouse, tmp_path):
    """02: an order line whose customer is not in dim_customer is caught."""
    warehouse = corrupted_copy(small_warehouse, tmp_path, """
        INSERT INTO fact_order_line SELECT * REPLACE (-1 AS customer_id)
        FROM fact_order_line WHERE customer_id IS NOT NULL LIMIT 1""")
    message = failed_check("02_integrate.ipynb", small_world, warehouse, tmp_path)
    assert message.startswith("facts whose customer is not in dim_customer")
    assert "fact_order_line           1" in message


def test_customers_linked_to_the_wrong_people_fail_the_segment_check(small_world, small_warehouse, tmp_path):
    """04: shift every customer's source records to the next customer in identity_map, so each
    customer maps to someone else's person; the recovery of the designed segments collapses."""
    warehouse = corrupted_copy(small_warehouse, tmp_path, """
        UPDATE identity_map SET customer_id = shifted.next_id
        FROM (SELECT customer_id, lead(customer_id, 1, (SELECT min(customer_id) FROM identity_map))
                                  OVER (ORDER BY customer_id) AS next_id
              FROM (SELECT DISTINCT customer_id FROM identity_map)) AS shifted
        WHERE identity_map.customer_id = shifted.customer_id""")
    message = failed_check("04_segments.ipynb", small_world, warehouse, tmp_path)
    assert message.startswith("segments far from the design")

def test_customers_vanishing_from_the_holdout_stop_the_value_notebook(small_world, small_warehouse, tmp_path):
    """05: half the holdout year's purchases lose their customer, and BG/NBD's holdout check fails."""
    warehouse = corrupted_copy(small_warehouse, tmp_path, """
        UPDATE fact_order_line SET customer_id = NULL
        WHERE order_date > (SELECT max(order_date) - INTERVAL 180 DAY FROM fact_order_line)""")
    message = failed_check("05_value_and_risk.ipynb", small_world, warehouse, tmp_path)
    assert message.startswith("BG/NBD's holdout forecast is off")

def test_a_missing_month_in_the_churn_window_stops_value_and_risk(small_world, small_warehouse, tmp_path):
    """05 (churn risk): a month of the label window without its purchases would count its buyers
    as churned; the notebook names the month instead of fitting on it."""
    warehouse = corrupted_copy(small_warehouse, tmp_path, """
        DELETE FROM fact_order_line WHERE order_date BETWEEN DATE '2025-03-01' AND DATE '2025-03-31'""")
    message = failed_check("05_value_and_risk.ipynb", small_world, warehouse, tmp_path)
    assert message.startswith("months of the label window with under a quarter of the usual purchases")
    assert "2025-03" in message

def test_mixed_up_categories_stop_next_best_offer(small_world, small_warehouse, tmp_path):
    """06: product categories relabelled (Footwear <-> Electronics): the rules no longer follow
    the designed affinities, and the notebook says so."""
    warehouse = corrupted_copy(small_warehouse, tmp_path, """
        UPDATE dim_product SET category = CASE category WHEN 'Footwear' THEN 'Electronics'
                                                        WHEN 'Electronics' THEN 'Footwear' END
        WHERE category IN ('Footwear', 'Electronics')""")
    message = failed_check("06_next_best_offer.ipynb", small_world, warehouse, tmp_path)
    assert "designed" in message

def test_a_month_without_sales_stops_the_forecast(small_world, small_warehouse, tmp_path):
    """07: a month missing from the monthly series would shift the seasons; the notebook names it."""
    warehouse = corrupted_copy(small_warehouse, tmp_path, """
        DELETE FROM fact_order_line WHERE order_date BETWEEN DATE '2024-06-01' AND DATE '2024-06-30'""")
    message = failed_check("07_new_customers_and_forecast.ipynb", small_world, warehouse, tmp_path)
    assert message == "months missing from the series: 2024-06"

def test_churn_probabilities_above_one_stop_the_periodic_report(small_world, small_warehouse, tmp_path):
    """Periodic report (section 9): scores whose churn probability exceeds 1 put more value at risk
    than the base has; the report's check says so instead of printing it."""
    warehouse = corrupted_copy(small_warehouse, tmp_path, """
        CREATE TABLE customer_scores AS
        SELECT customer_id, DATE '2025-06-30' AS as_of, 'Loyal' AS segment, 0.5 AS p_alive,
               1.0 AS expected_purchases_365d, 100.0 AS clv, 1.5 AS churn_probability, 'broken' AS model_version
        FROM dim_customer""")
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        papermill.execute_notebook(NOTEBOOKS / "reports" / "periodic_report.ipynb", tmp_path / "report.ipynb",
                                   cwd=NOTEBOOKS / "reports", parameters={"warehouse": str(warehouse)},
                                   progress_bar=False)
    assert failure.value.ename == "AssertionError"
    assert failure.value.evalue.startswith("CLV at risk outside 0..total CLV")

def test_purchases_that_lose_money_stop_the_campaign_plan(small_world, small_warehouse, tmp_path):
    """08: order lines whose cost is twice the sales (cost in the wrong unit, say) make every
    offer's purchase lose money; the plan stops before anyone is contacted. The copy gets simple
    scores and offers when notebooks 05 and 06 have not written them to the small warehouse."""
    warehouse = corrupted_copy(small_warehouse, tmp_path, """
        CREATE TABLE IF NOT EXISTS customer_scores AS
        SELECT customer_id, DATE '2025-12-31' AS as_of, 'Regular' AS segment, (customer_id % 10) / 10 AS p_alive,
               1.0 AS expected_purchases_365d, 100.0 AS clv, (customer_id * 7 % 10) / 10 AS churn_probability,
               'test' AS model_version, NULL::TIMESTAMP AS scored_at, NULL::DOUBLE AS first_year_value
        FROM dim_customer;
        CREATE TABLE IF NOT EXISTS next_best_offer AS
        WITH p AS (SELECT sku, category, row_number() OVER (ORDER BY sku) - 1 AS i, count(*) OVER () AS n FROM dim_product)
        SELECT c.customer_id, DATE '2025-12-31' AS as_of, 1 AS rank, p.sku AS product, p.category, 1.0 AS score,
               'among the most popular products' AS reason
        FROM dim_customer AS c JOIN p ON p.i = c.customer_id % p.n;
        UPDATE fact_order_line SET cost_amount = line_amount * 2""")
    message = failed_check("08_act.ipynb", small_world, warehouse, tmp_path)
    assert message.startswith("purchases that lose money")


def test_swapped_campaign_groups_stop_the_measure_notebook(small_world, small_warehouse, tmp_path):
    """09: treatment and control swapped in every campaign's contacts: the measured uplifts turn
    negative and their intervals no longer hold the designed effects."""
    warehouse = corrupted_copy(small_warehouse, tmp_path, """
        UPDATE fact_campaign_contact SET treatment_group = CASE treatment_group WHEN 'treatment' THEN 'control'
                                                                                ELSE 'treatment' END""")
    message = failed_check("09_measure.ipynb", small_world, warehouse, tmp_path)
    assert message.startswith("uplift intervals miss the designed effect")
