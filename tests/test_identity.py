"""Identity resolution adapts to the identifiers that exist, and falls back to exact matching."""

import shutil
import textwrap

import pandas as pd
import pytest

from crm_helpers import truth
from crm_helpers import warehouse as wh
from crm_helpers.data.collect import collect
from crm_helpers.information import identity, integrate


def _records(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    frame = pd.DataFrame({c: [None] * n for c in identity.IDENTIFIERS}, dtype="string")
    for column, values in columns.items():
        frame[column] = pd.array(values, dtype="string")
    return frame


def _clusters(clusters: pd.DataFrame) -> list[set]:
    """The clusters as sets of unique_ids, sorted, so different labels compare equal."""
    return sorted((set(g.unique_id) for _, g in clusters.groupby("cluster_id")), key=min)


def test_rules_and_comparisons_leave_out_empty_columns():
    records = _records(unique_id=["a", "b"], first_name=["anna", "ann"], last_name=["lee", "lee"],
                       email=["anna@lee.fr", None])
    present = identity.identifiers_present(records)
    settings = identity.splink_settings(present).create_settings_dict("duckdb")
    assert present == ["first_name", "last_name", "email"]
    assert [c["output_column_name"] for c in settings["comparisons"]] == ["first_name", "last_name", "email"]
    assert [b["blocking_rule"] for b in settings["blocking_rules_to_generate_predictions"]] == ['l."email" = r."email"']
    full = identity.splink_settings(list(identity.IDENTIFIERS)).create_settings_dict("duckdb")
    assert len(full["comparisons"]) == 6 and len(full["blocking_rules_to_generate_predictions"]) == 6


def test_name_comparisons_know_nicknames_initials_and_common_names():
    names = pd.Series(["bill", "william", "liz", "peggy", "zoe", None], dtype="string")
    assert identity.first_name_key(names).tolist()[:5] == ["william", "william", "elizabeth", "margaret", "zoe"]
    full = identity.splink_settings(list(identity.IDENTIFIERS)).create_settings_dict("duckdb")
    first = next(c for c in full["comparisons"] if c["output_column_name"] == "first_name")
    labels = [level.get("label_for_charts") for level in first["comparison_levels"]]
    assert {"nickname", "initial", "names swapped"} <= set(labels)
    exact = first["comparison_levels"][1]
    assert exact["tf_adjustment_column"] == "first_name"  # common first names weigh less
    birth = next(c for c in full["comparisons"] if c["output_column_name"] == "birth_date")
    assert "day and month swapped" in [level.get("label_for_charts") for level in birth["comparison_levels"]]


def test_the_household_rule_needs_personal_agreement():
    # gamma levels: -1 missing, 0 different, > 0 agreement
    pairs = pd.DataFrame({
        "gamma_first_name": [4, 0, 0, 4, 4, -1, 4],
        "gamma_birth_date": [-1, -1, 2, 0, -1, -1, -1],
        "gamma_phone": [2, 2, 2, 2, 0, 2, 0],
        "gamma_email": [-1, 4, -1, -1, -1, -1, 4],
    })
    # same name; partners (other first name, shared phone and e-mail); other first name but same
    # birth date; namesakes born apart; namesakes with their own phones; no first name; same name
    # and e-mail with another phone
    assert identity.household_rule(pairs).tolist() == [True, False, True, False, False, True, True]


def test_baselines_and_pairwise_quality_in_the_engine():
    import ibis

    records = ibis.memtable(pd.DataFrame({
        "source": ["m", "m", "m", "w", "w"], "source_record_id": ["1", "2", "3", "a", "b"],
        "first_name": ["ann", "ann", "bob", "ann", "ann"], "last_name": ["lee"] * 5,
        "postcode": ["X1", "X1", "X1", "X1", None], "email": ["a@x", None, "a@x", "a@x", "n@x"]}))
    truth_ = ibis.memtable(pd.DataFrame({"source": ["m", "m", "m", "w", "w"],
                                         "source_record_id": ["1", "2", "3", "a", "b"],
                                         "person_id": ["P1", "P1", "P2", "P1", "P1"]}))
    email = identity.pairwise_quality(identity.baseline_links(records, ("email",)), truth_)
    # true pairs: P1 has 4 records -> 6; e-mail links {1, 3, a}: 3 pairs, 1 right (1-a)
    assert (email["true_pairs"], email["predicted_pairs"], email["correct_pairs"]) == (6, 3, 1)
    name = identity.pairwise_quality(identity.baseline_links(records, identity.BASELINES["Exact name + postcode"]), truth_)
    assert (name["predicted_pairs"], name["correct_pairs"]) == (3, 3)  # {1, 2, a}; b has no postcode
    assert name["precision"] == 1.0 and name["recall"] == 0.5


def test_too_few_records_are_matched_exactly_and_the_log_says_why():
    records = _records(unique_id=["a:1", "a:2", "b:1", "b:2", "c:1"],
                       first_name=["marie", "jean", "marie", "jean", "paul"],
                       last_name=["dubois", "roux", "dubois", "roux", "roux"],
                       email=["marie@orange.fr", None, "marie@orange.fr", None, None],
                       phone=[None, "+33612345678", None, "+33612345678", None])
    clusters, method = identity.resolve_identities(records, threshold=0.9, seed=1)
    assert _clusters(clusters) == [{"a:1", "b:1"}, {"a:2", "b:2"}, {"c:1"}]
    assert method.startswith("deterministic matching (exact email; exact phone)")
    assert "5 records, fewer than the 500 a model needs" in method


def test_a_placeholder_shared_by_many_records_links_nobody():
    n = identity.MAX_RECORDS_PER_KEY + 1
    records = _records(unique_id=[f"s:{i}" for i in range(n)], phone=["+440000000000"] * n)
    clusters = identity.exact_match_clusters(records, [("phone",)])
    assert clusters.cluster_id.nunique() == n


def test_records_with_only_an_id_are_each_their_own_customer():
    records = _records(unique_id=["c:1", "c:2", "c:3"])
    clusters, method = identity.resolve_identities(records)
    assert clusters.cluster_id.nunique() == 3
    assert "no identifier to match on" in method


# --- small shops through collect and integrate ----------------------------------------------------

SHOP = """\
settings:
  organisation: Épicerie test
  currency: EUR
  country: FR
  timezone: Europe/Paris
  locale: fr_FR
sources:
  clients:
    role: customer_master
    priority: 1
    files: clients.csv
    delimiter: ";"
    date_format: "%d/%m/%Y"
    tables:
      customer:
{client_columns}
  boutique:
    priority: 2
    files: boutique.csv
    delimiter: ";"
    timestamp_format: "%d/%m/%Y %H:%M"
    tables:
      order_line:
        order_id: commande
        line_no: ligne
        order_ts: date
        customer_ref: {{expr: "lower(trim(email))", uses: [email]}}
        store_id: {{value: WEB}}
        channel: {{value: web}}
        sku: article
        quantity: quantite
        unit_price: prix
        line_amount: {{expr: "quantite * prix", uses: [quantite, prix]}}
      customer:
        source_record_id: {{expr: "lower(trim(email))", uses: [email]}}
{shop_columns}
"""


def _integrate_shop(tmp_path, monkeypatch, client_columns: dict, clients: str, shop_columns: dict,
                    orders: str) -> wh.BaseBackend:
    """Collect and integrate a two-file shop (a client list and web orders) declared in FR."""
    def mapping(columns):
        return "\n".join(f"        {k}: {v}" for k, v in columns.items())

    (tmp_path / "raw").mkdir()
    (tmp_path / "sources.yml").write_text(SHOP.format(client_columns=mapping(client_columns),
                                                      shop_columns=mapping(shop_columns)), encoding="utf-8")
    (tmp_path / "raw" / "clients.csv").write_text(textwrap.dedent(clients), encoding="utf-8")
    (tmp_path / "raw" / "boutique.csv").write_text(textwrap.dedent(orders), encoding="utf-8")
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    collect(tmp_path, tmp_path / "warehouse.duckdb", progress=False)
    integrate.integrate(tmp_path / "warehouse.duckdb", progress=False)
    return wh.connect(tmp_path / "warehouse.duckdb", read_only=True)


ORDERS = """\
    commande;ligne;date;email;prenom;nom;telephone;article;quantite;prix
    W1;1;03/03/2025 10:00;Marie.Dubois@orange.fr ;Marie;Dubois;+33 6 39 98 00 01;CAFE;2;8.90
    W2;1;04/03/2025 11:30;jean.roux@free.fr;Jean;Roux;06 39 98 00 02;THE;1;6.20
    W3;1;05/03/2025 17:45;nouveau@gmail.com;Léa;Petit;;CAFE;1;8.90
"""


def test_a_shop_with_only_emails_and_names_integrates(tmp_path, monkeypatch):
    con = _integrate_shop(
        tmp_path, monkeypatch,
        {"source_record_id": "code", "first_name": "prenom", "last_name": "nom", "email": "email"},
        """\
        code;prenom;nom;email
        C1;Marie;Dubois;marie.dubois@orange.fr
        C2;Jean;Roux;JEAN.ROUX@free.fr
        C3;Paul;Martin;
        """,
        {"first_name": "prenom", "last_name": "nom", "email": "email"}, ORDERS)
    customers = con.table("dim_customer").to_pandas().set_index("email")
    facts = con.table("fact_order_line").to_pandas().set_index("order_id")
    log = con.table("integration_log").to_pandas().set_index("step")
    con.disconnect()
    assert len(customers) == 4  # C1 + web Marie, C2 + web Jean, C3, the new web customer
    assert customers.loc["marie.dubois@orange.fr", "sources"] == "boutique,clients"
    assert customers.loc["jean.roux@free.fr", "first_name"] == "jean"
    assert facts.loc["W1", "customer_id"] == customers.loc["marie.dubois@orange.fr", "customer_id"]
    assert facts.loc["W3", "customer_id"] == customers.loc["nouveau@gmail.com", "customer_id"]
    assert log.loc["identity resolution", "reason"].startswith("deterministic matching (exact email)")
    assert log.loc["identity resolution", ["rows_in", "rows_out"]].tolist() == [6, 4]


def test_french_phones_become_e164_and_match_across_spellings(tmp_path, monkeypatch):
    con = _integrate_shop(
        tmp_path, monkeypatch,
        {"source_record_id": "code", "first_name": "prenom", "last_name": "nom", "phone": "tel"},
        """\
        code;prenom;nom;tel
        C1;Marie;Dubois;06 39 98 00 01
        C2;Jean;Roux;0033 6 39 98 00 02
        C3;Paul;Martin;12
        """,
        {"first_name": "prenom", "last_name": "nom", "phone": "telephone"}, ORDERS)
    customers = con.table("dim_customer").to_pandas()
    log = con.table("integration_log").to_pandas().set_index("step")
    con.disconnect()
    by_name = customers.set_index("last_name")
    assert by_name.loc["dubois", "phone"] == "+33639980001" and by_name.loc["roux", "phone"] == "+33639980002"
    assert by_name.loc["dubois", "sources"] == "boutique,clients"
    assert pd.isna(by_name.loc["martin", "phone"])  # "12" is no phone number
    assert len(customers) == 4
    assert "exact phone" in log.loc["identity resolution", "reason"]


def test_a_client_list_with_only_customer_codes_integrates(tmp_path, monkeypatch):
    con = _integrate_shop(
        tmp_path, monkeypatch, {"source_record_id": "code"},
        """\
        code
        C1
        C2
        """,
        {"first_name": "prenom"}, ORDERS)
    identity_map = con.table("identity_map").to_pandas()
    log = con.table("integration_log").to_pandas().set_index("step")
    con.disconnect()
    assert identity_map.customer_id.nunique() == 5  # 2 codes + 3 web customers, nothing in common
    assert "deterministic matching" in log.loc["identity resolution", "reason"]


# --- the sample world without phones, postcodes or birth dates --------------------------------------

@pytest.fixture(scope="module")
def emails_and_names_only(small_warehouse, tmp_path_factory):
    """The small sample with every identifier but names and e-mail blanked in staging, integrated."""
    path = tmp_path_factory.mktemp("emails-and-names") / "warehouse.duckdb"
    shutil.copy(small_warehouse, path)
    con = wh.connect(path)
    con.raw_sql("UPDATE stg_customer SET phone = NULL, postcode = NULL, birth_date = NULL, street = NULL")
    con.disconnect()
    integrate.integrate(path, progress=False)
    return path


def test_splink_trains_on_emails_and_names_alone(emails_and_names_only, small_truth_dir):
    con = wh.connect(emails_and_names_only, read_only=True)
    report = truth.identity_report(con, small_truth_dir)
    log = con.table("integration_log").to_pandas().set_index("step")
    con.disconnect()
    assert log.loc["identity resolution", "reason"].startswith("Splink model on first_name, last_name, email:")
    splink, email = report.loc["Splink"], report.loc["E-mail only"]
    # without phones and postcodes, records without an e-mail have nothing to be found by:
    # the model is as good as e-mail matching, and no worse in precision
    assert splink.precision >= 0.99, report
    assert splink.recall >= email.recall - 0.01, report
