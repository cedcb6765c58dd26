"""The engine: a DuckDB warehouse file reached through Ibis.

Every transaction-level computation in the workbook is an Ibis expression on the connection
returned by :func:`connect`, so the same code can run on another Ibis backend (Spark for big
users); only customer-level tables come back to pandas.
"""

from __future__ import annotations

from pathlib import Path

import ibis

from crm_helpers import config


def connect(path: Path | str | None = None, read_only: bool = False):
    """Open the warehouse (default: :func:`crm_helpers.config.warehouse_path`) as an Ibis backend.

    The session time zone is UTC: every timestamp in the warehouse is UTC wall-clock time. DuckDB's
    memory is capped at :func:`crm_helpers.config.memory_limit`.
    """
    path = Path(path or config.warehouse_path())
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = ibis.duckdb.connect(str(path), read_only=read_only, memory_limit=config.memory_limit())
    con.raw_sql("SET TimeZone = 'UTC'")
    return con

