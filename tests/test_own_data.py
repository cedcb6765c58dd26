"""Bring your own data: the README's French example, loaded with `crm collect` and integrated.

The example (``data/examples/epicerie_lyon``) is a small Lyon delicatessen's two exports: a client
list and a month of till sales, with semicolons, comma decimals, day-first dates without time,
oui/non consent flags, French phone numbers, no postcode, a client listed twice, and sales
without line numbers, unit prices or product codes. Every expected figure below is counted by
hand from those two files.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from crm_helpers import warehouse
from crm_helpers.cli import app

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "epicerie_lyon"
# The month's sales by product: net quantity sold (one coffee returned) x shelf price. The
# voided "Sac kraft" line has no amount and is quarantined.
SOLD = {"Café Éthiopie Sidamo 250 g": (12, "8.90"), "Café Colombie Huila 250 g": (6, "7.50"),
        "Thé vert Sencha 100 g": (6, "6.20"), "Moulin à café manuel": (2, "34.90"),
        "Machine espresso Rocket Appartamento": (1, "1249.00"),
        "Chocolat noir 70 % 100 g": (10, "4.35"), "Confiture d'abricot 350 g": (6, "5.80"),
        "Huile d'olive vierge extra 50 cl": (5, "12.40"), "Panier garni Fêtes": (3, "45.00")}


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """A copy of the example, collected through the `crm collect` command line."""
    base = tmp_path_factory.mktemp("epicerie") / "epicerie_lyon"
    shutil.copytree(EXAMPLE, base, ignore=shutil.ignore_patterns("*.duckdb*"))
    with pytest.MonkeyPatch.context() as mp:  # the command exports its paths: undo afterwards
        mp.delenv("CRM_DATA_DIR", raising=False)
        mp.delenv("CRM_WAREHOUSE", raising=False)
        result = CliRunner().invoke(app, ["collect", "--data", str(base),
                                          "--warehouse", str(base / "warehouse.duckdb")])
    assert result.exit_code == 0, result.output
    return base


def sql(base: Path, query: str) -> list[tuple]:
    """Query the example's warehouse."""
    with duckdb.connect(str(base / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(query).fetchall()


def test_every_row_is_accounted_for(shop):
    audit = sql(shop, "SELECT source, rows_read, rows_loaded, rows_quarantined, values_nulled "
                      "FROM load_audit ORDER BY source")
    assert audit == [("caisse", 40, 39, 1, 0), ("clients", 30, 29, 1, 0)]
    assert sql(shop, "SELECT source, record_no, reason FROM quarantine ORDER BY source") == [
        ("caisse", 34, "line_amount: missing required value; "
                       "unit_price: cannot be derived (line_amount / quantity)"),
        ("clients", 27, "source_record_id: missing required value")]


def test_amounts_to_the_cent(shop):
    expected = sum(q * Decimal(price) for q, price in SOLD.values())
    assert expected == Decimal("1783.10")
    assert sql(shop, "SELECT sum(line_amount) FROM stg_order_line") == [(expected,)]
    # '1 249,00' is one thousand two hundred and forty-nine euros
    assert sql(shop, "SELECT max(line_amount) FROM stg_order_line") == [(Decimal("1249.00"),)]
    by_product = dict(sql(shop, "SELECT sku, sum(quantity) FROM stg_order_line GROUP BY sku"))
    assert by_product == {name: q for name, (q, _) in SOLD.items()}


def test_line_numbers_and_unit_prices_are_derived_and_said(shop):
    assert sql(shop, "SELECT line_no, quantity, unit_price, line_amount FROM stg_order_line "
                     "WHERE order_id = 'T250322-001' ORDER BY line_no") == [
        (1, 1, Decimal("8.90"), Decimal("8.90")), (2, 1, Decimal("7.50"), Decimal("7.50")),
        (3, 1, Decimal("6.20"), Decimal("6.20"))]
    assert sql(shop, "SELECT quantity, unit_price, line_amount FROM stg_order_line "
                     "WHERE order_id = 'T250319-001'") == [(-1, Decimal("8.90"), Decimal("-8.90"))]
    assert sql(shop, "SELECT count(DISTINCT (order_id, line_no)), count(*) FROM stg_order_line"
               ) == [(39, 39)]
    assert sql(shop, "SELECT derived FROM load_audit WHERE source = 'caisse'") == [(
        "line_no = position of the line within its order in the file; "
        "sku = product_name (the description is the product key); "
        "unit_price = line_amount / quantity",)]


def test_consent_flags_are_read_from_oui_and_non(shop):
    assert sql(shop, "SELECT count(*), count(email_opt_in), count(*) FILTER (email_opt_in), "
                     "count(sms_opt_in), count(*) FILTER (sms_opt_in) FROM stg_customer") == [
        (29, 29, 18, 29, 8)]


def test_dates_stay_on_their_day(shop):
    days = dict(sql(shop, "SELECT order_id, order_ts FROM stg_order_line "
                          "WHERE order_id IN ('T250301-001', 'T250331-002')"))
    assert days == {"T250301-001": datetime(2025, 3, 1), "T250331-002": datetime(2025, 3, 31)}
    assert sql(shop, "SELECT birth_date, signup_ts FROM stg_customer "
                     "WHERE source_record_id = 'C0029'") == [(date(1979, 2, 14),
                                                               datetime(2024, 3, 6))]


def test_the_declarations_reach_the_warehouse(shop):
    con = warehouse.connect(shop / "warehouse.duckdb", read_only=True)
    try:
        settings, roles = warehouse.settings(con), warehouse.source_roles(con)
    finally:
        con.disconnect()
    assert (settings.currency, settings.country, settings.timezone) == ("EUR", "FR", "Europe/Paris")
    assert settings.currency_symbol == "€"
    assert settings.organisation == "Épicerie du Marché, Lyon"
    assert roles.to_dict("records") == [
        {"source": "clients", "role": "customer_master", "priority": 1, "country": "FR"},
        {"source": "caisse", "role": None, "priority": 2, "country": "FR"}]


@pytest.fixture(scope="module")
def integrated(shop, tmp_path_factory) -> Path:
    """A copy of the collected example's warehouse after `crm integrate`."""
    wh = tmp_path_factory.mktemp("epicerie-integrated") / "warehouse.duckdb"
    shutil.copy(shop / "warehouse.duckdb", wh)
    result = CliRunner().invoke(app, ["integrate", "--data", str(shop), "--warehouse", str(wh)])
    assert result.exit_code == 0, result.output
    return wh


def test_the_client_listed_twice_is_one_customer(integrated):
    wh = integrated
    with duckdb.connect(str(wh), read_only=True) as con:
        ids = dict(con.execute("SELECT source_record_id, customer_id FROM identity_map "
                               "WHERE source = 'clients'").fetchall())
        customers = con.execute("SELECT count(*) FROM dim_customer").fetchone()[0]
        carded = con.execute("SELECT count(*) FROM fact_order_line WHERE customer_id IS NOT NULL"
                             ).fetchone()[0]
    assert ids["C0001"] == ids["C0029"]  # Marie Dubois signed up twice
    assert len(set(ids.values())) == 28 == customers  # 29 records, one person twice
    # same family name, different people: not merged
    assert ids["C0007"] != ids["C0027"] and ids["C0010"] != ids["C0030"]
    assert carded == 32  # every receipt line with a loyalty card reaches its client


def test_the_rendered_report_speaks_euros(shop, integrated, tmp_path):
    """Notebook 03 on the shop's warehouse: every money figure in euros, none in pounds."""
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["notebooks", "--only", "03", "--data", str(shop),
                                      "--warehouse", str(integrated), "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = (out / "03_information.html").read_text(encoding="utf-8")
    assert html.count("€") >= 5 and "£" not in html
