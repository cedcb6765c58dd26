"""The engine: a DuckDB warehouse file reached through Ibis, opened in one place.

Every transaction-level computation in the workbook is an Ibis expression on the connection
returned by :func:`connect`, so the same code can run on another Ibis backend (Spark for big
users); only customer-level tables come back to pandas. Code that must speak SQL (collect's
set-based parsing) uses the same connection's DuckDB handle, ``connect(...).con``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend

from crm_helpers import config


class WarehouseMissing(FileNotFoundError):
    """Reading a warehouse that collect and integrate have not built yet."""


def connect(path: Path | str | None = None, read_only: bool = False) -> BaseBackend:
    """Open the warehouse (default: :func:`crm_helpers.config.warehouse_path`) as an Ibis backend.

    A writer creates the file (and its folder) when missing; a reader raises
    :class:`WarehouseMissing` instead of creating an empty warehouse. The session time zone is
    UTC: every timestamp in the warehouse is UTC wall-clock time. DuckDB's memory is capped at
    :func:`crm_helpers.config.memory_limit`.
    """
    path = Path(path or config.warehouse_path())
    if read_only and not path.exists():
        raise WarehouseMissing(f"no warehouse at {path}: run `crm collect` and `crm integrate` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = ibis.duckdb.connect(str(path), read_only=read_only, memory_limit=config.memory_limit())
    con.raw_sql("SET TimeZone = 'UTC'")
    return con


def as_connection(con: BaseBackend | str | Path | None = None) -> BaseBackend:
    """An Ibis connection from a connection, a warehouse path, or ``None`` (the configured warehouse).

    Paths open read-only: analysis never writes.
    """
    if con is None or isinstance(con, (str, Path)):
        return connect(con, read_only=True)
    return con


def temporary(t: ir.Table) -> ir.Table:
    """``t`` computed once into a temporary table of its connection, for a result used several times.

    The table lives until the connection closes (or ``drop_table``); unlike Ibis' ``cache()`` it
    has no finaliser that would try to drop it after the connection is closed.
    """
    return t.get_backend().create_table(f"tmp_{uuid.uuid4().hex}", t, temp=True)



# --- PROVISIONAL (branch `identity`): stand-ins for helper B's `settings` and `source_roles`, which
# --- read the `setting` and `source_declaration` tables collect writes (same names, columns and
# --- table formats). Until collect writes them, they fall back to the declarations file. B's
# --- versions replace these two functions on merge.

def settings(con: BaseBackend | str | Path | None = None) -> config.Settings:
    """The organisation's settings as collect recorded them (table ``setting``: key, JSON value)."""
    import json

    con = as_connection(con)
    if "setting" not in con.list_tables():
        return config.load_settings()
    rows = con.table("setting").to_pyarrow().to_pylist()
    return config.Settings.from_mapping({r["key"]: json.loads(r["value"]) for r in rows},
                                        where="warehouse table setting")


def source_roles(con: BaseBackend | str | Path | None = None):
    """One row per declared source: ``source``, ``role``, ``priority``, ``country`` (pandas)."""
    import pandas as pd

    con = as_connection(con)
    columns = ["source", "role", "priority", "country"]
    if "source_declaration" in con.list_tables():
        return con.table("source_declaration").select(*columns).order_by("priority").to_pandas()
    path = config.sources_yml()
    declared = config.read_yaml(path if path.exists() else config.SAMPLE_SOURCES_YML).get("sources") or {}
    return pd.DataFrame([{c: name if c == "source" else (spec or {}).get(c) for c in columns}
                         for name, spec in declared.items()], columns=columns)
