"""``customer_scores``: the knowledge stage's per-customer scores, written back to the warehouse.

One row per customer and ``as_of`` date: segment, p_alive, expected_purchases_365d, clv,
churn_probability and the ``model_version`` that produced them (plus ``scored_at``, when they were
written); customers under 90 days old also get ``first_year_value``, the new-customer model's
12-month value (notebook 07, :func:`write_first_year_values`), which BTYD cannot judge from a
purchase or two. The wisdom stage reads them to choose whom to contact. Writing the scores of an
``as_of`` again replaces that date's rows in one transaction: a rerun never duplicates, and a run
that fails or is killed leaves the last complete state. The table's contracts
(``contracts.SCORE_CONTRACTS``: one row per customer and date, scores in range, every customer in
``dim_customer``) are checked before the commit. Customer ids are those of the integration the
scores were computed on (``crm integrate`` renumbers them: score again after it).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from ibis.backends import BaseBackend

from crm_helpers import warehouse as wh
from crm_helpers.information import contracts

TABLE = "customer_scores"
COLUMNS = {"customer_id": "BIGINT", "as_of": "DATE", "segment": "VARCHAR", "p_alive": "DOUBLE",
           "expected_purchases_365d": "DOUBLE", "clv": "DOUBLE", "churn_probability": "DOUBLE",
           "model_version": "VARCHAR", "scored_at": "TIMESTAMP", "first_year_value": "DOUBLE"}
SCORES = ["segment", "p_alive", "expected_purchases_365d", "clv", "churn_probability"]


class ScoresRejected(RuntimeError):
    """Scores that break a contract of ``customer_scores``; the table was left as it was."""


def _check_contracts(con: BaseBackend) -> None:
    """Raise :class:`ScoresRejected` naming every broken contract of ``customer_scores`` (inside
    the writer's transaction, so the table is left as it was)."""
    results = contracts.check(con, contracts=contracts.SCORE_CONTRACTS)
    broken = results[results.failures > 0]
    if len(broken):
        raise ScoresRejected("customer_scores unchanged: " + "; ".join(
            f"contract '{r.contract}' broken by {r.failures:,} rows (e.g. {r.example})"
            for r in broken.itertuples()))


def _rows(scores: pd.DataFrame, as_of, model_version: str) -> pd.DataFrame:
    """The rows to insert: every column of :data:`COLUMNS`, those missing in ``scores`` as NULL."""
    data = scores.reset_index() if "customer_id" not in scores.columns else scores
    out = pd.DataFrame({"customer_id": data["customer_id"].astype("int64").to_numpy()})
    out["as_of"] = pd.Timestamp(as_of).date()
    for column in SCORES:
        if column in data.columns:
            out[column] = data[column].to_numpy()
        else:
            out[column] = pd.Series([None] * len(out), dtype="string" if column == "segment" else "float64")
    out["model_version"] = model_version
    return out


def write_customer_scores(con_or_path: BaseBackend | str | Path | None, scores: pd.DataFrame, as_of,
                          model_version: str) -> int:
    """Write ``scores`` (customer_id as a column or the index, and any of segment, p_alive,
    expected_purchases_365d, clv, churn_probability) as the scores of ``as_of`` made by
    ``model_version``; returns the rows written.

    ``con_or_path``: a writable Ibis connection, or the warehouse's path (opened for writing,
    waiting for another writer's lock like ``warehouse.connect``). The previous rows of the same
    ``as_of`` are replaced in one transaction, after the table's contracts are checked; a broken
    contract raises :class:`ScoresRejected` and changes nothing.
    """
    own = con_or_path is None or isinstance(con_or_path, (str, Path))
    con = wh.connect(con_or_path) if own else con_or_path
    rows = _rows(scores, as_of, model_version)
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    raw = con.con
    try:
        raw.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({columns})")
        raw.execute(f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS first_year_value DOUBLE")
        raw.register("_scores_in", rows)
        try:
            with wh.transaction(raw):
                raw.execute(f"DELETE FROM {TABLE} WHERE as_of = ?", [rows["as_of"].iloc[0] if len(rows)
                                                                      else pd.Timestamp(as_of).date()])
                names = ", ".join(rows.columns)
                raw.execute(f"INSERT INTO {TABLE} ({names}, scored_at) "
                            f"SELECT {names}, now()::TIMESTAMP FROM _scores_in")
                _check_contracts(con)
        finally:
            raw.unregister("_scores_in")
    finally:
        if own:
            con.disconnect()
    return len(rows)


def write_first_year_values(con_or_path: BaseBackend | str | Path | None, values: pd.DataFrame, as_of,
                            model_version: str) -> int:
    """Set ``first_year_value`` of the customers in ``values`` (customer_id, first_year_value) in
    the scores of ``as_of``, in one transaction; returns the customers written.

    A customer already scored on ``as_of`` keeps the other scores; one not yet scored gets a row
    of its own (other scores NULL, ``model_version``). Earlier first-year values of that date are
    cleared first, so a rerun replaces them. Contracts as :func:`write_customer_scores`.
    """
    own = con_or_path is None or isinstance(con_or_path, (str, Path))
    con = wh.connect(con_or_path) if own else con_or_path
    day = pd.Timestamp(as_of).date()
    rows = pd.DataFrame({"customer_id": values["customer_id"].astype("int64").to_numpy(),
                         "first_year_value": values["first_year_value"].astype("float64").to_numpy()})
    raw = con.con
    try:
        raw.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} "
                    f"({', '.join(f'{name} {kind}' for name, kind in COLUMNS.items())})")
        raw.execute(f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS first_year_value DOUBLE")
        raw.register("_values_in", rows)
        try:
            with wh.transaction(raw):
                raw.execute(f"UPDATE {TABLE} SET first_year_value = NULL WHERE as_of = ?", [day])
                raw.execute(f"UPDATE {TABLE} AS s SET first_year_value = v.first_year_value "
                            f"FROM _values_in AS v WHERE s.customer_id = v.customer_id AND s.as_of = ?", [day])
                raw.execute(f"INSERT INTO {TABLE} (customer_id, as_of, model_version, scored_at, first_year_value) "
                            f"SELECT v.customer_id, ?, ?, now()::TIMESTAMP, v.first_year_value FROM _values_in AS v "
                            f"WHERE NOT EXISTS (SELECT 1 FROM {TABLE} AS s "
                            f"WHERE s.customer_id = v.customer_id AND s.as_of = ?)", [day, model_version, day])
                _check_contracts(con)
        finally:
            raw.unregister("_values_in")
    finally:
        if own:
            con.disconnect()
    return len(rows)


def read_customer_scores(con: BaseBackend | str | Path | None = None, as_of=None) -> pd.DataFrame:
    """The scores of ``as_of`` (default: the latest date written), one row per customer."""
    con = wh.as_connection(con)
    t = con.table(TABLE)
    day = pd.Timestamp(as_of).date() if as_of is not None else t.as_of.max().as_scalar()
    return t.filter(t.as_of == day).order_by("customer_id").execute()
