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
