"""The fault battery, collect side: one bad file is isolated, a source without files is a
warning, a file deleted from raw/ is reported and its rows kept or pruned.

Each case writes a small raw folder by hand (the files of ``test_collect``) and asserts the
numbers: which files loaded, rows read = loaded + quarantined for each, staging and fact counts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_collect import FILES, POS_HEADER, count, run, sql, world, write  # noqa: F401

from crm_helpers.data.collect import summary
from crm_helpers.data.quality import reconciliation
from crm_helpers.information.integrate import integrate

ROOT = Path(__file__).resolve().parents[1]
GARBAGE = bytes(range(256)) * 4  # control characters, a stray newline, bytes no text has
NEW_POS = "pos/pos_2024-08.csv"
GOOD_POS = [POS_HEADER, "R8;1;01/08/2024 10:00:00;S001;;P001;1;19.99;19.99",
            "R8;2;01/08/2024 10:00:00;S001;;P002;1;29.99;29.99"]


def crm_collect(base: Path, *options: str) -> subprocess.CompletedProcess:
    """Run ``crm collect`` on base as a separate process, as an analyst would."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "crm_helpers.cli", "collect", "--data", str(base),
                           *options], env=env, capture_output=True, text=True, timeout=120)


def assert_balanced(audit) -> None:
    """Every file this run loaded balances: rows read = rows loaded + rows quarantined."""
    loaded = audit[audit.status.isin(["loaded", "replaced"])]
    assert (loaded.rows_read == loaded.rows_loaded + loaded.rows_quarantined).all()


def fact_lines(base: Path) -> int:
    """Integrate base's warehouse; return the number of fact order lines."""
    integrate(base / "warehouse.duckdb", progress=False)
    return count(base, "fact_order_line")


# --- one bad file among good ones ---------------------------------------------------------------

def test_a_garbage_file_is_rejected_and_every_good_file_loads(world):
    (world / "raw" / NEW_POS).write_bytes(GARBAGE)
    audit = run(world)
    assert audit.status.value_counts().to_dict() == {"loaded": 10, "rejected": 1}
    assert_balanced(audit)
    assert count(world, "stg_order_line") == 5 + 3  # every good line, nothing of the garbage
    assert sql(world, "SELECT status, fingerprint, rows_read, rows_loaded, rows_quarantined, reason "
                      "FROM load_audit WHERE file = ?", [NEW_POS]) == [
        ("rejected", None, 0, 0, 0, "column 'receipt_no': missing required column 'receipt_no' "
                                    f"(header: {GARBAGE[:10].decode().strip()})")]
    assert reconciliation(world / "warehouse.duckdb").balanced.all()


def test_the_command_line_names_the_rejected_file_and_exits_1(world):
    (world / "raw" / NEW_POS).write_bytes(GARBAGE)
    result = crm_collect(world)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "files: 10 loaded, 0 replaced, 0 skipped, 1 rejected" in result.stdout
    rejected = [line for line in result.stderr.splitlines() if line.startswith("rejected:")]
    assert rejected == [f"rejected: source 'pos', file '{NEW_POS}': column 'receipt_no': missing "
                        f"required column 'receipt_no' (header: {GARBAGE[:10].decode().strip()})"]
    again = crm_collect(world)  # a rejected file is not taken for done: it is read again
    assert again.returncode == 1
    assert "files: 0 loaded, 0 replaced, 10 skipped, 1 rejected" in again.stdout


def test_a_zero_byte_file_is_rejected(world):
    (world / "raw" / NEW_POS).write_bytes(b"")
    (world / "raw" / "webshop" / "orders_2024-08.jsonl").write_bytes(b"")
    audit = run(world).set_index("file")
    assert audit.status[NEW_POS] == audit.status["webshop/orders_2024-08.jsonl"] == "rejected"
    assert audit.reason[NEW_POS] == "empty file (0 bytes)"
    assert (audit.status == "loaded").sum() == 10
    assert count(world, "load_audit", "status = 'rejected'") == 2


def test_a_jsonl_file_of_garbage_lines_is_rejected_like_a_csv_of_garbage(world):
    garbage = ["hello there", "not json, at all", "[1, 2]", "", "{broken"]
    write(world, "webshop/orders_2024-08.jsonl", garbage)
    audit = run(world).set_index("file")
    assert audit.status["webshop/orders_2024-08.jsonl"] == "rejected"
    assert audit.reason["webshop/orders_2024-08.jsonl"] == (
        "not JSON lines: none of its 4 lines is a JSON object")
    assert (audit.status == "loaded").sum() == 10 and count(world, "stg_order_line") == 5 + 3
    assert sql(world, "SELECT status, rows_read, rows_loaded, rows_quarantined FROM load_audit "
                      "WHERE file = 'webshop/orders_2024-08.jsonl'") == [("rejected", 0, 0, 0)]
    assert count(world, "quarantine") == 0  # nothing of it kept, raw lines included
    one_good = FILES["webshop/orders_2024-07.jsonl"][0]
    write(world, "webshop/orders_2024-08.jsonl", [*garbage[:2], one_good])
    audit = run(world).set_index("file")  # one good line: it loads, the garbage is quarantined
    assert audit.loc["webshop/orders_2024-08.jsonl", ["status", "rows_read", "rows_loaded",
                                                      "rows_quarantined"]].tolist() == [
        "loaded", 3, 1, 2]
    assert reconciliation(world / "warehouse.duckdb").balanced.all()


def test_a_rejected_file_loads_once_it_is_fixed(world):
    (world / "raw" / NEW_POS).write_bytes(GARBAGE)
    run(world)
    write(world, NEW_POS, GOOD_POS)
    audit = run(world).set_index("file")
    assert audit.status[NEW_POS] == "loaded" and (audit.status == "skipped").sum() == 10
    assert sql(world, "SELECT status, reason, rows_read, rows_loaded FROM load_audit WHERE file = ?",
               [NEW_POS]) == [("loaded", None, 2, 2)]
    assert count(world, "stg_order_line", f"file = '{NEW_POS}'") == 2
    assert set(run(world).status) == {"skipped"}


def test_a_loaded_file_broken_later_keeps_its_rows_until_fixed(world):
    run(world)
    write(world, "pos/pos_2024-07.csv", [line.replace(";", ",") for line in FILES["pos/pos_2024-07.csv"]])
    audit = run(world).set_index("file")
    assert audit.status["pos/pos_2024-07.csv"] == "rejected"
    assert audit.reason["pos/pos_2024-07.csv"].endswith("the rows of its earlier version are kept")
    assert count(world, "stg_order_line", "file = 'pos/pos_2024-07.csv'") == 4
    assert reconciliation(world / "warehouse.duckdb").balanced.all()
    write(world, "pos/pos_2024-07.csv", FILES["pos/pos_2024-07.csv"][:2])
    assert run(world).set_index("file").status["pos/pos_2024-07.csv"] == "replaced"
    assert count(world, "stg_order_line", "file = 'pos/pos_2024-07.csv'") == 1


# --- a source with no files ---------------------------------------------------------------------

def test_a_source_without_files_is_a_warning_and_the_others_load(world):
    shutil.rmtree(world / "raw" / "callcentre")
    audit = run(world)
    assert audit.status.value_counts().to_dict() == {"loaded": 9, "missing": 1}
    assert count(world, "stg_interaction") == 0 and count(world, "stg_order_line") == 8
    assert "sources without files: 1" in summary(audit)[0]
    result = crm_collect(world)
    assert result.returncode == 0
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
        "warning: source 'callcentre', file 'callcentre/contacts_*.csv': no file matches "
        f"'callcentre/contacts_*.csv' under {world / 'raw'}"]


# --- a file deleted from raw/ -------------------------------------------------------------------

def test_a_deleted_file_keeps_its_rows_and_is_reported(world):
    gone = "pos/pos_2024-01.csv"  # one line that loads, one quarantined, one with a value set aside
    write(world, gone, FILES[gone] + ["R0;2;x;S001;;P001;1;1;1",
                                      "R0;3;15/01/2024 10:00:00;S001;nocard;P001;1;19.99;19.99x"])
    run(world)
    facts, staged = fact_lines(world), count(world, "stg_order_line")
    held = {t: count(world, t, f"file = '{gone}'") for t in ["stg_order_line", "quarantine"]}
    assert held == {"stg_order_line": 2, "quarantine": 1}
    (world / "raw" / gone).unlink()
    audit = run(world).set_index("file")
    assert audit.status[gone] == "deleted-kept" and (audit.status == "skipped").sum() == 9
    assert audit.reason[gone] == "no longer in raw/: its 3 rows are kept (--prune withdraws them)"
    assert count(world, "stg_order_line") == staged and fact_lines(world) == facts
    assert sql(world, "SELECT status, rows_read, rows_loaded, rows_quarantined FROM load_audit "
                      "WHERE file = ?", [gone]) == [("deleted-kept", 3, 2, 1)]
    assert reconciliation(world / "warehouse.duckdb").balanced.all()

    audit = run(world, prune=True).set_index("file")
    assert audit.status[gone] == "pruned"
    assert audit.reason[gone] == "no longer in raw/: its 3 rows were withdrawn"
    assert count(world, "stg_order_line") == staged - 2 and fact_lines(world) == facts - 2
    assert {t: count(world, t, f"file = '{gone}'")
            for t in ["stg_order_line", "quarantine", "value_issue"]} == {
        "stg_order_line": 0, "quarantine": 0, "value_issue": 0}
    assert sql(world, "SELECT status, rows_read, rows_loaded, rows_quarantined FROM load_audit "
                      "WHERE file = ?", [gone]) == [("pruned", 0, 0, 0)]
    assert reconciliation(world / "warehouse.duckdb").balanced.all()
    assert gone not in set(run(world, prune=True).file)  # said once; nothing left to withdraw


def test_prune_through_the_command_line(world):
    run(world)
    (world / "raw" / "pos" / "pos_2024-01.csv").unlink()
    kept = crm_collect(world)
    assert kept.returncode == 0 and "deleted from raw/: 1 kept, 0 pruned" in kept.stdout
    assert ("deleted, rows kept: source 'pos', file 'pos/pos_2024-01.csv': no longer in raw/: its "
            "1 rows are kept (--prune withdraws them)") in kept.stdout
    pruned = crm_collect(world, "--prune")
    assert pruned.returncode == 0 and "deleted from raw/: 0 kept, 1 pruned" in pruned.stdout
    assert count(world, "stg_order_line", "file = 'pos/pos_2024-01.csv'") == 0


def test_a_pruned_file_that_comes_back_loads_again(world):
    run(world)
    path = world / "raw" / "pos" / "pos_2024-01.csv"
    text = path.read_bytes()
    path.unlink()
    run(world, prune=True)
    path.write_bytes(text)
    audit = run(world).set_index("file")
    assert audit.status["pos/pos_2024-01.csv"] == "loaded"
    assert sql(world, "SELECT status, rows_loaded FROM load_audit WHERE file = 'pos/pos_2024-01.csv'"
               ) == [("loaded", 1)]


# --- declarations and older warehouses ----------------------------------------------------------

def test_a_bad_declaration_still_stops_with_exit_2(world):
    text = (world / "sources.yml").read_text()
    (world / "sources.yml").write_text(text.replace('"quantity * unit_price"', '"quantity * nope"'))
    result = crm_collect(world)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: source 'webshop', file 'webshop/orders_2024-07.jsonl', "
                                    "column 'line_amount': invalid expression")


def test_a_yaml_error_is_one_line_naming_file_and_line_and_changes_nothing(world):
    run(world)
    before = {t: count(world, t) for t in ["stg_order_line", "quarantine", "load_audit"]}
    sources = world / "sources.yml"
    sources.write_text(sources.read_text().replace("    files: pos/pos_*.csv",
                                                   "    files: [pos/pos_*.csv"))
    result = crm_collect(world)
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert re.match(rf"error: {re.escape(str(sources))}, line \d+, column \d+: YAML syntax error",
                    result.stderr)
    assert {t: count(world, t) for t in before} == before


def test_an_older_audit_gets_status_loaded(world):
    run(world)
    sql(world, "ALTER TABLE load_audit DROP COLUMN status")
    sql(world, "ALTER TABLE load_audit DROP COLUMN reason")
    assert set(run(world).status) == {"skipped"}
    assert sql(world, "SELECT DISTINCT status, reason FROM load_audit") == [("loaded", None)]
