"""Tests of the sample world generator (crm_helpers.sample): small samples in tmp folders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from crm_helpers.config import SAMPLE_SOURCES_YML
from crm_helpers.sample import DefectRates, generate

N = 2_000
SEED = 7
RATES = DefectRates()


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("sample")
    return base, generate(base, customers=N, seed=SEED, progress=False)


def truth(base: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(base / "truth" / f"{name}.csv", dtype=str, keep_default_na=False)


def sources(base: Path) -> dict:
    return yaml.safe_load((base / "sources.yml").read_text(encoding="utf-8"))["sources"]


def read_source(base: Path, name: str) -> pd.DataFrame:
    """All rows of a source as text, read with the delimiter/encoding declared in sources.yml.

    Malformed lines (a missing field, a truncated JSON object) are skipped.
    """
    s = sources(base)[name]
    path = str(base / "raw" / s["files"])
    if s["format"] == "jsonl":
        sql = (f"select *, filename as file from read_json('{path}', format='newline_delimited', "
               "ignore_errors=true, filename=true) where order_id is not null")
    else:
        sql = (f"select *, filename as file from read_csv('{path}', delim='{s['delimiter']}', "
               f"quote='\"', encoding='{s['encoding']}', header=true, all_varchar=true, "
               "ignore_errors=true, filename=true)")
    return duckdb.sql(sql).df().fillna("")


def defects(base: Path) -> pd.DataFrame:
    return truth(base, "defects")


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- reproducibility and layout -----------------------------------------------------------------

def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path):
    # Small chunks so that several chunks (and their carried counters) are exercised.
    a = generate(tmp_path / "a", customers=700, seed=3, progress=False, chunk_size=300)
    generate(tmp_path / "b", customers=700, seed=3, progress=False, chunk_size=300)
    generate(tmp_path / "c", customers=700, seed=4, progress=False, chunk_size=300)
    da, db, dc = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert da == db
    assert da["truth/people.csv"] != dc["truth/people.csv"]
    assert da["raw/pos/pos_2025-06.csv"] != dc["raw/pos/pos_2025-06.csv"]
    assert a["people"] == 700
    # Regenerating into a used folder leaves no stale month files behind.
    generate(tmp_path / "c", customers=700, seed=3, progress=False, chunk_size=300)
    assert digest(tmp_path / "c") == da


def test_ids_are_unique_across_chunks(tmp_path):
    generate(tmp_path, customers=700, seed=3, progress=False, chunk_size=250)
    people = truth(tmp_path, "people")
    assert people["person_id"].is_unique and len(people) == 700
    ident = truth(tmp_path, "identity")
    assert not ident.duplicated(["source", "source_record_id"]).any()
    pos = read_source(tmp_path, "pos")
    assert not pos.groupby("receipt_no")[["store_id", "loyalty_card"]].nunique().gt(1).any().any()
    assert read_source(tmp_path, "callcentre")["ticket_id"].is_unique
    orders = truth(tmp_path, "orders")
    assert orders["order_id"].is_unique


def test_layout_and_declared_columns(sample):
    base, summary = sample
    assert (base / "sources.yml").read_bytes() == SAMPLE_SOURCES_YML.read_bytes()
    for name, s in sources(base).items():
        files = sorted((base / "raw").glob(s["files"]))
        assert files, name
        needed = set()
        for mapping in s["tables"].values():
            for v in mapping.values():
                if isinstance(v, str):
                    needed.add(v)
                elif isinstance(v, dict):
                    needed.update(v.get("uses", []))
        for f in files:
            if s["format"] == "jsonl":
                first = f.read_text(encoding="utf-8").splitlines()[0]
                assert needed <= set(json.loads(first)), (name, f)
            else:
                header = f.read_bytes().decode(s["encoding"]).splitlines()[0]
                assert needed <= set(header.split(s["delimiter"])), (name, f)
    assert len(list((base / "raw" / "pos").glob("pos_*.csv"))) == 36
    for name in ("people", "identity", "orders", "campaign_effects", "campaign_outcomes",
                 "cohort_retention", "category_affinity", "defects"):
        assert (base / "truth" / f"{name}.csv").exists()
    config = json.loads((base / "truth" / "config.json").read_text())
    assert config["seed"] == SEED and config["N"] == N
    assert config["defect_rates"] == RATES.as_dict()
    assert summary["people"] == N


def test_files_parse_with_declared_settings(sample):
    base, _ = sample
    d = defects(base)
    for name, s in sources(base).items():
        rows = read_source(base, name)
        assert len(rows) > 0, name
        if s["format"] == "csv":
            # Strict parsing with the declared settings fails only on the injected bad lines.
            lines = sum(len(f.read_bytes().decode(s["encoding"]).splitlines()) - 1
                        for f in (base / "raw").glob(s["files"]))
            broken = ((d["source"] == name) & (d["defect"] == "malformed_line")).sum()
            assert len(rows) == lines - broken, name
    # Accented names survive the latin-1 call-centre files.
    calls = read_source(base, "callcentre")
    assert calls["caller_name"].str.contains("[À-ÿ]", regex=True).any()
    web = [f for f in (base / "raw" / "webshop").glob("*.jsonl")]
    parsed, broken = 0, 0
    for f in web:
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                json.loads(line)
                parsed += 1
            except json.JSONDecodeError:
                broken += 1
    assert broken == ((d["source"] == "webshop") & (d["defect"] == "malformed_line")).sum() >= 1


def test_timestamps_follow_declared_formats_except_impossible_dates(sample):
    base, _ = sample
    d = defects(base)
    pos = read_source(base, "pos")
    ts = pd.to_datetime(pos["sold_at"], format="%d/%m/%Y %H:%M:%S", errors="coerce")
    bad_keys = set(d.loc[(d["source"] == "pos") & (d["defect"] == "impossible_date"), "record_key"])
    bad = pos["receipt_no"] + ":" + pos["line_no"]
    assert set(bad[ts.isna() | (ts.dt.year > 2025)]) == bad_keys and bad_keys
    web = read_source(base, "webshop")
    assert web["created_at"].astype(str).str.len().gt(0).all()
    master = read_source(base, "crm_master")
    pd.to_datetime(master["signup_time"], format="%d/%m/%Y %H:%M")
    birth = pd.to_datetime(master["birth_date"].replace("", None), format="%d/%m/%Y", errors="coerce")
    typed = master["birth_date"] != ""
    bad_births = set(d.loc[d["defect"] == "impossible_birth_date", "record_key"])
    assert set(master.loc[typed & (birth.isna() | (birth.dt.year > 2025)), "customer_ref"]) == bad_births
    calls = read_source(base, "callcentre")
    t = pd.to_datetime(calls["contact_time"], format="%Y-%m-%d %H:%M:%S")
    assert t.min() >= pd.Timestamp("2023-01-01") and t.max() < pd.Timestamp("2026-01-01")
    # Rows are in the month file of their own timestamp.
    month = ts.dt.strftime("%Y-%m")
    ok = ts.notna() & (ts.dt.year <= 2025)
    assert (pos.loc[ok, "file"].str[-11:-4] == month[ok]).all()


# --- identity -----------------------------------------------------------------------------------

def raw_identity_keys(base: Path) -> set[tuple[str, str]]:
    master = read_source(base, "crm_master")
    web = read_source(base, "webshop")
    calls = read_source(base, "callcentre")
    return ({("crm_master", r) for r in master["customer_ref"]}
            | {("webshop", e.strip(" ").lower()) for e in web["email"]}
            | {("callcentre", t) for t in calls["ticket_id"]})


def test_identity_truth_rows_are_exactly_the_raw_records(sample):
    base, _ = sample
    ident = truth(base, "identity")
    assert set(zip(ident["source"], ident["source_record_id"])) == raw_identity_keys(base)
    people = set(truth(base, "people")["person_id"])
    assert set(ident.loc[ident["person_id"] != "", "person_id"]) <= people
    master = ident[ident["source"] == "crm_master"]
    assert people <= set(master["person_id"])  # everybody has a master record


def test_duplicate_person_share(sample):
    base, _ = sample
    master = truth(base, "identity").query("source == 'crm_master' and person_id != ''")
    share = (len(master) - master["person_id"].nunique()) / N
    assert abs(share - RATES.duplicate_person) < 0.02
    d = defects(base)
    assert (d["defect"] == "duplicate_person").sum() == len(master) - master["person_id"].nunique()


def _norm_phone(s: pd.Series) -> pd.Series:
    digits = s.str.replace(r"\D", "", regex=True)
    return digits.where(~digits.str.startswith("44"), "0" + digits.str[2:])


def within_one_edit(a: str, b: str) -> bool:
    """Equal up to one substitution, insertion, deletion or transposition of neighbours."""
    if a == b:
        return True
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = sorted((a, b), key=len)
    return len(long_) - len(short) == 1 and any(long_[:i] + long_[i + 1:] == short
                                                for i in range(len(long_)))


def test_duplicates_share_at_least_two_keys_with_the_primary(sample):
    base, _ = sample
    m = read_source(base, "crm_master").merge(
        truth(base, "identity"), left_on="customer_ref", right_on="source_record_id")
    m = m[m["person_id"] != ""].sort_values("customer_ref")
    norm = pd.DataFrame({
        "person_id": m["person_id"],
        "phone": _norm_phone(m["phone"]), "email": m["email"].str.strip().str.lower(),
        "first": m["first_name"].str.strip().str.lower(),
        "last": m["last_name"].str.strip().str.lower(),
        "postcode": m["postcode"].str.replace(" ", "").str.upper(), "dob": m["birth_date"],
    })
    for _, g in norm.groupby("person_id"):
        if len(g) < 2:
            continue
        a, b = g.iloc[0], g.iloc[1]
        same_name = (within_one_edit(a["first"], b["first"]) and a["last"] == b["last"]) or \
            (a["first"] == b["first"] and within_one_edit(a["last"], b["last"]))
        shared = sum([
            a.phone != "" and a.phone == b.phone, a.email != "" and a.email == b.email,
            same_name,
            a.postcode != "" and a.postcode == b.postcode, a.dob != "" and a.dob == b.dob])
        assert shared >= 2, (a.to_dict(), b.to_dict())


def test_email_alone_does_not_resolve_identities(sample):
    """Exact matching on the normalised e-mail finds well under 95% of same-person pairs."""
    base, _ = sample
    ident = truth(base, "identity").query("person_id != ''")
    master = read_source(base, "crm_master")[["customer_ref", "email"]]
    calls = read_source(base, "callcentre")[["ticket_id", "caller_email"]]
    email = pd.concat([
        pd.DataFrame({"source": "crm_master", "source_record_id": master["customer_ref"],
                      "email": master["email"]}),
        pd.DataFrame({"source": "callcentre", "source_record_id": calls["ticket_id"],
                      "email": calls["caller_email"]})])
    rec = ident.merge(email, how="left", on=["source", "source_record_id"])
    rec["email"] = np.where(rec["source"] == "webshop", rec["source_record_id"],
                            rec["email"].fillna("").str.strip().str.lower())
    pairs = lambda s: int((s.value_counts() * (s.value_counts() - 1) // 2).sum())
    true_pairs = pairs(rec["person_id"])
    has = rec[rec["email"] != ""]
    found = pairs(has["person_id"] + "|" + has["email"])
    print(f"e-mail-only pairwise recall {found / true_pairs:.3f}")
    assert 0.55 < found / true_pairs < 0.85
    # Phones are unique per person: no two people share a normalised phone.
    phones = read_source(base, "crm_master").merge(ident, left_on="customer_ref",
                                                   right_on="source_record_id")
    phones = phones.assign(p=_norm_phone(phones["phone"]))
    assert phones[phones["p"] != ""].groupby("p")["person_id"].nunique().max() == 1


def test_names_are_varied_and_latin1(sample):
    base, _ = sample
    from crm_helpers.sample import world
    book = world.build_name_book()
    assert len(book.first) >= 300 and len(book.last) >= 2000
    for name in [*book.first, *book.last]:
        name.encode("latin-1")
    assert {"Zoë", "José", "Siobhán"} <= set(book.first)
    master = read_source(base, "crm_master").merge(
        truth(base, "identity"), left_on="customer_ref", right_on="source_record_id")
    master = master[master["person_id"] != ""].drop_duplicates("person_id")
    key = master["first_name"].str.lower() + "|" + master["last_name"].str.lower() + "|" \
        + master["postcode"]
    assert key.duplicated().mean() < 0.005


def test_callcentre_email_missing_share(sample):
    base, _ = sample
    calls = read_source(base, "callcentre")
    assert abs((calls["caller_email"] == "").mean() - RATES.callcentre_missing_email) < 0.05
    formats = calls["caller_phone"].str.replace(r"\d", "9", regex=True).value_counts()
    expected = {"99999 999999", "+99 9999 999999", "(9)9999-999-999", "999999999999"}
    assert expected <= set(formats.index)
    assert calls["caller_name"].str.contains(", ").mean() == pytest.approx(0.5, abs=0.1)


# --- defects ----------------------------------------------------------------------------------

def test_duplicate_rows_are_exact_and_at_the_configured_rate(sample):
    base, _ = sample
    d = defects(base)
    for source, pattern in (("pos", "pos/pos_*.csv"), ("webshop", "webshop/orders_*.jsonl")):
        lines = [ln for f in sorted((base / "raw").glob(pattern))
                 for ln in f.read_text(encoding="utf-8").splitlines()[(source == "pos"):]]
        repeats = sum(a == b for a, b in zip(lines, lines[1:]))
        assert repeats == ((d["source"] == source) & (d["defect"] == "duplicate_row")).sum()
        assert abs(repeats / len(lines) - RATES.duplicate_row) < 0.003


def test_test_records_and_returns(sample):
    base, _ = sample
    d = defects(base)
    ident = truth(base, "identity")
    junk = ident[ident["person_id"] == ""]
    master = read_source(base, "crm_master")
    test_master = master[master["customer_ref"].isin(junk["source_record_id"])]
    recorded = (d["source"] == "crm_master") & (d["defect"] == "test_record")
    assert len(test_master) == recorded.sum()
    assert 0 < len(test_master) < 4 * RATES.test_master_record * N + 5
    junk_names = ["test", "asdf", "xxx", "mickey", "donald", "qa"]
    assert (test_master["email"].str.contains("example.com|test.invalid")
            | test_master["first_name"].str.lower().isin(junk_names)).all()
    qa = junk[junk["source"] == "webshop"]["source_record_id"]
    assert len(qa) and qa.str.endswith("@harbourandhearth.co.uk").all()
    pos = read_source(base, "pos")
    training = pos[pos["store_id"] == "S000"]
    assert len(training) and (training["loyalty_card"] == "").all()
    orders = truth(base, "orders")
    owner = orders.set_index("order_id")["person_id"]
    assert (owner.loc[training["receipt_no"].unique()] == "").all()
    returns = pos[pos["qty"].astype(int) < 0]
    assert (returns["line_total"].astype(float) < 0).all()
    assert abs(len(returns) / len(pos) - RATES.return_line) < 0.015
    web = read_source(base, "webshop")
    web_returns = web[web["quantity"].astype(int) < 0]
    assert abs(len(web_returns) / len(web) - RATES.return_line) < 0.015
    sale_lines = web[web["quantity"].astype(int) > 0].groupby("order_id")["line_no"].max()
    first_return = web_returns.groupby("order_id")["line_no"].min()
    assert (first_return > sale_lines.loc[first_return.index]).all()  # new line numbers


def test_every_crm_purchase_is_attributable(sample):
    base, _ = sample
    orders = truth(base, "orders").set_index("order_id")["person_id"]
    master = read_source(base, "crm_master").merge(
        truth(base, "identity"), left_on="customer_ref", right_on="source_record_id")
    card_owner = master[master["loyalty_card"] != ""].set_index("loyalty_card")["person_id"]
    assert card_owner.index.is_unique
    pos = read_source(base, "pos").drop_duplicates("receipt_no")
    carded = pos[pos["loyalty_card"] != ""]
    assert (card_owner.loc[carded["loyalty_card"]].to_numpy()
            == orders.loc[carded["receipt_no"]].to_numpy()).all()
    assert (orders.loc[pos.loc[pos["loyalty_card"] == "", "receipt_no"]] == "").all()
    web = read_source(base, "webshop").drop_duplicates("order_id")
    email_owner = truth(base, "identity").query("source == 'webshop'") \
        .set_index("source_record_id")["person_id"]
    owner = email_owner.loc[web["email"].str.strip(" ").str.lower()].to_numpy()
    assert (owner == orders.loc[web["order_id"]].to_numpy()).all()


# --- behaviour and truth ----------------------------------------------------------------------

def test_consent_is_honoured_and_most_restrictive_record_is_truth(sample):
    base, _ = sample
    people = truth(base, "people").set_index("person_id")
    ident = truth(base, "identity").query("source == 'crm_master'").set_index("source_record_id")
    campaigns = read_source(base, "campaigns").set_index("campaign_id")
    contacts = read_source(base, "campaign_contacts")
    who = people.loc[ident.loc[contacts["customer_ref"], "person_id"]]
    assert (who["do_not_contact"] == "false").all()
    channel = campaigns.loc[contacts["campaign_id"], "channel"].to_numpy()
    consent = np.where(channel == "email", who["email_opt_in"], who["sms_opt_in"])
    assert (consent == "true").all()
    acquired = pd.to_datetime(who["acquisition_date"]).to_numpy()
    start = pd.to_datetime(campaigns.loc[contacts["campaign_id"], "start_date"]).to_numpy()
    assert (acquired <= start).all()
    master = read_source(base, "crm_master")
    master["person_id"] = ident.loc[master["customer_ref"], "person_id"].to_numpy()
    master = master[master["person_id"] != ""]
    golden = master.groupby("person_id").agg(
        email_opt_in=("email_opt_in", lambda s: "true" if (s == "Y").all() else "false"),
        sms_opt_in=("sms_opt_in", lambda s: "true" if (s == "Y").all() else "false"),
        do_not_contact=("do_not_contact", lambda s: "true" if (s == "Y").any() else "false"))
    expected = people.loc[golden.index, ["email_opt_in", "sms_opt_in", "do_not_contact"]]
    assert (golden == expected).all().all()
    several = master.groupby("person_id").size().gt(1)
    disagree = master[master["person_id"].isin(several[several].index)] \
        .groupby("person_id")["email_opt_in"].nunique().gt(1)
    assert disagree.any()  # duplicates do disagree sometimes


def test_segments_order_purchase_rate_spend_and_dropout(sample):
    base, _ = sample
    people = truth(base, "people")
    assert people["segment"].value_counts(normalize=True)["elite"] == pytest.approx(0.04, abs=0.015)
    orders = truth(base, "orders")
    pos = read_source(base, "pos").drop_duplicates(["receipt_no", "line_no"])
    web = read_source(base, "webshop").drop_duplicates(["order_id", "line_no"])
    value = pd.concat([
        pd.DataFrame({"order_id": pos["receipt_no"], "v": pos["line_total"].astype(float)}),
        pd.DataFrame({"order_id": web["order_id"],
                      "v": web["quantity"].astype(float) * web["unit_price"].astype(float)})])
    value = value[value["v"] > 0].groupby("order_id")["v"].sum().rename("value").reset_index()
    value = value.merge(orders, on="order_id") \
        .merge(people[["person_id", "segment"]], on="person_id")
    end = pd.Timestamp("2026-01-01")
    start = pd.to_datetime(people["acquisition_date"]).clip(lower=pd.Timestamp("2023-01-01"))
    people["months"] = (end - start).dt.days / 30.44
    counts = value.groupby("person_id").size().reindex(people["person_id"], fill_value=0)
    people["per_month"] = counts.to_numpy() / people["months"].to_numpy()
    order = ["elite", "loyal", "regular", "occasional"]
    rate = people.groupby("segment")["per_month"].mean().loc[order]
    spend = value.groupby("segment")["value"].mean().loc[order]
    dropout = people.assign(p=people["dropout_prob"].astype(float)).groupby("segment")["p"].mean()
    assert rate.is_monotonic_decreasing, rate
    assert spend.is_monotonic_decreasing, spend
    assert dropout.loc[order].is_monotonic_increasing, dropout  # per repeat purchase
    assert rate["elite"] > 1.0  # elite buy about 4 times a month while they stay


def test_dropout_date_is_the_last_purchase(sample):
    base, _ = sample
    people = truth(base, "people")
    orders = truth(base, "orders").query("person_id != ''")
    pos = read_source(base, "pos")
    pos = pos[pos["qty"].astype(int) > 0]
    ts = pd.to_datetime(pos["sold_at"], format="%d/%m/%Y %H:%M:%S", errors="coerce")
    last = pd.DataFrame({"order_id": pos["receipt_no"], "day": ts.dt.normalize()}).dropna() \
        .merge(orders, on="order_id").groupby("person_id")["day"].max()
    left = people[people["dropout_date"] != ""].set_index("person_id")["dropout_date"]
    common = left.index.intersection(last.index)
    assert len(common) > 50
    # A store receipt never comes after the dropout date (web orders may be the last purchase).
    assert (last.loc[common] <= pd.to_datetime(left.loc[common])).all()


def test_campaign_truth(sample):
    base, _ = sample
    out = truth(base, "campaign_outcomes")
    effects = truth(base, "campaign_effects")
    assert len(effects) == 8 * 4
    # Elite customers (about 4 purchases a month) almost surely buy in a window anyway, which
    # caps their true uplift far below the designed one.
    assert effects["true_uplift"].astype(float).between(0.001, 0.16).all()
    assert out.loc[out["group"] == "control", "incremental"].eq("false").all()
    assert out["group"].eq("control").mean() == pytest.approx(0.2, abs=0.03)
    treated = out[out["group"] == "treatment"].merge(effects, on=["campaign_id", "segment"])
    expected = treated["true_uplift"].astype(float).sum()
    observed = (treated["incremental"] == "true").sum()
    assert abs(observed - expected) < 4 * np.sqrt(expected) + 3
    responses = read_source(base, "campaign_responses")
    contacts = read_source(base, "campaign_contacts")
    groups = responses.merge(contacts, on=["campaign_id", "customer_ref"])
    purchases = groups[groups["response_type"] == "purchase"]
    assert set(purchases["group"]) == {"control", "treatment"}
    assert set(groups.loc[groups["response_type"] == "click", "group"]) == {"treatment"}
    # Segment ordering of the designed uplift (occasional customers are the most persuadable).
    designed = effects.assign(u=effects["designed_uplift"].astype(float))
    by_seg = designed.groupby("segment")["u"].mean()
    assert by_seg["occasional"] > by_seg["regular"] > by_seg["loyal"] > by_seg["elite"]


def test_cohort_retention_and_affinity_truth(sample):
    base, _ = sample
    cohorts = truth(base, "cohort_retention")
    month0 = cohorts[cohorts["months_since"] == "0"]
    assert (month0["retention_rate"].astype(float) == 1.0).all()
    buyers = truth(base, "orders").query("person_id != ''")["person_id"].nunique()
    assert month0["cohort_size"].astype(int).sum() == buyers
    later = cohorts[cohorts["months_since"].astype(int).between(1, 6)]
    assert later["retention_rate"].astype(float).between(0, 1).all()
    aff = truth(base, "category_affinity")
    designed = aff[aff["affinity"].astype(float) > 0]
    assert len(designed) >= 5 and (designed["lift"].astype(float) > 1.0).all()


def test_tiers_and_products(sample):
    base, _ = sample
    products = read_source(base, "products")
    assert products["category"].nunique() == 8
    assert products["sku"].is_unique
    assert set(products["tier"]) == {"basic", "plus", "premium"}
    margin = 1 - products["unit_cost"].astype(float) / products["list_price"].astype(float)
    by_tier = margin.groupby(products["tier"]).mean()
    assert by_tier["basic"] < by_tier["plus"] < by_tier["premium"]
    people = truth(base, "people")
    moved = (people["initial_tier"] != people["final_tier"]).mean()
    assert 0.02 < moved < 0.5
    stores = read_source(base, "stores")
    assert "S000" in set(stores["store_id"]) and stores["region"].nunique() == 6
