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


def test_a_month_without_sales_stops_the_forecast(small_world, small_warehouse, tmp_path):
    """07: a month missing from the monthly series would shift the seasons; the notebook names it."""
    warehouse = corrupted_copy(small_warehouse, tmp_path, """
        DELETE FROM fact_order_line WHERE order_date BETWEEN DATE '2024-06-01' AND DATE '2024-06-30'""")
    message = failed_check("07_new_customers_and_forecast.ipynb", small_world, warehouse, tmp_path)
    assert message == "months missing from the series: 2024-06"
