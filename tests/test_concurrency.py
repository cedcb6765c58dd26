"""The fault battery, concurrent use: a reader and a writer on one warehouse, each in its own
process, as a notebook kernel beside ``crm collect`` would be.

A holder process opens the warehouse through :func:`crm_helpers.warehouse.connect` (read-only or
writing), says so on stdout and keeps the connection for a given time. The other side waits up to
``CRM_LOCK_TIMEOUT`` seconds: it succeeds when the holder lets go in time, and otherwise fails
with one line naming the holder's process id, leaving the warehouse as it was.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from test_collect import count, run, sql, world, write  # noqa: F401
from test_collect_faults import GOOD_POS, NEW_POS, crm_collect, fact_lines

from crm_helpers import warehouse as wh
from crm_helpers.data.quality import reconciliation

ROOT = Path(__file__).resolve().parents[1]


def hold(path: Path, seconds: float, read_only: bool) -> subprocess.Popen:
    """Start a process holding ``connect(path, read_only)`` for ``seconds``; return once it holds
    it. When it lets go, it prints the time (epoch seconds)."""
    code = ("import sys, time; from crm_helpers import warehouse as wh; "
            f"con = wh.connect({str(path)!r}, read_only={read_only}); "
            "print('holding', flush=True); time.sleep(float(sys.argv[1])); con.disconnect(); "
            "print(time.time(), flush=True)")
    path_var = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path_var)
    holder = subprocess.Popen([sys.executable, "-c", code, str(seconds)], stdout=subprocess.PIPE,
                              text=True, env=env)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def digest(path: Path) -> str:
    """The warehouse file's sha256: unchanged means not written at all."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def staged_revenue(base: Path) -> Decimal:
    """Sum of every staged order line's amount."""
    return sql(base, "SELECT sum(line_amount) FROM stg_order_line")[0][0]


@pytest.fixture
def loaded(world, monkeypatch):
    """The small world collected once, then a new till file in raw/ waiting for the next collect."""
    run(world)
    write(world, NEW_POS, GOOD_POS)
    return world


def test_collect_waits_for_a_reader_that_lets_go_in_time(loaded, monkeypatch):
    before = staged_revenue(loaded)
    monkeypatch.setenv("CRM_LOCK_TIMEOUT", "60")
    reader = hold(loaded / "warehouse.duckdb", 4, read_only=True)
    result = crm_collect(loaded)
    assert reader.wait(timeout=30) == 0  # the reader ran to its end: nothing took its lock away
    released = datetime.fromtimestamp(float(reader.stdout.read()), UTC).replace(tzinfo=None)
    assert result.returncode == 0, result.stderr
    (loaded_at,) = sql(loaded, "SELECT loaded_at FROM load_audit WHERE file = ?", [NEW_POS])[0]
    assert loaded_at >= released  # collect wrote only once the reader had let go
    assert "files: 1 loaded, 0 replaced, 10 skipped, 0 rejected" in result.stdout
    assert staged_revenue(loaded) == before + Decimal("19.99") + Decimal("29.99")  # once
    assert count(loaded, "stg_order_line", f"file = '{NEW_POS}'") == 2
    assert reconciliation(loaded / "warehouse.duckdb").balanced.all()
    assert sql(loaded, "SELECT status, rows_read, rows_loaded, rows_quarantined FROM load_audit "
                       "WHERE file = ?", [NEW_POS]) == [("loaded", 2, 2, 0)]
    fact_lines(loaded)  # integrate checks its contracts (fact sums against staging) or fails
    assert sql(loaded, "SELECT count(*), sum(line_amount) FROM fact_order_line "
                       "WHERE order_id = 'R8'") == [(2, Decimal("49.98"))]  # the new lines, once


def test_collect_fails_after_the_timeout_naming_the_reader_and_changes_nothing(loaded, monkeypatch):
    path = loaded / "warehouse.duckdb"
    before = digest(path)
    monkeypatch.setenv("CRM_LOCK_TIMEOUT", "1")
    reader = hold(path, 60, read_only=True)
    try:
        result = crm_collect(loaded)
    finally:
        reader.kill()
        reader.wait(timeout=10)
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: warehouse {path} is locked by process "
                                                   f"{reader.pid} ("), lines
    assert lines[0].endswith("waited 1 s (CRM_LOCK_TIMEOUT)")
    assert digest(path) == before
    assert count(loaded, "stg_order_line", f"file = '{NEW_POS}'") == 0
    assert reconciliation(path).balanced.all()


def test_a_reader_waits_for_a_writer_that_lets_go_in_time(loaded, monkeypatch):
    path = loaded / "warehouse.duckdb"
    writer = hold(path, 2, read_only=False)
    monkeypatch.setenv("CRM_LOCK_TIMEOUT", "60")
    started = time.monotonic()
    con = wh.connect(path, read_only=True)
    try:
        assert time.monotonic() - started >= 0.5  # it had to wait for the writer
        assert con.table("stg_order_line").count().execute() == 5 + 3
    finally:
        con.disconnect()
    assert writer.wait(timeout=30) == 0


def test_a_reader_gives_up_after_the_timeout_naming_the_writer(loaded, monkeypatch):
    path = loaded / "warehouse.duckdb"
    writer = hold(path, 60, read_only=False)
    monkeypatch.setenv("CRM_LOCK_TIMEOUT", "1")
    try:
        with pytest.raises(wh.WarehouseBusy) as err:
            wh.connect(path, read_only=True)
    finally:
        writer.kill()
        writer.wait(timeout=10)
    message = str(err.value)
    assert f"is locked by process {writer.pid} (" in message and "\n" not in message
