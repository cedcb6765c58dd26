"""The warehouse's contracts: what every table ``crm integrate`` builds must satisfy, in one place.

In the style of dbt's generic tests, each contract is one SQL query run by the engine that returns
the rows breaking it (none when the contract holds):

- :func:`unique`: a key appears once (``fact_order_line`` by source, order id and line number);
- :func:`not_null`: a key is never empty;
- :func:`relationships`: every value of a fact's column exists in its dimension (an empty value,
  such as the anonymous customer of a till receipt, is allowed);
- :func:`balances`: the facts add up to staging minus what ``integration_log`` says integrate
  removed, in rows and in revenue.

:data:`CONTRACTS` lists them all. ``integrate`` checks them on the new tables before it swaps them
in (:func:`check`, :func:`require`): a broken contract fails the run and leaves the previous tables.
The results of the last run are in the table ``contract_check`` (contract, table, failures, example).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Contract:
    """A rule on one table: ``sql`` selects the rows that break it.

    ``sql`` names the tables integrate builds in braces (``{fact_order_line}``), so that the same
    rule runs on the tables being built (``_next_fact_order_line``) or on the current ones; other
    tables (staging) are named as they are.
    """

    name: str
    table: str
    sql: str


class ContractFailed(RuntimeError):
    """A table built by integrate breaks a contract; the previous tables were kept."""


def _columns(columns: tuple[str, ...]) -> str:
    return ", ".join(columns)


def unique(table: str, *key: str) -> Contract:
    """Each value of ``key`` appears in one row only; a failure is a key with its number of rows."""
    return Contract(f"unique: {_columns(key)}", table,
                    f"SELECT {_columns(key)}, count(*) AS rows FROM {{{table}}} GROUP BY ALL HAVING count(*) > 1")


def not_null(table: str, *key: str) -> Contract:
    """No column of ``key`` is empty; a failure is a row with an empty key column."""
    return Contract(f"not null: {_columns(key)}", table,
                    f"SELECT {_columns(key)} FROM {{{table}}} WHERE " + " OR ".join(f"{c} IS NULL" for c in key))


def relationships(table: str, column: str, to: str, field: str) -> Contract:
    """Every non-empty ``column`` of ``table`` is a ``field`` of the dimension ``to``."""
    return Contract(f"relationships: {column} in {to}.{field}", table,
                    f"SELECT f.{column} FROM {{{table}}} AS f ANTI JOIN {{{to}}} AS d ON f.{column} = d.{field} "
                    f"WHERE f.{column} IS NOT NULL")


def balances(measure: str, staged: str, removed: str, facts: str, sql_type: str) -> Contract:
    """``fact_order_line`` equals the staged order lines minus what integrate logged as removed.

    ``staged``, ``removed`` (a column of ``integration_log``) and ``facts`` are SQL aggregates of
    the same measure, compared as ``sql_type``; the contract holds within half a cent.
    """
    return Contract(f"balances staging: {measure}", "fact_order_line", f"""
        SELECT staged, removed, facts, staged - removed - facts AS difference
        FROM (SELECT CAST(coalesce({staged}, 0) AS {sql_type}) AS staged FROM stg_order_line),
             (SELECT CAST(coalesce(sum({removed}), 0) AS {sql_type}) AS removed
              FROM {{integration_log}} WHERE step = 'order lines'),
             (SELECT CAST(coalesce({facts}, 0) AS {sql_type}) AS facts FROM {{fact_order_line}})
        WHERE abs(staged - removed - facts) >= 0.005""")


FACTS_TO_DIMENSIONS = {
    "fact_order_line": [("customer_id", "dim_customer", "customer_id"), ("sku", "dim_product", "sku"),
                        ("order_date", "dim_date", "date"), ("store_id", "dim_channel", "store_id")],
    "fact_interaction": [("customer_id", "dim_customer", "customer_id")],
    "fact_campaign_contact": [("customer_id", "dim_customer", "customer_id"),
                              ("campaign_id", "dim_campaign", "campaign_id")],
    "fact_campaign_response": [("customer_id", "dim_customer", "customer_id"),
                               ("campaign_id", "dim_campaign", "campaign_id")],
    "identity_map": [("customer_id", "dim_customer", "customer_id")],
    "dim_customer": [("customer_id", "identity_map", "customer_id")],
}
KEYS = {
    "customer_record": ("source", "source_record_id"),
    "identity_map": ("source", "source_record_id"),
    "dim_customer": ("customer_id",),
    "dim_product": ("sku",),
    "dim_date": ("date",),
    "dim_channel": ("store_id",),
    "dim_campaign": ("campaign_id",),
    "fact_order_line": ("source", "order_id", "line_no"),
    "fact_interaction": ("interaction_id",),
}

#: Every contract of the warehouse, checked after each ``crm integrate``.
CONTRACTS: list[Contract] = [
    *[c for table, key in KEYS.items() for c in (unique(table, *key), not_null(table, *key))],
    not_null("identity_map", "customer_id"),
    not_null("fact_campaign_contact", "campaign_id"),
    not_null("fact_campaign_response", "campaign_id"),
    *[relationships(table, *rule) for table, rules in FACTS_TO_DIMENSIONS.items() for rule in rules],
    balances("rows", "count(*)", "rows_removed", "count(*)", "BIGINT"),
    balances("revenue", "sum(line_amount)", "amount_removed", "sum(line_amount)", "DECIMAL(18, 2)"),
]


class _Tables(dict):
    """Table names for a contract's SQL: the ones being built carry ``prefix``, quoted."""

    def __init__(self, prefix: str, built: set[str]):
        super().__init__()
        self.prefix, self.built = prefix, built

    def __missing__(self, name: str) -> str:
        return f'"{self.prefix}{name}"' if name in self.built else f'"{name}"'


def check(con, prefix: str = "", built: Iterable[str] = (), contracts: list[Contract] | None = None) -> pd.DataFrame:
    """Run the contracts (default :data:`CONTRACTS`) on an Ibis DuckDB connection.

    The tables named in ``built`` are read under the name ``prefix`` + table (integrate's new
    tables, before the swap); the others under their own name.

    Returns:
        One row per contract: ``contract``, ``table``, ``failures`` (rows returned by its query)
        and ``example`` (the first of them, as text; empty when the contract holds).
    """
    contracts = CONTRACTS if contracts is None else contracts
    names = _Tables(prefix, set(built))
    rows = []
    for c in contracts:
        query = c.sql.format_map(names)
        failures = con.con.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]
        example = ""
        if failures:
            result = con.con.execute(f"{query} LIMIT 1")
            columns = [d[0] for d in result.description]
            example = ", ".join(f"{k}={v}" for k, v in zip(columns, result.fetchone()))
        rows.append({"contract": c.name, "table": c.table, "failures": int(failures), "example": example})
    return pd.DataFrame(rows, columns=["contract", "table", "failures", "example"])


def require(results: pd.DataFrame) -> None:
    """Raise :class:`ContractFailed` naming every broken contract, its failures and an example."""
    broken = results[results.failures > 0]
    if len(broken):
        raise ContractFailed("integrate kept the previous tables: " + "; ".join(
            f"{r.table} breaks contract '{r.contract}' ({r.failures:,} failing, e.g. {r.example})"
            for r in broken.itertuples()))


def by_table(results: pd.DataFrame) -> pd.DataFrame:
    """:func:`check` results per table: ``contracts`` checked, how many are ``broken``, and their ``failures``."""
    return results.groupby("table", as_index=False).agg(
        contracts=("contract", "size"), broken=("failures", lambda f: int((f > 0).sum())),
        failures=("failures", "sum"))


def between(table: str, column: str, low: float, high: float | None = None) -> Contract:
    """Every non-empty ``column`` lies in [``low``, ``high``] (no upper bound when ``high`` is None)."""
    outside = f"{column} < {low}" + (f" OR {column} > {high}" if high is not None else "")
    bounds = f"[{low}, {high if high is not None else 'inf'}]"
    return Contract(f"between: {column} in {bounds}", table,
                    f"SELECT customer_id, {column} FROM {{{table}}} WHERE {outside}")


#: The contracts of ``customer_scores``, the knowledge stage's per-customer scores (written by
#: ``knowledge.scores.write_customer_scores``, not by integrate): checked at every write.
SCORE_CONTRACTS: list[Contract] = [
    unique("customer_scores", "customer_id", "as_of"),
    not_null("customer_scores", "customer_id", "as_of", "model_version"),
    relationships("customer_scores", "customer_id", "dim_customer", "customer_id"),
    between("customer_scores", "p_alive", 0, 1),
    between("customer_scores", "churn_probability", 0, 1),
    between("customer_scores", "expected_purchases_365d", 0),
    between("customer_scores", "clv", 0),
    between("customer_scores", "first_year_value", 0),
]
