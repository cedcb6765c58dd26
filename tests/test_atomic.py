"""Atomic rebuilds: a killed or failed `crm integrate` leaves the previous complete state, never a mix.

`crm integrate` runs in a subprocess that kills itself with SIGKILL at a named step
(``CRM_KILL_AT``, see :func:`crm_helpers.information.integrate.checkpoint`): after standardising,
after writing the new tables, inside the swap's transaction before COMMIT, and just after COMMIT.
The warehouse is then opened and must hold either the old tables or the new ones, with every
contract holding. A tiny world (300 people) keeps each run short.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crm_helpers import warehouse as wh
from crm_helpers.cli import app
from crm_helpers.information import contracts, integrate

ROOT = Path(__file__).resolve().parents[1]
BUILT = ["customer_record", "identity_map", *integrate.STAR_SCHEMA, "integration_log", "contract_check"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A 300-person world: ``collected.duckdb`` (staging only) and ``integrated.duckdb``."""
    from crm_helpers.data.collect import collect
    from crm_helpers.sample import generate

    base = tmp_path_factory.mktemp("tiny-world")
    generate(base, customers=300, seed=7, progress=False)
    collect(base, base / "collected.duckdb", progress=False)
    shutil.copy(base / "collected.duckdb", base / "integrated.duckdb")
    integrate.integrate(base / "integrated.duckdb", progress=False)
    return base


def run_integrate(warehouse: Path, kill_at: str = "") -> int:
    """`crm integrate` in a subprocess that kills itself at step ``kill_at``; its return code."""
    env = {**os.environ, "CRM_KILL_AT": kill_at, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "crm_helpers.cli", "integrate", "--warehouse", str(warehouse)],
                          check=False, env=env, capture_output=True, text=True, timeout=600)
    return done.returncode


def state(warehouse: Path) -> dict:
    """Rows of every table integrate builds (None when missing), the runs' statuses, and the
    failures of the contracts on the current tables: keys and references (``failures``) and the
    balances with staging (``unbalanced``, which changes with staging)."""
    con = wh.connect(warehouse, read_only=True)
    try:
        tables = set(con.list_tables())
        rows = {t: int(con.table(t).count().execute()) if t in tables else None for t in BUILT}
        runs = con.table("integration_run").order_by("run_id").status.to_pandas().tolist()
        checked = contracts.check(con) if "dim_customer" in tables else None
        leftovers = [t for t in tables if t.startswith(integrate.NEW)]
    finally:
        con.disconnect()
    balance = None if checked is None else checked.contract.str.startswith("balances")
    return {"rows": rows, "runs": runs, "leftovers": leftovers,
            "failures": None if checked is None else int(checked.failures[~balance].sum()),
            "unbalanced": None if checked is None else int(checked.failures[balance].sum())}


def test_a_killed_first_run_leaves_no_star_tables(tiny, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    shutil.copy(tiny / "collected.duckdb", warehouse)
    for step in ("written", "swap"):
        assert run_integrate(warehouse, kill_at=step) == -signal.SIGKILL
        after = state(warehouse)
        assert after["rows"] == dict.fromkeys(BUILT), step
        con = wh.connect(warehouse, read_only=True)
        assert wh.needs_integration(con)
        con.disconnect()
    assert after["runs"] == ["running", "running"]  # both recorded as never finished
    assert run_integrate(warehouse) == 0
    final = state(warehouse)
    assert final["runs"] == ["running", "running", "complete"]
    assert final["failures"] == final["unbalanced"] == 0 and final["leftovers"] == []
    assert final["rows"] == state(tiny / "integrated.duckdb")["rows"]


def test_a_killed_rebuild_leaves_the_previous_state(tiny, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    shutil.copy(tiny / "integrated.duckdb", warehouse)
    con = wh.connect(warehouse)  # new staging: a third of the order lines and a fifth of the records go
    con.raw_sql("DELETE FROM stg_order_line WHERE hash(order_id) % 3 = 0")
    con.raw_sql("DELETE FROM stg_customer WHERE hash(source_record_id) % 5 = 0")
    con.disconnect()
    old = state(warehouse)
    assert old["failures"] == 0 and old["unbalanced"] == 2 and old["runs"] == ["complete"]

    for step in ("standardised", "written", "swap"):
        assert run_integrate(warehouse, kill_at=step) == -signal.SIGKILL
        after = state(warehouse)
        assert after["rows"] == old["rows"], step
        assert after["failures"] == 0, step

    assert run_integrate(warehouse, kill_at="committed") == -signal.SIGKILL
    new = state(warehouse)
    assert new["runs"] == ["complete", "running", "running", "running", "complete"]
    assert new["failures"] == new["unbalanced"] == 0
    assert new["rows"]["fact_order_line"] < old["rows"]["fact_order_line"]
    assert new["rows"]["customer_record"] < old["rows"]["customer_record"]

    clean = tmp_path / "clean.duckdb"  # the new state is the one a clean run gives
    shutil.copy(warehouse, clean)
    integrate.integrate(clean, progress=False)
    assert state(clean)["rows"] == new["rows"]


def test_a_failed_contract_fails_the_run_and_keeps_the_previous_tables(tiny, tmp_path, monkeypatch, capsys):
    """A step that counts one order line twice: the run fails naming the contract, nothing changes."""
    warehouse = tmp_path / "w.duckdb"
    shutil.copy(tiny / "integrated.duckdb", warehouse)
    before = state(warehouse)
    built = integrate.order_line_facts

    def one_line_twice(*args):
        facts = built(*args)
        return facts.union(facts.order_by(["source", "order_id", "line_no"]).limit(1), distinct=False)

    monkeypatch.setattr(integrate, "order_line_facts", one_line_twice)
    with pytest.raises(SystemExit) as exited:  # the command line, as `crm integrate` runs it
        app(["integrate", "--warehouse", str(warehouse)])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: integrate kept the previous tables: fact_order_line breaks contract "
                            "'unique: source, order_id, line_no' (1 failing, e.g. source="), error
    assert "'balances staging: revenue' (1 failing" in error and ".99999" not in error
    after = state(warehouse)
    assert after["rows"] == before["rows"] and after["leftovers"] == []
    assert after["runs"] == ["complete", "failed"]
