"""The warehouse's contracts: they hold on the small world, and each kind catches its fault.

Each fault is made by hand in a copy of the small world's warehouse (a duplicated order line, an
orphan fact, an empty key, a changed amount); :func:`contracts.check` must name exactly the
contracts it breaks, with the number of failing rows and an example.
"""

from __future__ import annotations

import shutil
from decimal import Decimal

import pandas as pd

from crm_helpers import warehouse as wh
from crm_helpers.information import contracts

KEY = "concat_ws('|', source, order_id, line_no)"
FIRST_LINE = f"{KEY} = (SELECT min({KEY}) FROM fact_order_line)"  # one order line, by its key


def broken(small_warehouse, tmp_path, *statements: str) -> dict[tuple[str, str], tuple[int, str]]:
    """Contracts broken in a copy of the small warehouse after ``statements``:
    {(table, contract): (failures, example)}."""
    copy = tmp_path / "broken.duckdb"
    shutil.copy(small_warehouse, copy)
    con = wh.connect(copy)
    try:
        for statement in statements:
            con.raw_sql(statement)
        results = contracts.check(con)
    finally:
        con.disconnect()
    failed = results[results.failures > 0]
    return {(r.table, r.contract): (r.failures, r.example) for r in failed.itertuples()}


def test_contracts_hold_on_the_small_world(small_warehouse):
    con = wh.connect(small_warehouse, read_only=True)
    results = contracts.check(con)
    recorded = con.table("contract_check").to_pandas()
    facts = con.table("fact_order_line")
    anonymous = facts.customer_id.isnull().sum().execute()
    staged = con.table("stg_order_line").line_amount.sum().execute()
    log = con.table("integration_log").to_pandas()
    removed = log.loc[log.step == "order lines", "amount_removed"].sum()
    revenue = facts.line_amount.sum().execute()
    con.disconnect()
    assert len(results) == len(contracts.CONTRACTS) > 30
    assert results.failures.sum() == 0, results[results.failures > 0]
    assert recorded.to_dict("records") == results.to_dict("records")  # integrate wrote the same results
    assert anonymous > 0  # till receipts without a known card: allowed by the relationships
    assert staged - Decimal(str(round(removed, 2))) == revenue


def test_a_duplicated_order_line_breaks_its_key_and_the_balances(small_warehouse, tmp_path):
    failed = broken(small_warehouse, tmp_path,
                    f"INSERT INTO fact_order_line SELECT * FROM fact_order_line "
                    f"WHERE {FIRST_LINE}")
    assert set(failed) == {("fact_order_line", "unique: source, order_id, line_no"),
                           ("fact_order_line", "balances staging: rows"),
                           ("fact_order_line", "balances staging: revenue")}
    failures, example = failed["fact_order_line", "unique: source, order_id, line_no"]
    assert failures == 1 and example.startswith("source=") and example.endswith("rows=2")
    assert failed["fact_order_line", "balances staging: rows"][1].endswith("difference=-1")


def test_an_orphan_fact_breaks_its_relationship(small_warehouse, tmp_path):
    failed = broken(small_warehouse, tmp_path,
                    "UPDATE fact_interaction SET customer_id = -1 "
                    "WHERE interaction_id = (SELECT min(interaction_id) FROM fact_interaction)")
    assert failed == {("fact_interaction", "relationships: customer_id in dim_customer.customer_id"):
                      (1, "customer_id=-1")}


def test_an_empty_key_breaks_not_null_and_the_references_to_it(small_warehouse, tmp_path):
    gone = "(SELECT min(customer_id) FROM dim_customer)"
    con = wh.connect(small_warehouse, read_only=True)
    lines = con.raw_sql(f"SELECT count(*) FROM fact_order_line WHERE customer_id = {gone}").fetchone()[0]
    con.disconnect()
    failed = broken(small_warehouse, tmp_path, f"UPDATE dim_customer SET customer_id = NULL WHERE customer_id = {gone}")
    assert failed["dim_customer", "not null: customer_id"] == (1, "customer_id=None")
    assert failed["identity_map", "relationships: customer_id in dim_customer.customer_id"][0] >= 1
    if lines:
        assert failed["fact_order_line", "relationships: customer_id in dim_customer.customer_id"][0] == lines
    assert {table for table, _ in failed} <= {"dim_customer", "identity_map", "fact_order_line", "fact_interaction",
                                              "fact_campaign_contact", "fact_campaign_response"}


def test_a_changed_amount_breaks_only_the_revenue_balance(small_warehouse, tmp_path):
    failed = broken(small_warehouse, tmp_path,
                    f"UPDATE fact_order_line SET line_amount = line_amount + 10 "
                    f"WHERE {FIRST_LINE}")
    assert list(failed) == [("fact_order_line", "balances staging: revenue")]
    failures, example = failed["fact_order_line", "balances staging: revenue"]
    assert failures == 1 and example.endswith("difference=-10.00")



def test_results_per_table_count_broken_contracts_and_failures():
    results = pd.DataFrame({"contract": ["unique: a", "not null: a", "unique: b"], "table": ["t", "t", "u"],
                            "failures": [0, 3, 0], "example": ["", "a=None", ""]})
    summary = contracts.by_table(results).set_index("table")
    assert summary.loc["t"].tolist() == [2, 1, 3] and summary.loc["u"].tolist() == [1, 0, 0]
