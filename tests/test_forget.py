"""``crm forget <customer_id>``: one person erased on request, and kept out.

A tiny sample world (300 people) is generated, collected and integrated once; each test works
on a copy. The person is the customer with the most source records. Their identifying values
(names, e-mail, phone, street, postcode, city, birth date, record ids, loyalty cards) are read
from staging and the golden record BEFORE the erasure; the tests then scan every column of every
table, cast to text, for them. Values that other people share (a common surname, a city, a
postcode, a birth date) cannot prove anything on their own: the single-value scan looks only
for the person's values that no one else has, and the pairs first + last name and postcode +
birth date are looked for together in one row.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from crm_helpers import warehouse as wh
from crm_helpers.data import erasure
from crm_helpers.data.collect import collect
from crm_helpers.data.quality import reconciliation
from crm_helpers.information import contracts
from crm_helpers.information.integrate import integrate

ROOT = Path(__file__).resolve().parents[1]
PERSONAL = ["first_name", "last_name", "full_name", "email", "phone", "street", "postcode", "city",
            "birth_date"]


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory) -> Path:
    """A 300-person sample world, collected and integrated (built once for the module)."""
    from crm_helpers.sample import generate

    base = tmp_path_factory.mktemp("tiny-world")
    generate(base, customers=300, seed=11, progress=False)
    collect(base, base / "warehouse.duckdb", progress=False)
    integrate(base / "warehouse.duckdb", progress=False)
    return base


@pytest.fixture
def world(tiny_world, tmp_path) -> Path:
    """A copy of the tiny world that a test may change."""
    return Path(shutil.copytree(tiny_world, tmp_path / "world"))


def sql(base: Path, query: str, params=None) -> list[tuple]:
    """Query the world's warehouse (read only)."""
    with duckdb.connect(str(base / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(query, params).fetchall()


def crm(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``crm <args>`` with this checkout's package."""
    env = {k: v for k, v in os.environ.items() if k not in ("CRM_DATA_DIR", "CRM_WAREHOUSE")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "crm_helpers.cli", *args], check=False, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def texts(value) -> set[str]:
    """The ways a staged value is written: as is, and a date also as the exports write it."""
    if value is None or str(value).strip() == "":
        return set()
    if isinstance(value, date):
        return {value.isoformat(), value.strftime("%d/%m/%Y")}
    return {str(value).strip().lower()}


def person(base: Path) -> dict:
    """The customer with the most source records: id, record ids, and identifying values
    (``unique``: no one else has them; ``pairs``: shared values looked for together)."""
    customer_id, = sql(base, "SELECT customer_id FROM identity_map GROUP BY customer_id "
                             "ORDER BY count(*) DESC, customer_id LIMIT 1")[0]
    ids = sql(base, "SELECT source, source_record_id FROM identity_map WHERE customer_id = ?", [customer_id])
    cols = ", ".join(PERSONAL)
    std = cols.replace("full_name", "NULL AS full_name")  # standardised records have no full name
    mine = ("(source, source_record_id) IN (SELECT (source, source_record_id) FROM identity_map "
            "WHERE customer_id = $c)")
    own = sql(base, f"SELECT {cols} FROM stg_customer WHERE {mine} UNION ALL "
                    f"SELECT {std} FROM customer_record WHERE {mine}", {"c": customer_id})
    golden = dict(zip(PERSONAL, sql(base, f"SELECT {std} FROM dim_customer WHERE customer_id = ?",
                                    [customer_id])[0]))
    others = sql(base, f"SELECT {cols} FROM stg_customer WHERE NOT {mine} UNION ALL "
                       f"SELECT {std} FROM customer_record WHERE NOT {mine}", {"c": customer_id})
    theirs = {t for row in others for v in row for t in texts(v)}
    values = {t for row in own for v in [*row, *golden.values()] for t in texts(v)} | {r.lower() for _, r in ids}
    return {"customer_id": customer_id, "ids": ids, "unique": sorted(v for v in values - theirs if len(v) >= 4),
            "pairs": [(golden["first_name"], golden["last_name"]),
                      (golden["postcode"], golden["birth_date"] and golden["birth_date"].isoformat())]}


def table_texts(base: Path) -> dict[str, list[str]]:
    """Every row of every table of the warehouse, all its columns cast to text and joined, lower case."""
    with duckdb.connect(str(base / "warehouse.duckdb"), read_only=True) as con:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'main'").fetchall()]
        return {t: [r[0] for r in con.execute(
            f'SELECT lower(CAST(x AS VARCHAR)) FROM "{t}" AS x').fetchall()] for t in tables}


def word(value: str) -> re.Pattern:
    """A value as a whole word (so the surname Lee is not found in Leeds)."""
    return re.compile(r"(?<![a-z0-9])" + re.escape(value.lower()) + r"(?![a-z0-9])")


def traces(base: Path, who: dict) -> list[str]:
    """Where the person's identifying values are still found: 'table: value' (empty: no trace)."""
    found = []
    singles = [(v, word(v)) for v in who["unique"]]
    pairs = [(a, b, word(str(a)), word(str(b))) for a, b in who["pairs"] if a and b]
    for table, rows in table_texts(base).items():
        for row in rows:
            found += [f"{table}: {v}" for v, pattern in singles if pattern.search(row)]
            found += [f"{table}: {a} + {b}" for a, b, pa, pb in pairs if pa.search(row) and pb.search(row)]
    return sorted(set(found))


def assert_contracts_hold(base: Path) -> None:
    """Every contract of the warehouse holds on its current tables."""
    con = wh.connect(base / "warehouse.duckdb", read_only=True)
    try:
        results = contracts.check(con)
    finally:
        con.disconnect()
    assert (results.failures == 0).all(), results[results.failures > 0]


def test_the_person_is_found_before_forget(world):
    """The check can fail: before the erasure, the scan finds the person in staging, quarantine
    or raw lines and the star schema."""
    who = person(world)
    assert len(who["ids"]) >= 4 and len(who["unique"]) >= 5, who
    found = traces(world, who)
    assert {"stg_customer", "customer_record", "dim_customer"} <= {f.split(":")[0] for f in found}


def test_forget_leaves_no_trace_and_the_warehouse_balances(world):
    who = person(world)
    lines_before = sql(world, "SELECT count(*), sum(line_amount) FROM fact_order_line")[0]
    theirs = sql(world, "SELECT count(*), sum(line_amount) FROM fact_order_line WHERE customer_id = ?",
                 [who["customer_id"]])[0]
    result = crm("forget", str(who["customer_id"]), "--data", str(world), cwd=world)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith(f"forgot customer {who['customer_id']}: "
                                                       f"{len(who['ids'])} source records")

    assert traces(world, who) == []
    assert sql(world, "SELECT count(*) FROM dim_customer WHERE customer_id = ?", [who["customer_id"]]) == [(0,)]
    # the person's order lines are removed, the others' stay to the penny
    assert sql(world, "SELECT count(*), sum(line_amount) FROM fact_order_line")[0] == (
        lines_before[0] - theirs[0], lines_before[1] - theirs[1])
    assert_contracts_hold(world)
    recon = reconciliation(world / "warehouse.duckdb")
    assert recon.balanced.all(), recon[~recon.balanced]
    assert (recon.rows_read == recon.rows_loaded + recon.rows_quarantined + recon.rows_erased).all()

    # the log: when, who, how many rows per table, hashes of the records; nothing personal
    log = sql(world, "SELECT erasure_id, customer_id, table_name, rows_removed FROM erasure_log ORDER BY table_name")
    removed = {t: n for _, _, t, n in log}
    assert {e for e, *_ in log} == {1} and {c for _, c, *_ in log} == {str(who["customer_id"])}
    assert removed["dim_customer"] == 1 and removed["identity_map"] == len(who["ids"])
    assert removed["fact_order_line"] == theirs[0]
    assert sum(n for t, n in removed.items() if t.startswith("stg_customer")) >= 1
    assert recon.rows_erased.sum() >= removed["stg_customer"]
    hashes = sql(world, "SELECT record_hash FROM erased_record")
    assert len(hashes) >= len(who["ids"]) and all(re.fullmatch("[0-9a-f]{64}", h) for (h,) in hashes)
    logged = " ".join(str(v).lower() for row in sql(world, "SELECT * FROM erasure_log UNION ALL "
                                                          "SELECT *, NULL, NULL, NULL FROM erased_record")
                      for v in row)
    assert not [v for v in who["unique"] if word(v).search(logged)]


def raw_files_of(world: Path, who: dict) -> list[Path]:
    """The raw exports that hold one of the person's record ids."""
    ids = [word(r) for _, r in who["ids"]]
    return [p for p in sorted((world / "raw").rglob("*.*"))
            if any(i.search(p.read_text(encoding="latin-1").lower()) for i in ids)]


def test_a_re_read_file_does_not_bring_the_person_back(world):
    who = person(world)
    files = raw_files_of(world, who)
    assert len(files) >= 3
    assert crm("forget", str(who["customer_id"]), "--data", str(world), cwd=world).returncode == 0
    for path in files:  # a re-export: same rows, new content (one blank line more)
        path.write_bytes(path.read_bytes() + b"\n")
    audit = collect(world, world / "warehouse.duckdb", progress=False)
    rel = {p.relative_to(world / "raw").as_posix() for p in files}
    replaced = audit[audit.file.isin(rel)]
    assert (replaced.status == "replaced").all() and len(replaced) == len(files)
    assert (replaced.rows_erased > 0).all()
    assert (replaced.rows_read == replaced.rows_loaded + replaced.rows_quarantined + replaced.rows_erased).all()
    assert reconciliation(world / "warehouse.duckdb").balanced.all()
    assert traces(world, who) == []

    integrate(world / "warehouse.duckdb", progress=False)  # checks the contracts; fails if broken
    assert traces(world, who) == []
    assert_contracts_hold(world)


def test_integrate_after_forget_does_not_bring_the_person_back(world):
    who = person(world)
    customers = sql(world, "SELECT count(*) FROM dim_customer")[0][0]
    assert crm("forget", str(who["customer_id"]), "--data", str(world), cwd=world).returncode == 0
    summary = integrate(world / "warehouse.duckdb", progress=False)
    assert summary["customers"] == customers - 1
    assert traces(world, who) == []


def test_an_unknown_customer_is_one_error_line(world):
    result = crm("forget", "no-such-customer", "--data", str(world), cwd=world)
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: customer 'no-such-customer'"), result.stderr
    assert sql(world, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'erasure_log'") == [(0,)]


def test_a_failed_erasure_changes_nothing(world, monkeypatch):
    who = person(world)
    before = table_texts(world)

    def broken(*args):
        raise RuntimeError("disk full")
    monkeypatch.setattr(erasure, "_erase_warehouse_tables", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        erasure.forget(world / "warehouse.duckdb", str(who["customer_id"]))
    assert table_texts(world) == before


def add_quarantined_versions(world: Path, who: dict) -> None:
    """Give the person quarantined rows in the sample's files: a corrected re-export of their
    master record (the older version is superseded, its values kept as JSON), a till line with
    their card and quantity 0, and a truncated web order with their e-mail (malformed JSON)."""
    refs = dict(who["ids"])  # one id per source is enough
    raw = world / "raw"
    signups = next(p for p in sorted(raw.glob("crm_master/*.csv")) if refs["crm_master"] in p.read_text())
    line = next(x for x in signups.read_text().splitlines() if x.startswith(refs["crm_master"] + ","))
    fields = line.split(",")
    fields[5] = "99 Correction Row"  # street
    signups.write_text(signups.read_text() + ",".join(fields) + "\n")
    till = next(p for p in sorted(raw.glob("pos/pos_*.csv")) if refs["pos"] in p.read_text())
    till.write_text(till.read_text() + f"RQ9999999;1;06/01/2023 18:08:02;S001;{refs['pos']};BEA-PRE01;0;57.99;0\n")
    orders = next(p for p in sorted(raw.glob("webshop/*.jsonl")) if refs["webshop"] in p.read_text())
    orders.write_text(orders.read_text() + '{"order_id":"WQ999","line_no":1,"email":"'
                      + refs["webshop"].upper() + '","first_name":"X","quantity":1\n')


def test_forget_erases_quarantined_versions_and_lines(world):
    who = person(world)
    add_quarantined_versions(world, who)
    collect(world, world / "warehouse.duckdb", progress=False)
    refs = dict(who["ids"])
    mine = sql(world, "SELECT issue FROM quarantine WHERE record_key IN (?, 'RQ9999999:1') "
                      "OR (source = 'webshop' AND raw_record ILIKE '%' || ? || '%') ORDER BY issue",
               [refs["crm_master"], refs["webshop"]])
    assert mine == [("malformed JSON",), ("quantity: zero (a return is a negative quantity)",), ("superseded",)]
    who = person(world)  # now with the corrected street among their values
    assert "99 correction row" in who["unique"] and traces(world, who)
    quarantined = sql(world, "SELECT sum(rows_quarantined), sum(values_nulled) FROM load_audit")[0]

    removed = erasure.forget(world / "warehouse.duckdb", str(who["customer_id"]))
    assert removed["quarantine"] >= 3
    assert traces(world, who) == []
    assert sql(world, "SELECT sum(rows_quarantined) FROM load_audit")[0][0] == quarantined[0] - removed["quarantine"]
    recon = reconciliation(world / "warehouse.duckdb")
    assert recon.balanced.all(), recon[~recon.balanced]
    assert_contracts_hold(world)
