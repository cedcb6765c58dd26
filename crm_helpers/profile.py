"""Data-quality profile of the staging tables: how complete is each column, source by source."""

from __future__ import annotations

import ibis
import pandas as pd

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
