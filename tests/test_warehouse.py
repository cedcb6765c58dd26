"""The warehouse connection: owner-only files, waiting for a lock, one clear line when it is held."""

from __future__ import annotations

import stat
import subprocess
import sys
import time

import pytest

from crm_helpers import warehouse as wh


def test_new_warehouse_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "wh" / "warehouse.duckdb"
    con = wh.connect(path)
    con.raw_sql("CREATE TABLE t AS SELECT 1 AS a")
    con.disconnect()
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0


def test_reader_of_a_missing_warehouse_is_told_to_build_it(tmp_path):
    with pytest.raises(wh.WarehouseMissing, match="crm collect"):
        wh.connect(tmp_path / "none.duckdb", read_only=True)
    assert not (tmp_path / "none.duckdb").exists()


def _hold_lock(path, seconds):
    code = (f"import duckdb, time; c = duckdb.connect({str(path)!r}); "
            f"print('locked', flush=True); time.sleep({seconds})")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_writer_waits_for_the_lock_then_names_the_holder(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    wh.connect(path).disconnect()
    holder = _hold_lock(path, 30)
    try:
        monkeypatch.setenv("CRM_LOCK_TIMEOUT", "1")
        started = time.monotonic()
        with pytest.raises(wh.WarehouseBusy) as err:
            wh.connect(path)
        assert time.monotonic() - started >= 1
        assert f"process {holder.pid}" in str(err.value) and "\n" not in str(err.value)
    finally:
        holder.kill()


def test_writer_gets_the_warehouse_once_the_holder_lets_go(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    wh.connect(path).disconnect()
    holder = _hold_lock(path, 1.5)
    monkeypatch.setenv("CRM_LOCK_TIMEOUT", "20")
    started = time.monotonic()
    con = wh.connect(path)
    assert time.monotonic() - started > 0.5  # it had to wait for the holder to finish
    con.disconnect()
    holder.wait(timeout=10)


def _write_in_another_process(path, sql, timeout=5):
    """Run ``sql`` through a writer connection in a separate process; its exit code."""
    code = (f"from crm_helpers import warehouse as wh; c = wh.connect({str(path)!r}); "
            f"c.raw_sql({sql!r}); c.disconnect()")
    env = {**__import__("os").environ, "CRM_LOCK_TIMEOUT": str(timeout)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_an_open_notebook_kernel_does_not_block_a_load(tmp_path):
    """A kernel's per-cell connection lets go between cells: another process loads, the next cell sees it."""
    from IPython.core.interactiveshell import InteractiveShell

    path = tmp_path / "warehouse.duckdb"
    con = wh.connect(path)
    con.raw_sql("CREATE TABLE sales AS SELECT 1 AS amount")
    con.disconnect()
    shell = InteractiveShell.instance()
    try:
        cell = shell.run_cell(f"from crm_helpers import warehouse as wh\ncon = wh.per_cell({str(path)!r})\n"
                              "total = con.table('sales').amount.sum()\nfirst = total.execute()")
        assert cell.success and shell.user_ns["first"] == 1
        load = _write_in_another_process(path, "INSERT INTO sales VALUES (41)", timeout=2)
        assert load.returncode == 0, load.stderr  # the kernel held no lock between cells
        cell = shell.run_cell("second = total.execute()")  # an expression from an earlier cell
        assert cell.success and shell.user_ns["second"] == 42
        # while a cell runs, the kernel reads: a writer waits, and gives up after its timeout
        cell = shell.run_cell("import subprocess, sys, os\n"
                              f"blocked = subprocess.run([sys.executable, '-c', {_writer_code(path)!r}],"
                              " env={**os.environ, 'CRM_LOCK_TIMEOUT': '1'}, capture_output=True, text=True)")
        assert cell.success and shell.user_ns["blocked"].returncode != 0
        assert "locked by process" in shell.user_ns["blocked"].stderr
    finally:
        shell.run_cell("con.disconnect()")
        wh._per_cell.clear()
        InteractiveShell.clear_instance()


def _writer_code(path):
    return (f"from crm_helpers import warehouse as wh; c = wh.connect({str(path)!r}); "
            "c.raw_sql('INSERT INTO sales VALUES (1)')")


def test_reading_lets_go_after_the_block(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    wh.connect(path).disconnect()
    with wh.reading(path) as con:
        assert con.list_tables() == []
    assert _write_in_another_process(path, "CREATE TABLE t AS SELECT 1 AS a").returncode == 0
    assert wh.needs_integration(path)


def test_recorded_settings_read_without_ibis_are_those_collect_recorded(small_warehouse, tmp_path):
    assert wh.recorded_settings(small_warehouse) == wh.settings(small_warehouse)
    wh.connect(tmp_path / "bare.duckdb").disconnect()
    assert wh.recorded_settings(tmp_path / "bare.duckdb") is None
    with pytest.raises(wh.WarehouseMissing):
        wh.recorded_settings(tmp_path / "none.duckdb")
