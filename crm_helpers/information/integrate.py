"""Integrate: from staging tables to one customer view and a star schema.

The steps, in the order ``integrate()`` runs them:

1. **Standardise** every customer record (e-mail case and whitespace, UK phone numbers to one
   national format, "LAST, First" names split, postcodes without spaces).
2. **Remove junk**: test records (test names, test e-mail domains), the training till's
   receipts, and exact duplicate transaction rows. Each removal is counted in ``integration_log``.
3. **Resolve identities** with Splink (Fellegi-Sunter model on DuckDB): records of the CRM
   master, the web shop and the call centre that belong to one person get one ``customer_id``
   (``identity_map``). Store receipts reach the customer through the loyalty card, which
   ``identity_map`` lists under the till's source.
4. **Build the single customer view** (``dim_customer``, a golden record per customer, see
   :data:`SURVIVORSHIP`) and the star schema: ``dim_product``, ``dim_date``, ``dim_channel``,
   ``dim_campaign``, ``fact_order_line``, ``fact_interaction``, ``fact_campaign_contact``,
   ``fact_campaign_response``.

Transaction-level transforms are Ibis expressions on the engine connection, so the same code
runs on another Ibis backend; only customer records (one row per source record) travel to
Splink and back.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import ibis
import ibis.expr.types as ir
from ibis import _

from crm_helpers import config
from crm_helpers import warehouse as wh

log = logging.getLogger(__name__)

# Survivorship rules of the golden record, as an analyst would quote them.
SURVIVORSHIP = {
    "names, e-mail, phone, address, birth date": (
        "first non-empty value by source priority (CRM master, then web shop, then call "
        "centre: the customer's own form beats an agent's typing), newest record first"),
    "signup_date, acquisition_channel": "the earliest record of the customer, any source",
    "email_opt_in, sms_opt_in": "true only if at least one record says true and none says false "
                                "(most restrictive; no recorded consent means no consent)",
    "do_not_contact": "true if any record says so (most restrictive)",
    "loyalty_card": "the newest card, CRM master records first (cards are issued at sign-up)",
}
SOURCE_PRIORITY = {"crm_master": 1, "webshop": 2, "callcentre": 3}  # other sources come last
MASTER_SOURCE = "crm_master"  # the customer master, whose ids campaign platforms use
JUNK_NAMES = ("test", "tester", "asdf", "dummy", "xxx", "qa", "demo", "mickey mouse")
JUNK_EMAIL_DOMAINS = ("example.com", "example.org", "test.invalid", "test.com", "mailinator.com")
JUNK_EMAIL_LOCAL_PARTS = ("test", "qa", "asdf", "noreply", "dummy")
TRAINING_STORE_PATTERN = "%training%"
MATCH_THRESHOLD = 0.9


# --------------------------------------------------------------------------------------------
# 1. Standardise
# --------------------------------------------------------------------------------------------

def standard_email(email: ir.StringValue) -> ir.StringValue:
    """Lower-case, trimmed e-mail; NULL when empty or without an @."""
    e = email.strip().lower()
    return ibis.ifelse(e.contains("@"), e, ibis.null(str))


def standard_phone(phone: ir.StringValue) -> ir.StringValue:
    """UK phone number in national format (``07700900123``) from any of the usual spellings.

    "+44 7700 900123", "0044 7700 900123", "(0)7700-900-123", "447700900123" and "07700 900123"
    all become ``07700900123``: keep the digits, drop an international prefix 00, the country code
    44 and a trunk "(0)", add the leading 0. Anything but 11 national digits is no UK number (NULL).
    """
    digits = phone.re_replace(r"[^0-9]", "").re_replace(r"^00", "")
    national = ibis.cases(
        (digits.startswith("440"), digits.substr(2)),
        (digits.startswith("44"), "0" + digits.substr(2)),
        (digits.startswith("0"), digits),
        else_="0" + digits,
    )
    return ibis.ifelse(national.length() == 11, national, ibis.null(str))


def standard_name(name: ir.StringValue) -> ir.StringValue:
    """Lower-case name with accents, punctuation and surrounding blanks removed."""
    return _strip_accents(name).lower().re_replace(r"[^a-z' -]", "").strip().nullif("")


@ibis.udf.scalar.builtin(name="strip_accents")
def _strip_accents(text: str) -> str:
    """DuckDB's strip_accents (é -> e)."""


def split_full_name(full_name: ir.StringValue) -> tuple[ir.StringValue, ir.StringValue]:
    """First and last name from "LAST, First" or "First Last" as typed by an agent."""
    has_comma = full_name.contains(",")
    before, after = full_name.re_extract(r"^([^,]*),(.*)$", 1), full_name.re_extract(r"^([^,]*),(.*)$", 2)
    first_word = full_name.strip().re_extract(r"^(\S+)\s*(.*)$", 1)
    rest = full_name.strip().re_extract(r"^(\S+)\s*(.*)$", 2)
    first = ibis.ifelse(has_comma, after, first_word)
    last = ibis.ifelse(has_comma, before, rest)
    return first, last


def standardised_customers(con) -> ir.Table:
    """One standardised row per source customer record (the newest row of each record).

    A web-shop customer appears on every order line; the newest line holds the current details.
    """
    stg = con.table("stg_customer")
    newest = (stg.mutate(_rank=ibis.row_number().over(
        group_by=[stg.source, stg.source_record_id],
        order_by=[ibis.desc(stg.signup_ts), ibis.desc(stg.file), ibis.desc(stg.record_no)]))
        .filter(_._rank == 0))
    split_first, split_last = split_full_name(newest.full_name)
    return newest.select(
        "source", "source_record_id",
        unique_id=newest.source + ":" + newest.source_record_id,
        first_name=standard_name(newest.first_name.fill_null(split_first)),
        last_name=standard_name(newest.last_name.fill_null(split_last)),
        email=standard_email(newest.email),
        phone=standard_phone(newest.phone),
        postcode=newest.postcode.upper().re_replace(r"[^A-Z0-9]", "").nullif(""),
        street=newest.street.strip().nullif(""),
        city=newest.city.strip().nullif(""),
        birth_date=newest.birth_date,
        signup_ts=newest.signup_ts,
        signup_channel=newest.signup_channel,
        loyalty_card=newest.loyalty_card.strip().nullif(""),
        email_opt_in=newest.email_opt_in,
        sms_opt_in=newest.sms_opt_in,
        do_not_contact=newest.do_not_contact,
    )


# --------------------------------------------------------------------------------------------
# 2. Junk
# --------------------------------------------------------------------------------------------

def is_junk_record(t: ir.Table) -> ir.BooleanValue:
    """Test and junk customer records: test names, test e-mail domains or local parts."""
    domain = t.email.re_extract(r"@(.*)$", 1)
    local = t.email.re_extract(r"^([^@+]*)", 1).re_replace(r"[0-9._-]+$", "")
    full = (t.first_name.fill_null("") + " " + t.last_name.fill_null("")).strip()
    return (t.first_name.isin(JUNK_NAMES) | t.last_name.isin(JUNK_NAMES) | full.isin(JUNK_NAMES)
            | domain.isin(JUNK_EMAIL_DOMAINS) | local.isin(JUNK_EMAIL_LOCAL_PARTS)).fill_null(False)


def latest_per_key(t: ir.Table, key: str) -> ir.Table:
    """The latest staged row for each value of ``key`` (by file name, then line number)."""
    ranked = t.mutate(_rank=ibis.row_number().over(group_by=key, order_by=[ibis.desc(t.file), ibis.desc(t.record_no)]))
    return ranked.filter(ranked._rank == 0).drop("_rank")


def distinct_order_lines(con) -> ir.Table:
    """Staged order lines with exact duplicate rows (same values in every business column) removed."""
    business = ["source", "order_id", "line_no", "order_ts", "customer_ref", "store_id", "channel",
                "sku", "quantity", "unit_price", "line_amount"]
    return con.table("stg_order_line").select(business).distinct()


# --------------------------------------------------------------------------------------------
# 3. Identity resolution
# --------------------------------------------------------------------------------------------

def splink_settings():
    """Splink model: which pairs to compare (blocking) and how to compare them."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            block_on("email"), block_on("phone"),
            block_on("last_name", "postcode"), block_on("first_name", "postcode"),
            block_on("first_name", "last_name", "birth_date"),
        ],
        comparisons=[
            cl.ForenameSurnameComparison("first_name", "last_name",
                                         forename_surname_concat_col_name="full_name"),
            cl.EmailComparison("email"),
            cl.LevenshteinAtThresholds("phone", 1),
            cl.ExactMatch("postcode"),
            cl.ExactMatch("birth_date"),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


def resolve_identities(records, threshold: float = MATCH_THRESHOLD, seed: int = config.DEFAULT_SEED):
    """Cluster customer records into people with Splink on an in-memory DuckDB.

    Args:
        records: pandas/arrow table with unique_id, first_name, last_name, email, phone,
            postcode, birth_date (standardised).
        threshold: match probability at or above which a pair is one person.
        seed: seed for the random sample that estimates the u probabilities.
    Returns:
        pandas DataFrame with unique_id and cluster_id.
    """
    import duckdb
    from splink import DuckDBAPI, Linker, block_on

    db = DuckDBAPI(connection=duckdb.connect(config={"memory_limit": config.memory_limit()}))
    records = records.assign(full_name=records.first_name.fillna("") + " " + records.last_name.fillna(""),
                             birth_date=records.birth_date.astype("string"))
    linker = Linker(db.register(records), splink_settings(), log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("email"), block_on("phone")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=seed)
    for rule in (block_on("phone"), block_on("email"), block_on("last_name", "postcode")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule, record_sample_proportion=1.0)
    pairs = linker.inference.predict(threshold_match_probability=0.2)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pairs, threshold)
    return clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]


# --------------------------------------------------------------------------------------------
# 4. Single customer view and star schema
# --------------------------------------------------------------------------------------------

def golden_records(records: ir.Table, identity: ir.Table) -> ir.Table:
    """``dim_customer``: one row per customer_id, by the rules in :data:`SURVIVORSHIP`."""
    priority = ibis.cases(*[(records.source == s, p) for s, p in SOURCE_PRIORITY.items()], else_=9)
    r = records.join(identity, ["source", "source_record_id"]).mutate(priority=priority)

    def best(col):
        # NULLs sort last, so the first value is the best non-empty one
        return r[col].first(order_by=[r[col].isnull(), r.priority, ibis.desc(r.signup_ts)])

    fields = ["first_name", "last_name", "email", "phone", "street", "postcode", "city", "birth_date"]
    return r.group_by("customer_id").aggregate(
        **{f: best(f) for f in fields},
        signup_date=r.signup_ts.min().date(),
        acquisition_channel=r.signup_channel.first(order_by=[r.signup_ts.isnull(), r.signup_ts]),
        loyalty_card=r.loyalty_card.first(order_by=[r.loyalty_card.isnull(), r.priority, ibis.desc(r.signup_ts)]),
        email_opt_in=_most_restrictive(r.email_opt_in),
        sms_opt_in=_most_restrictive(r.sms_opt_in),
        do_not_contact=r.do_not_contact.any().fill_null(False),
        n_source_records=r.count(),
        sources=r.source.collect(distinct=True, order_by=r.source).join(","),
    )


def _most_restrictive(flag: ir.BooleanColumn) -> ir.BooleanScalar:
    """Consent: true only if some record says yes and none says no."""
    return (flag.any() & flag.all()).fill_null(False)


def home_region(orders: ir.Table, stores: ir.Table) -> ir.Table:
    """Each customer's region: the region of the store where they bought most lines.

    Customers who never bought in a store have no home region (NULL, shown as "online only").
    """
    store_lines = (orders.filter(orders.channel == "store").join(stores, "store_id")
                   .group_by(["customer_id", "region"]).aggregate(lines=_.count()))
    return (store_lines.mutate(_rank=ibis.row_number().over(
        group_by="customer_id", order_by=[ibis.desc(_.lines), _.region])).filter(_._rank == 0)
        .select("customer_id", "region"))


def card_identities(resolved: ir.Table, till_sources: list[str]) -> list[ir.Table]:
    """Identity rows for loyalty cards: each till source's card number points to its holder.

    Tills record no personal data, only the card; the card was issued on a CRM master record, so
    the card takes that record's customer_id.
    """
    cards = (resolved.filter((resolved.source == MASTER_SOURCE) & resolved.loyalty_card.notnull()).group_by("loyalty_card")
             .aggregate(customer_id=_.customer_id.min()))
    return [cards.select(source=ibis.literal(src), source_record_id="loyalty_card", customer_id="customer_id")
            for src in till_sources]


def order_line_facts(lines: ir.Table, identity: ir.Table, products: ir.Table) -> ir.Table:
    """``fact_order_line``: clean order lines with customer, cost and return flag.

    A line's ``customer_ref`` is a customer key of its own source (the e-mail of a web order, the
    loyalty card on a receipt), found in ``identity``; a receipt without a known card stays
    anonymous (customer_id NULL).
    """
    ids = identity.select(source="source", customer_ref="source_record_id", customer_id="customer_id")
    t = (lines.left_join(ids, ["source", "customer_ref"])
         .left_join(products.select("sku", "unit_cost"), "sku"))
    return t.select(
        "order_id", "line_no", "customer_id", "order_ts", order_date=t.order_ts.date(),
        store_id="store_id", channel="channel", sku="sku", quantity="quantity", unit_price="unit_price",
        line_amount="line_amount", cost_amount=(t.quantity * t.unit_cost).cast("decimal(14, 2)"),
        is_return=t.quantity < 0, source="source",
    ).order_by(["order_ts", "order_id", "line_no"])


def date_dimension(first, last) -> ir.Table:
    """``dim_date``: one row per calendar day from ``first`` to ``last`` (a small table)."""
    import pandas as pd

    days = pd.date_range(first, last, freq="D")
    return ibis.memtable(pd.DataFrame({
        "date": days.date, "year": days.year, "quarter": days.quarter, "month": days.month,
        "year_month": days.strftime("%Y-%m"), "year_quarter": days.year.astype(str) + "-Q" + days.quarter.astype(str),
        "week": days.isocalendar().week.to_numpy(), "day_of_week": days.day_name(),
        "is_weekend": days.dayofweek >= 5}))


def map_customer(facts: ir.Table, identity: ir.Table, source: str | None = None) -> ir.Table:
    """Replace a fact's ``customer_ref`` by its ``customer_id``.

    The reference is a record id of the fact's own source, or of ``source`` when given (campaign
    platforms key their contacts by the CRM master's customer_ref).
    """
    ids = identity.select(ref_source="source", customer_ref="source_record_id", customer_id="customer_id")
    keyed = facts.mutate(ref_source=ibis.literal(source) if source else facts.source)
    return (keyed.left_join(ids, ["ref_source", "customer_ref"])
            .drop("ref_source", "customer_ref", "ref_source_right", "customer_ref_right", "source"))


# --------------------------------------------------------------------------------------------
# The whole step
# --------------------------------------------------------------------------------------------

def integrate(warehouse: Path | str | None = None, threshold: float = MATCH_THRESHOLD,
              progress: bool = True, seed: int = config.DEFAULT_SEED) -> dict:
    """Build identity_map, dim_customer and the star schema from the staging tables.

    Args:
        warehouse: the DuckDB warehouse file holding the staging tables.
        threshold: Splink match probability at which two records are one customer.
        progress: show a progress bar over the steps.
        seed: seed of Splink's random sampling.
    Returns:
        A summary: record counts, junk and duplicates removed, customers, order lines.
    """
    from tqdm.auto import tqdm

    con = wh.connect(warehouse)
    steps = tqdm(total=6, desc="integrate", disable=not progress)
    log_rows = []

    def logged(step, rows_in, rows_out, reason):
        log_rows.append({"step": step, "rows_in": int(rows_in), "rows_removed": int(rows_in - rows_out),
                         "rows_out": int(rows_out), "reason": reason})

    started = time.perf_counter()
    records = con.create_table("customer_record", standardised_customers(con), overwrite=True)
    records = con.create_table("customer_record", records.mutate(is_junk=is_junk_record(records)), overwrite=True)
    n_records, n_junk = records.count().execute(), records.is_junk.sum().execute()
    logged("customer records", n_records, n_records - n_junk,
           "test and junk records: test names, test e-mail domains")
    steps.update()

    people = records.filter(~records.is_junk).select(
        "unique_id", "first_name", "last_name", "email", "phone", "postcode", "birth_date"
    ).order_by("unique_id").to_pandas()
    clusters = resolve_identities(people, threshold=threshold, seed=seed)
    steps.update()

    clusters_t = ibis.memtable(clusters)
    numbered = (clusters_t.group_by("cluster_id").aggregate(first_id=clusters_t.unique_id.min())
                .mutate(customer_id=(ibis.row_number().over(order_by="first_id") + 1).cast("int64")))
    resolved = records.filter(~records.is_junk).join(clusters_t, "unique_id").join(numbered, "cluster_id")
    record_sources = set(records.select("source").distinct().to_pandas().source)
    till_sources = set(con.table("stg_order_line").select("source").distinct().to_pandas().source) - record_sources
    identity = con.create_table("identity_map", resolved.select("source", "source_record_id", "customer_id")
                                .union(*card_identities(resolved, sorted(till_sources)))
                                .order_by(["customer_id", "source", "source_record_id"]), overwrite=True)
    steps.update()

    stores = latest_per_key(con.table("stg_store"), "store_id").select("store_id", "store_name", "region", "channel")
    training = stores.filter(stores.store_name.ilike(TRAINING_STORE_PATTERN)).store_id
    junk = records.filter(records.is_junk).select("source", customer_ref="source_record_id")
    staged = con.table("stg_order_line")
    lines = distinct_order_lines(con)
    n_staged, n_distinct = staged.count().execute(), lines.count().execute()
    logged("order lines", n_staged, n_distinct, "exact duplicate rows")
    clean = lines.filter(~lines.store_id.fill_null("").isin(training)).anti_join(junk, ["source", "customer_ref"])
    n_clean = clean.count().execute()
    logged("order lines", n_distinct, n_clean, "test orders: training till, test web accounts")

    products = con.create_table("dim_product", latest_per_key(con.table("stg_product"), "sku").select(
        "sku", "product_name", "category", "tier", "list_price", "unit_cost").order_by("sku"), overwrite=True)
    n_product_rows = con.table("stg_product").count().execute()
    logged("products", n_product_rows, products.count().execute(), "repeated sku: the latest record wins")
    facts = con.create_table("fact_order_line", order_line_facts(clean, identity, products), overwrite=True)
    steps.update()

    regions = home_region(facts.filter(facts.customer_id.notnull()), stores)
    golden = golden_records(records.filter(~records.is_junk), identity)
    golden = golden.left_join(regions, "customer_id").drop("customer_id_right").mutate(
        region=_.region.fill_null("online only"))
    con.create_table("dim_customer", golden.order_by("customer_id"), overwrite=True)
    web = ibis.memtable({"store_id": ["WEB"], "store_name": ["Web shop"], "region": ["online"], "channel": ["web"]},
                        schema=stores.schema())
    con.create_table("dim_channel", stores.filter(~stores.store_id.isin(training)).union(web)
                     .order_by("store_id"), overwrite=True)
    span = facts.aggregate(first=facts.order_date.min(), last=facts.order_date.max()).to_pandas().iloc[0]
    con.create_table("dim_date", date_dimension(span["first"], span["last"]), overwrite=True)
    steps.update()

    con.create_table("dim_campaign", latest_per_key(con.table("stg_campaign"), "campaign_id").select(
        "campaign_id", "campaign_name", "channel", "start_date", "end_date", "offer").order_by("campaign_id"),
        overwrite=True)
    interactions = con.table("stg_interaction").select(
        "source", "interaction_id", "customer_ref", "interaction_ts", interaction_date=_.interaction_ts.date(),
        channel="channel", reason_code="reason_code", outcome="outcome").distinct()
    con.create_table("fact_interaction", map_customer(interactions, identity)
                     .order_by("interaction_ts"), overwrite=True)
    contacts = con.table("stg_campaign_contact").select(
        "source", "campaign_id", "customer_ref", "contact_date", "channel", "treatment_group").distinct()
    con.create_table("fact_campaign_contact", map_customer(contacts, identity, MASTER_SOURCE)
                     .order_by(["campaign_id", "customer_id"]), overwrite=True)
    responses = con.table("stg_campaign_response").select(
        "source", "campaign_id", "customer_ref", "response_date", "response_type", "order_id", "response_value").distinct()
    con.create_table("fact_campaign_response", map_customer(responses, identity, MASTER_SOURCE)
                     .order_by(["campaign_id", "customer_id", "response_date"]), overwrite=True)
    steps.update()
    steps.close()

    con.create_table("integration_log", ibis.memtable(log_rows), overwrite=True)
    summary = {
        "customer_records": int(n_records), "junk_records": int(n_junk),
        "customers": int(con.table("dim_customer").count().execute()),
        "order_lines_staged": int(n_staged), "exact_duplicate_lines": int(n_staged - n_distinct),
        "test_order_lines": int(n_distinct - n_clean),
        "order_lines": int(facts.count().execute()),
        "anonymous_order_lines": int(facts.customer_id.isnull().sum().execute()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    con.disconnect()
    return summary


# --------------------------------------------------------------------------------------------
# What the notebook shows
# --------------------------------------------------------------------------------------------

STAR_SCHEMA = ("dim_customer", "dim_product", "dim_date", "dim_channel", "dim_campaign",
               "fact_order_line", "fact_interaction", "fact_campaign_contact", "fact_campaign_response")


def cluster_profile(con):
    """How many customers have 1, 2, 3, ... source customer records (loyalty cards not counted)."""
    records = con.table("identity_map").semi_join(con.table("customer_record"), ["source", "source_record_id"])
    per_customer = records.group_by("customer_id").aggregate(records_per_customer=_.count())
    return (per_customer.group_by("records_per_customer").aggregate(customers=_.count())
            .order_by("records_per_customer").to_pandas())


def source_overlap(con):
    """Customers by the combination of sources they were found in."""
    return (con.table("dim_customer").group_by("sources").aggregate(customers=_.count())
            .order_by(ibis.desc("customers")).to_pandas())


def consent_summary(con):
    """Customers who may be contacted by e-mail, by SMS, and who asked not to be contacted."""
    c = con.table("dim_customer")
    return c.aggregate(customers=c.count(), email_opt_in=c.email_opt_in.sum(),
                       sms_opt_in=c.sms_opt_in.sum(), do_not_contact=c.do_not_contact.sum()).to_pandas()


def star_schema_counts(con):
    """Rows in each table of the star schema."""
    import pandas as pd

    return pd.DataFrame({"table": STAR_SCHEMA,
                         "rows": [int(con.table(t).count().execute()) for t in STAR_SCHEMA]})
