"""The engine: a DuckDB warehouse file reached through Ibis, opened in one place.

Every transaction-level computation in the workbook is an Ibis expression on the connection
returned by :func:`connect`, so the same code can run on another Ibis backend (Spark for big
users); only customer-level tables come back to pandas. Code that must speak SQL (collect's
set-based parsing) uses the same connection's DuckDB handle, ``connect(...).con``.

Ibis and pandas are imported when a connection is opened, not with this module: a quick question
asked before any analysis (:func:`peek`, for ``crm report``'s request check) need not wait for them.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from crm_helpers import config

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd
    from ibis.backends import BaseBackend


def __getattr__(name: str):
    """``warehouse.BaseBackend``: Ibis' connection class, imported on first use (PEP 562)."""
    if name == "BaseBackend":
        from ibis.backends import BaseBackend

        return BaseBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class WarehouseMissing(FileNotFoundError):
    """Reading a warehouse that collect and integrate have not built yet."""


class WarehouseBusy(RuntimeError):
    """Another process held the warehouse's lock for longer than the lock timeout."""


def _holder(message: str) -> str:
    """The process named in DuckDB's lock error, with its command line when it can be read."""
    found = re.search(r"held in (.*?) \(PID (\d+)\)", message)
    if not found:
        return "another process"
    program, pid = found.groups()
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        cmdline = program
    return f"process {pid} ({cmdline[:120]})"


def connect(path: Path | str | None = None, read_only: bool = False) -> BaseBackend:
    """Open the warehouse (default: :func:`crm_helpers.config.warehouse_path`) as an Ibis backend.

    A writer creates the file (and its folder) when missing, readable by its owner only; a
    reader raises :class:`WarehouseMissing` instead of creating an empty warehouse. DuckDB lets
    one process write or several read: a connection that finds the file locked waits up to
    :func:`crm_helpers.config.lock_timeout` seconds, then raises :class:`WarehouseBusy` naming
    the process that holds the lock. The session time zone is
    UTC: every timestamp in the warehouse is UTC wall-clock time. DuckDB's memory is capped at
    :func:`crm_helpers.config.memory_limit`.
    """
    import ibis

    path = Path(path or config.warehouse_path())
    if read_only and not path.exists():
        raise WarehouseMissing(f"no warehouse at {path}: run `crm collect` and `crm integrate` first")
    if not read_only:
        config.private_files()  # the warehouse holds personal data: owner-only files
        path.parent.mkdir(parents=True, exist_ok=True)
    con = _wait_for_lock(path, lambda: ibis.duckdb.connect(str(path), read_only=read_only,
                                                           memory_limit=config.memory_limit()))
    con.raw_sql("SET TimeZone = 'UTC'")
    if not read_only and path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    return con


@contextmanager
def peek(path: Path | str | None = None):
    """A plain read-only DuckDB connection (DB-API, no Ibis) for the ``with`` block: a quick question.

    For the few aggregate questions asked before any analysis starts, such as whether ``crm
    report``'s period lies in the data: opening it costs no Ibis or pandas import. It waits for
    a writer's lock and refuses a missing file like :func:`connect`; analysis uses :func:`connect`.
    """
    path = Path(path or config.warehouse_path())
    if not path.exists():
        raise WarehouseMissing(f"no warehouse at {path}: run `crm collect` and `crm integrate` first")
    con = _wait_for_lock(path, lambda: duckdb.connect(str(path), read_only=True,
                                                      config={"memory_limit": config.memory_limit()}))
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def _wait_for_lock(path: Path, open_):
    """``open_()`` retried while another process holds ``path``'s lock, up to the lock timeout."""
    waited, deadline = 0.05, time.monotonic() + config.lock_timeout()
    while True:
        try:
            con = open_()
            break
        except duckdb.IOException as err:
            if "lock" not in str(err).lower():
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusy(f"warehouse {path} is locked by {_holder(str(err))}; waited "
                                    f"{config.lock_timeout():g} s (CRM_LOCK_TIMEOUT)") from None
            time.sleep(waited)
            waited = min(waited * 2, 1.0)
    return con


@contextmanager
def transaction(con):
    """Run the block in one transaction of the DuckDB connection ``con`` (``connect(...).con``):
    committed if the block ends normally, rolled back (and re-raised) otherwise."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def reading(path: Path | str | None = None):
    """A read-only connection for the ``with`` block only, so no other process waits on it for long."""
    con = connect(path, read_only=True)
    try:
        yield con
    finally:
        con.disconnect()


class _PerCell:
    """Opens a connection before each notebook cell and closes it after (IPython's cell events)."""

    def __init__(self, con: BaseBackend, path: Path):
        self.con, self.path = con, path

    def pre_run_cell(self, info=None) -> None:
        """Reopen the connection (waiting for a writer's lock like :func:`connect`)."""
        def reopen():
            self.con.reconnect()
            return self.con
        _wait_for_lock(self.path, reopen).raw_sql("SET TimeZone = 'UTC'")

    def post_run_cell(self, result=None) -> None:
        """Let go of the warehouse between cells."""
        self.con.disconnect()


_per_cell: list[_PerCell] = []


def per_cell(path: Path | str | None = None) -> BaseBackend:
    """A read-only connection that is open only while a notebook cell runs.

    An open notebook kernel then never holds the warehouse between cells, so ``crm collect`` or
    ``crm integrate`` can write while an analyst reads; a cell that starts during a write waits
    for it (up to the lock timeout). Ibis expressions built in one cell still run in the next.
    Temporary tables do not survive from one cell to the next. Outside IPython this is a plain
    read-only connection. Calling it again replaces the previous per-cell connection.
    """
    path = Path(path or config.warehouse_path())
    con = connect(path, read_only=True)
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is None:
        return con
    while _per_cell:
        old = _per_cell.pop()
        for event in ("pre_run_cell", "post_run_cell"):
            shell.events.unregister(event, getattr(old, event))
        old.con.disconnect()
    hooks = _PerCell(con, path)
    shell.events.register("pre_run_cell", hooks.pre_run_cell)
    shell.events.register("post_run_cell", hooks.post_run_cell)
    _per_cell.append(hooks)
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


def settings(con: BaseBackend | str | Path | None = None) -> config.Settings:
    """The organisation's settings as collect recorded them (table ``setting``).

    Each row is a setting's name and its value as JSON text. A warehouse collected before
    settings were recorded gives the defaults (the sample world's values).
    """
    con = as_connection(con)
    if "setting" not in con.list_tables():
        return config.Settings()
    rows = con.table("setting").to_pyarrow().to_pylist()
    return config.Settings.from_mapping({r["key"]: json.loads(r["value"]) for r in rows},
                                        where="warehouse table setting")


def recorded_settings(path: Path | str | None = None) -> config.Settings | None:
    """The settings collect recorded in the warehouse at ``path``, read with :func:`peek` (no Ibis):
    None when it recorded none. Raises :class:`WarehouseMissing` when there is no warehouse."""
    with peek(path) as con:
        if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'setting'").fetchone()[0]:
            return None
        rows = con.execute("SELECT key, value FROM setting").fetchall()
    return config.Settings.from_mapping({key: json.loads(value) for key, value in rows},
                                        where="warehouse table setting")


def source_roles(con: BaseBackend | str | Path | None = None) -> pd.DataFrame:
    """One row per declared source: ``source``, ``role``, ``priority``, ``country``.

    ``role`` is ``customer_master`` for the source whose customer ids other files refer to, else
    ``None``; ``priority`` orders survivorship (1 first; every source has one, unique); ``country``
    is the ISO code phone numbers of that source default to. Ordered by priority. Empty (with
    these columns) for a warehouse collected before the declarations were recorded.
    """
    import pandas as pd

    con = as_connection(con)
    columns = ["source", "role", "priority", "country"]
    if "source_declaration" not in con.list_tables():
        return pd.DataFrame(columns=columns)
    roles = con.table("source_declaration").select(*columns).order_by("priority").to_pandas()
    return roles.astype({"role": object}).where(roles.notna(), None)


def needs_integration(con: BaseBackend | str | Path | None = None) -> bool:
    """True while the warehouse has no single customer view yet (``crm integrate`` has not run).

    Given a path (or ``None``), the warehouse is opened read-only just for the question.
    """
    if con is not None and not isinstance(con, (str, Path)):  # an open connection
        return "dim_customer" not in con.list_tables()
    with reading(con) as opened:
        return "dim_customer" not in opened.list_tables()
