"""Data quality of what collect loaded: reconciliation, quarantine, values set aside, completeness.

Each function reads the bookkeeping tables (``load_audit``, ``quarantine``, ``value_issue``) or
the staging tables and returns one small table for a notebook or a report.
"""

from __future__ import annotations

from pathlib import Path

import ibis
import pandas as pd

from crm_helpers import warehouse as wh
from crm_helpers.data.sources import STAGING_TABLES

# --- reports for the notebook -------------------------------------------------------------------

def _frame(con_or_path, sql: str) -> pd.DataFrame:
    """Run a query on a warehouse path, a DuckDB connection or an Ibis DuckDB backend."""
    if isinstance(con_or_path, (str, Path)):
        with wh.reading(con_or_path) as backend:
            return backend.con.execute(sql).df()
    return getattr(con_or_path, "con", con_or_path).execute(sql).df()


def reconciliation(con_or_path) -> pd.DataFrame:
    """Per source and file: rows read (audit) vs records actually in staging and quarantine.

    ``rows_erased`` counts the records of people erased by ``crm forget`` (withheld since):
    a file balances when rows_read = rows_loaded + rows_quarantined + rows_erased.
    """
    staged = " UNION ALL ".join(f"SELECT source, file, record_no FROM {t}" for t in STAGING_TABLES)
    return _frame(con_or_path, f"""
        WITH s AS (SELECT source, file, count(*) AS n FROM (SELECT DISTINCT * FROM ({staged}))
                   GROUP BY ALL),
             q AS (SELECT source, file, count(DISTINCT record_no) AS n FROM quarantine GROUP BY ALL)
        SELECT a.source, a.file, a.rows_read, coalesce(s.n, 0) AS rows_loaded,
               coalesce(q.n, 0) AS rows_quarantined, coalesce(a.rows_erased, 0) AS rows_erased,
               a.rows_read = coalesce(s.n, 0) + coalesce(q.n, 0) + coalesce(a.rows_erased, 0)
                 AND a.rows_loaded = coalesce(s.n, 0) AND a.rows_quarantined = coalesce(q.n, 0)
                 AS balanced
        FROM load_audit a LEFT JOIN s USING (source, file) LEFT JOIN q USING (source, file)
        ORDER BY a.source, a.file""")


def quarantine_summary(con_or_path) -> pd.DataFrame:
    """Quarantined records by source and reason (without values), with one full example."""
    return _frame(con_or_path, """
        SELECT source, issue AS reason, count(*) AS rows, count(DISTINCT file) AS files,
               min(reason) AS example
        FROM quarantine GROUP BY source, issue ORDER BY source, rows DESC, issue""")


def data_quality(con_or_path) -> pd.DataFrame:
    """Optional values loaded as NULL because they could not be parsed, by source and column."""
    return _frame(con_or_path, """
        SELECT source, table_name, column_name, issue, count(*) AS values_nulled,
               min(reason) AS example
        FROM value_issue GROUP BY ALL ORDER BY source, values_nulled DESC""")
BOOKKEEPING = ("source", "file", "record_no")


def completeness(con, table: str, by: str = "source") -> pd.DataFrame:
    """Share of non-empty values of every column of ``table``, one row per ``by`` value.

    Computed in the engine; one small row per source comes back. The ``rows`` column counts
    the records behind each share.
    """
    t = con.table(table)
    columns = [c for c in t.columns if c not in BOOKKEEPING]
    shares = {c: t[c].notnull().cast("float64").mean() for c in columns}
    return t.group_by(by).aggregate(rows=t.count(), **shares).order_by(by).to_pandas().set_index(by)


def staging_counts(con, tables: list[str]) -> pd.DataFrame:
    """Rows per source in each staging table: what came from where."""
    parts = [con.table(t).group_by("source").aggregate(rows=lambda s: s.count()).mutate(table=ibis.literal(t))
             .to_pandas() for t in tables if t in con.list_tables()]
    counts = pd.concat(parts, ignore_index=True)
    return counts.pivot_table(index="source", columns="table", values="rows", fill_value=0, aggfunc="sum")


def reconciliation_by_source(con_or_path) -> pd.DataFrame:
    """:func:`reconciliation` summed per source: files, rows read, loaded, quarantined and erased, and
    whether every file of the source balances."""
    recon = reconciliation(con_or_path)
    return recon.groupby("source").agg(files=("file", "count"), rows_read=("rows_read", "sum"),
                                       rows_loaded=("rows_loaded", "sum"),
                                       rows_quarantined=("rows_quarantined", "sum"),
                                       rows_erased=("rows_erased", "sum"), balanced=("balanced", "all"))


def load_overview(audit: pd.DataFrame) -> pd.DataFrame:
    """What the warehouse's loads hold, per source, from ``load_audit`` (one row per file, pandas).

    Columns: source, files (in the audit), files_rejected, rows_read, rows_loaded,
    rows_quarantined, rows_erased (when the audit has it), first_loaded and last_loaded (when its files were loaded). This is the
    state of the warehouse, whichever run loaded the files (``crm collect`` or a notebook).
    """
    audit = audit.assign(rejected=audit["status"].eq("rejected"))
    by = audit.groupby("source")
    return pd.DataFrame({
        "files": by.size(),
        "files_rejected": by["rejected"].sum(),
        "rows_read": by["rows_read"].sum(),
        "rows_loaded": by["rows_loaded"].sum(),
        "rows_quarantined": by["rows_quarantined"].sum(),
        **({"rows_erased": by["rows_erased"].sum()} if "rows_erased" in audit else {}),
        "first_loaded": by["loaded_at"].min(),
        "last_loaded": by["loaded_at"].max(),
    }).reset_index()


def load_words(audit: pd.DataFrame, this_run: pd.DataFrame) -> str:
    """What the warehouse's loads hold (``load_audit``) and what this run added, in two sentences."""
    from crm_helpers import display

    erased = audit["rows_erased"].sum() if "rows_erased" in audit else 0
    fresh = this_run["status"].isin(["loaded", "replaced"]).sum()
    return (f"The warehouse holds **{display.fmt(len(audit), display.COUNT)} files** from "
            f"{display.fmt(audit['source'].nunique(), display.COUNT)} sources, loaded "
            f"{display.span(audit['loaded_at'].min(), audit['loaded_at'].max())}: "
            f"{display.fmt(audit['rows_read'].sum(), display.COUNT)} records read, "
            f"{display.fmt(audit['rows_loaded'].sum(), display.COUNT)} loaded and "
            f"{display.fmt(audit['rows_quarantined'].sum(), display.COUNT)} quarantined"
            + (f", {display.fmt(erased, display.COUNT)} withheld as erased. " if erased else ". ")
            + (f"This run loaded {display.fmt(fresh, display.COUNT)} new or changed files." if fresh else
               "This run found no new file: everything had been loaded before (by `crm collect` or an earlier run)."))
