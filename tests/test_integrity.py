"""The row side of the fault battery: integrity rules (RULES) checked by collect.

Each case writes a small raw folder (till lines, web orders), collects it and asserts the
numbers: what is in staging, what is in quarantine with which reason, revenue to the cent, and
every file balancing (rows_read = rows_loaded + rows_quarantined).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml

from crm_helpers import config
from crm_helpers import warehouse as wh
from crm_helpers.data.collect import collect
from crm_helpers.data.quality import reconciliation
from crm_helpers.data.sources import SourceError, load_sources
from crm_helpers.information.standardise import distinct_order_lines

POS = "pos/pos_2024-07.csv"
POS_FIX = "pos/pos_2024-07_corrected.csv"
POS_HEADER = "receipt_no;line_no;sold_at;store_id;loyalty_card;sku;qty;unit_price;line_total"
WEB = "webshop/orders_2024-07.jsonl"
WEB_FIX = "webshop/orders_2024-07_corrected.jsonl"


def till(receipt, line_no, qty, price, total, sku="P001"):
    """One till line (semicolon CSV)."""
    return f"{receipt};{line_no};15/07/2024 10:11:12;S001;;{sku};{qty};{price};{total}"


def web(order_id, line_no, quantity=2, unit_price=19.99, city="London"):
    """One web-shop JSON line."""
    return json.dumps({"order_id": order_id, "line_no": line_no,
                       "created_at": "2024-07-03T08:00:00Z", "email": "ann@example.com",
                       "first_name": "Ann", "last_name": "Lee", "phone": "07700 900001",
                       "street": "1 High St", "postcode": "NW1 1AA", "city": city,
                       "marketing_opt_in": True, "sku": "P001", "quantity": quantity,
                       "unit_price": unit_price})


@pytest.fixture
def base(tmp_path):
    """A data folder declaring only the sample's pos and webshop sources."""
    doc = yaml.safe_load(config.SAMPLE_SOURCES_YML.read_text())
    doc["sources"] = {k: doc["sources"][k] for k in ("pos", "webshop")}
    (tmp_path / "sources.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    write(tmp_path, WEB, [web("W0", 1)])
    return tmp_path


def write(base: Path, rel: str, lines: list[str]) -> None:
    """Write a raw file (a CSV header is the caller's first line)."""
    path = base / "raw" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def run(base: Path):
    """Collect the folder; return this run's audit rows."""
    return collect(base, base / "warehouse.duckdb", progress=False)


def sql(base: Path, query: str, params=None) -> list[tuple]:
    """Query the test warehouse."""
    with duckdb.connect(str(base / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(query, params).fetchall()


def revenue(base: Path, source: str = "pos") -> Decimal:
    """Sum of staged line amounts of a source."""
    return sql(base, "SELECT coalesce(sum(line_amount), 0) FROM stg_order_line WHERE source = ?",
               [source])[0][0]


def quarantined(base: Path, source: str = "pos") -> list[tuple]:
    """(file, record_no, record_key, issue, reason) of a source's quarantined records."""
    return sql(base, "SELECT file, record_no, record_key, issue, reason FROM quarantine "
                     "WHERE source = ? ORDER BY file, record_no", [source])


def audit(base: Path, source: str = "pos") -> list[tuple]:
    """(file, rows_read, rows_loaded, rows_quarantined) per file of a source."""
    return sql(base, "SELECT file, rows_read, rows_loaded, rows_quarantined FROM load_audit "
                     "WHERE source = ? ORDER BY file", [source])


def assert_balanced(base: Path) -> None:
    """Every file: audit = what staging and quarantine hold, and read = loaded + quarantined."""
    recon = reconciliation(base / "warehouse.duckdb")
    assert recon.balanced.all(), recon[~recon.balanced]


def test_row_rules_quarantine_negative_price_zero_quantity_and_amount_mismatch(base):
    write(base, POS, [POS_HEADER,
                      till("R1", 1, 2, "19.99", "39.98"),
                      till("R2", 1, -1, "59.00", "-59.00"),   # a return: loads
                      till("R3", 1, 1, "-5.00", "-5.00"),     # negative price
                      till("R4", 1, 0, "19.99", "0.00"),      # quantity 0
                      till("R5", 1, 2, "19.99", "45.00"),     # amount mismatch
                      till("R6", 1, 3, "3.33", "10.00")])     # a cent of rounding: loads
    run(base)
    assert sql(base, "SELECT order_id, quantity, unit_price FROM stg_order_line "
                     "WHERE source = 'pos' ORDER BY order_id") == [
        ("R1", 2, Decimal("19.99")), ("R2", -1, Decimal("59.00")), ("R6", 3, Decimal("3.33"))]
    assert revenue(base) == Decimal("-9.02")  # 39.98 - 59.00 + 10.00
    assert [(n, key, issue) for _, n, key, issue, _ in quarantined(base)] == [
        (4, "R3:1", "unit_price: negative (a return is a negative quantity, not a negative price)"),
        (5, "R4:1", "quantity: zero (a return is a negative quantity)"),
        (6, "R5:1", "line_amount: not quantity x unit_price (within 0.01)")]
    reasons = [r[-1] for r in quarantined(base)]
    assert reasons[0].endswith("(unit_price=-5.00)")
    assert reasons[1].endswith("(quantity=0)")
    assert reasons[2].endswith("(quantity=2, unit_price=19.99, line_amount=45.00)")
    assert audit(base) == [(POS, 6, 3, 3)]
    assert_balanced(base)


def test_a_declared_amount_tolerance_loads_a_net_of_discount_line(base):
    doc = yaml.safe_load((base / "sources.yml").read_text())
    doc["sources"]["pos"]["amount_tolerance"] = 5
    (base / "sources.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    write(base, POS, [POS_HEADER, till("R1", 1, 2, "19.99", "36.00"),   # 3.98 off: loads
                      till("R2", 1, 2, "19.99", "30.00")])              # 9.98 off: quarantined
    run(base)
    assert revenue(base) == Decimal("36.00")
    assert [q[3] for q in quarantined(base)] == [
        "line_amount: not quantity x unit_price (within 5)"]
    assert_balanced(base)


@pytest.mark.parametrize("value", [-1, "a lot", True])
def test_a_bad_amount_tolerance_names_the_key(base, value):
    doc = yaml.safe_load((base / "sources.yml").read_text())
    doc["sources"]["pos"]["amount_tolerance"] = value
    (base / "sources.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(SourceError, match="amount_tolerance") as err:
        load_sources(base / "sources.yml")
    assert (err.value.source, err.value.column) == ("pos", "amount_tolerance")


def test_a_derived_unit_price_is_not_checked_against_the_amount(base):
    doc = yaml.safe_load((base / "sources.yml").read_text())
    del doc["sources"]["pos"]["tables"]["order_line"]["unit_price"]
    (base / "sources.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    write(base, POS, [POS_HEADER, till("R1", 1, 30, "", "10.00")])  # 10.00 / 30 -> 0.33
    run(base)
    assert sql(base, "SELECT unit_price, line_amount FROM stg_order_line WHERE source = 'pos'") \
        == [(Decimal("0.33"), Decimal("10.00"))]


def test_a_conflicting_duplicate_in_one_file_keeps_the_last_line(base):
    write(base, POS, [POS_HEADER,
                      till("R1", 1, 2, "19.99", "39.98"),
                      till("R1", 2, 1, "29.99", "29.99"),
                      till("R1", 1, 1, "19.99", "19.99")])   # the till's correction of line 1
    run(base)
    assert revenue(base) == Decimal("49.98")  # not 89.96
    assert quarantined(base) == [(POS, 2, "R1:1", "superseded", f"superseded by {POS}:4")]
    assert audit(base) == [(POS, 3, 2, 1)]
    assert_balanced(base)


def test_a_corrected_re_export_supersedes_the_old_file_and_both_balance(base):
    write(base, POS, [POS_HEADER, till("R1", 1, 2, "19.99", "39.98"),
                      till("R1", 2, 1, "29.99", "29.99"), till("R2", 1, 1, "59.00", "59.00")])
    run(base)
    assert revenue(base) == Decimal("128.97")
    write(base, POS_FIX, [POS_HEADER, till("R1", 1, 1, "19.99", "19.99"),   # corrected
                          till("R2", 1, 1, "59.00", "59.00")])              # same values
    run(base)
    # R1:1 counted once, the corrected version; R2:1 is an exact duplicate, kept for integrate.
    assert revenue(base) == Decimal("128.97") - Decimal("39.98") + Decimal("19.99") \
        + Decimal("59.00")
    assert quarantined(base) == [(POS, 2, "R1:1", "superseded", f"superseded by {POS_FIX}:2")]
    assert audit(base) == [(POS, 3, 2, 1), (POS_FIX, 2, 2, 0)]
    assert_balanced(base)
    backend = wh.connect(base / "warehouse.duckdb", read_only=True)
    try:  # integrate's exact-duplicate removal leaves R2:1 once: revenue counted once
        lines = distinct_order_lines(backend).filter(lambda t: t.source == "pos").execute()
    finally:
        backend.disconnect()
    assert sorted(lines.order_id + ":" + lines.line_no.astype(str)) == ["R1:1", "R1:2", "R2:1"]
    assert lines.line_amount.sum() == Decimal("19.99") + Decimal("29.99") + Decimal("59.00")


def test_an_older_file_reloaded_after_its_correction_stays_superseded(base):
    write(base, POS, [POS_HEADER, till("R1", 1, 2, "19.99", "39.98")])
    write(base, POS_FIX, [POS_HEADER, till("R1", 1, 1, "19.99", "19.99")])
    run(base)
    write(base, POS, [POS_HEADER, till("R1", 1, 3, "19.99", "59.97"),
                      till("R9", 1, 1, "5.00", "5.00")])
    assert run(base).set_index("file").loc[POS, "status"] == "replaced"
    assert revenue(base) == Decimal("24.99")
    assert [q[:2] + q[-1:] for q in quarantined(base)] == [(POS, 2, f"superseded by {POS_FIX}:2")]
    assert audit(base) == [(POS, 2, 1, 1), (POS_FIX, 1, 1, 0)]
    assert_balanced(base)


def test_a_superseded_line_comes_back_when_its_correction_is_withdrawn(base):
    write(base, POS, [POS_HEADER, till("R1", 1, 2, "19.99", "39.98")])
    write(base, POS_FIX, [POS_HEADER, till("R1", 1, 1, "19.99", "19.99")])
    run(base)
    assert audit(base) == [(POS, 1, 0, 1), (POS_FIX, 1, 1, 0)]
    write(base, POS_FIX, [POS_HEADER, till("R7", 1, 1, "5.00", "5.00")])  # re-exported again
    run(base)
    assert revenue(base) == Decimal("44.98")
    assert quarantined(base) == []
    assert sql(base, "SELECT order_ts, quantity, unit_price, line_amount FROM stg_order_line "
                     "WHERE order_id = 'R1'")[0][1:] == (2, Decimal("19.99"), Decimal("39.98"))
    assert audit(base) == [(POS, 1, 1, 0), (POS_FIX, 1, 1, 0)]
    assert_balanced(base)


def test_a_pruned_correction_brings_the_superseded_line_back(base):
    write(base, POS, [POS_HEADER, till("R1", 1, 2, "19.99", "39.98")])
    write(base, POS_FIX, [POS_HEADER, till("R1", 1, 1, "19.99", "19.99")])
    run(base)
    (base / "raw" / POS_FIX).unlink()
    statuses = collect(base, base / "warehouse.duckdb", progress=False, prune=True)
    assert statuses.set_index("file").loc[POS_FIX, "status"] == "pruned"
    assert revenue(base) == Decimal("39.98")
    assert quarantined(base) == []
    assert audit(base) == [(POS, 1, 1, 0), (POS_FIX, 0, 0, 0)]
    assert_balanced(base)


def test_a_superseded_web_record_leaves_every_table_it_fed(base):
    write(base, POS, [POS_HEADER])
    write(base, WEB, [web("W1", 1), web("W1", 2, quantity=1)])
    write(base, WEB_FIX, [web("W1", 1, quantity=1, city="Leeds")])
    run(base)
    assert revenue(base, "webshop") == Decimal("39.98")
    assert sql(base, "SELECT file, record_no FROM stg_customer ORDER BY file, record_no") == [
        (WEB, 2), (WEB_FIX, 1)]
    assert [q[:4] for q in quarantined(base, "webshop")] == [(WEB, 1, "W1:1", "superseded")]
    assert audit(base, "webshop") == [(WEB, 2, 1, 1), (WEB_FIX, 1, 1, 0)]
    assert_balanced(base)
    write(base, WEB_FIX, [web("W2", 1)])  # the correction withdrawn: both tables get W1:1 back
    run(base)
    assert sql(base, "SELECT file, record_no, city FROM stg_customer ORDER BY file, record_no") \
        == [(WEB, 1, "London"), (WEB, 2, "London"), (WEB_FIX, 1, "London")]
    assert revenue(base, "webshop") == Decimal("39.98") + Decimal("19.99") + Decimal("39.98")
    assert_balanced(base)


def test_exact_duplicates_stay_in_staging(base):
    write(base, POS, [POS_HEADER, till("R1", 1, 2, "19.99", "39.98"),
                      till("R1", 1, 2, "19.99", "39.98")])
    run(base)
    assert audit(base) == [(POS, 2, 2, 0)]
    assert quarantined(base) == []


def test_a_superseded_line_whose_values_were_erased_stays_quarantined(base):
    write(base, POS, [POS_HEADER, till("R1", 1, 2, "19.99", "39.98")])
    write(base, POS_FIX, [POS_HEADER, till("R1", 1, 1, "19.99", "19.99")])
    run(base)
    with duckdb.connect(str(base / "warehouse.duckdb")) as con:  # as a retention rule would
        con.execute("UPDATE quarantine SET raw_record = NULL")
    write(base, POS_FIX, [POS_HEADER, till("R7", 1, 1, "5.00", "5.00")])
    run(base)
    assert revenue(base) == Decimal("5.00")
    assert [q[3] for q in quarantined(base)] == ["superseded"]
    assert audit(base) == [(POS, 1, 0, 1), (POS_FIX, 1, 1, 0)]
    assert_balanced(base)


def test_quarantine_keeps_raw_lines_only_for_the_retention_period(base):
    write(base, POS, [POS_HEADER, till("R1", 1, 0, "19.99", "0.00"), till("R2", 1, 1, "5.00", "5.00")])
    run(base)
    assert sql(base, "SELECT count(raw_record) FROM quarantine")[0][0] == 1
    with duckdb.connect(str(base / "warehouse.duckdb")) as con:  # quarantined 91 days ago
        con.execute("UPDATE quarantine SET loaded_at = loaded_at - INTERVAL 91 DAY")
    run(base)  # nothing new to load; the retention rule still applies
    assert sql(base, "SELECT count(*), count(raw_record), min(reason) FROM quarantine") == [
        (1, 0, "quantity: zero (a return is a negative quantity) (quantity=0)")]
    assert_balanced(base)


def test_a_superseded_record_takes_its_value_issues_with_it(base):
    def nulled():  # value issues held, and the audit's count of them, per web file
        return (sql(base, "SELECT file, record_no, column_name FROM value_issue ORDER BY ALL"),
                sql(base, "SELECT file, values_nulled FROM load_audit WHERE source = 'webshop' "
                          "ORDER BY file"))
    write(base, POS, [POS_HEADER])
    unsure = json.loads(web("W1", 1)) | {"marketing_opt_in": "maybe"}  # loaded as NULL, noted
    write(base, WEB, [json.dumps(unsure), web("W1", 2)])
    run(base)
    assert nulled() == ([(WEB, 1, "email_opt_in")], [(WEB, 1)])
    write(base, WEB_FIX, [web("W1", 1, quantity=1)])  # the correction supersedes line 1
    run(base)
    assert nulled() == ([], [(WEB, 0), (WEB_FIX, 0)])  # not loaded: nothing set aside
    assert [q[:4] for q in quarantined(base, "webshop")] == [(WEB, 1, "W1:1", "superseded")]
    assert_balanced(base)
    write(base, WEB_FIX, [web("W2", 1)])  # the correction withdrawn: line 1 back, with its issue
    run(base)
    assert nulled() == ([(WEB, 1, "email_opt_in")], [(WEB, 1), (WEB_FIX, 0)])
    assert quarantined(base, "webshop") == []
    assert_balanced(base)
