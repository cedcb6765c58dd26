"""Integrate: from staging tables to one customer view and a star schema.

``integrate()`` runs four named steps and then one writer:

1. :func:`standardise_step`: every customer record standardised (:mod:`.standardise`: e-mail,
   names, postcodes, phone numbers in E.164 for each source's declared country).
2. :func:`remove_junk`: test records (the settings' test names and e-mail domains), the training
   tills' receipts and exact duplicate transaction rows. Each removal is counted in
   ``integration_log``.
3. :func:`resolve`: records that belong to one person get one ``customer_id`` (``identity_map``,
   :mod:`.identity`); till receipts reach the customer through the loyalty card, which
   ``identity_map`` lists under the till's source.
4. :func:`build_star`: the single customer view (``dim_customer``, a golden record per customer,
   see :data:`SURVIVORSHIP`) and the star schema: ``dim_product``, ``dim_date``, ``dim_channel``,
   ``dim_campaign``, ``fact_order_line``, ``fact_interaction``, ``fact_campaign_contact``,
   ``fact_campaign_response``.

:func:`write_tables` then writes every table at once, atomically: each is built under a new name
(``_next_<table>``), the warehouse's contracts (:mod:`.contracts`) are checked on the new tables, and
all of them replace the previous ones in one transaction. A run that fails or is killed leaves the
previous complete tables; ``integration_run`` records each run (``running``, ``complete`` or
``failed``). Nothing here knows the sample's sources: the
customer master is the source declared with ``role: customer_master``, survivorship follows each
source's ``priority:``, and channels, training tills and junk lists are settings
(``warehouse.source_roles`` and ``warehouse.settings``).

Transaction-level transforms are Ibis expressions on the engine connection, so the same code runs
on another Ibis backend; only customer records (one row per source record) travel to Splink and back.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis import _

from crm_helpers import config
from crm_helpers import warehouse as wh
from crm_helpers.config import Settings
from crm_helpers.information import contracts, identity, standardise
from crm_helpers.information.standardise import first_per_key

# Survivorship rules of the golden record, as an analyst would quote them.
SURVIVORSHIP = {
    "names, e-mail, phone, address, birth date": (
        "first non-empty value by source priority (each source's `priority:` in sources.yml, 1 "
        "first, sources without one last: the customer's own form beats an agent's typing), newest "
        "record first"),
    "signup_date, acquisition_channel": "the earliest record of the customer, any source",
    "email_opt_in, sms_opt_in": "true only if at least one record says true and none says false "
                                "(most restrictive; no recorded consent means no consent)",
    "do_not_contact": "true if any record says so (most restrictive)",
    "loyalty_card": "the newest card of the highest-priority source that holds one (cards are "
                    "issued on the customer master)",
}
# integration_log reasons of the order lines removed (crm forget corrects these rows)
DUPLICATE_LINES = "exact duplicate rows"
TEST_ORDERS = "test orders: training till, test web accounts"
STAR_SCHEMA = ("dim_customer", "dim_product", "dim_date", "dim_channel", "dim_campaign",
               "fact_order_line", "fact_interaction", "fact_campaign_contact", "fact_campaign_response")


# --------------------------------------------------------------------------------------------
# Roles of the declared sources
# --------------------------------------------------------------------------------------------

def source_order(roles: pd.DataFrame) -> list[str]:
    """Declared sources in survivorship order: by ``priority`` (1 first), then those without one, by name."""
    ranked = roles.assign(_priority=pd.to_numeric(roles.priority, errors="coerce"))
    return list(ranked.sort_values(["_priority", "source"], na_position="last").source)


def customer_master(roles: pd.DataFrame, record_sources: set[str]) -> str | None:
    """The customer master: the source declared ``role: customer_master``.

    Without one, the highest-priority source that has customer records stands in (its ids are the
    ones campaign files can refer to); None when no source has customer records.
    """
    declared = sorted(roles.source[roles.role == "customer_master"])
    if declared:
        return declared[0]
    return next((s for s in [*source_order(roles), *sorted(record_sources)] if s in record_sources), None)


def phone_countries(roles: pd.DataFrame) -> dict[str, str]:
    """Each source's declared phone country, for sources that declare one."""
    return {s: c for s, c in zip(roles.source, roles.country) if isinstance(c, str) and c}


def log_step(log: list[dict], step: str, rows_in: int, rows_out: int, reason: str,
             amount_removed: float | None = None) -> None:
    """Append one row to the integration log: what a step kept and why it removed the rest.

    Steps that remove order lines give the revenue they removed (``amount_removed``), so that the
    facts balance staging (the contract ``balances staging: revenue``).
    """
    log.append({"step": step, "rows_in": int(rows_in), "rows_removed": int(rows_in - rows_out),
                "rows_out": int(rows_out), "reason": reason,
                "amount_removed": None if amount_removed is None else round(float(amount_removed), 2)})


def lines_and_revenue(lines: ir.Table) -> tuple[int, float]:
    """Number of order lines and their total ``line_amount`` (0 when there are none)."""
    size = lines.aggregate(n=lines.count(), amount=lines.line_amount.sum()).to_pyarrow().to_pylist()[0]
    return size["n"], float(size["amount"] or 0)


# --------------------------------------------------------------------------------------------
# The steps
# --------------------------------------------------------------------------------------------

def standardise_step(con, settings: Settings, roles: pd.DataFrame) -> ir.Table:
    """Step 1: one standardised row per source customer record (see :mod:`.standardise`)."""
    return standardise.standardised_customers(con, phone_countries(roles), settings.country)


def current_stores(con) -> ir.Table:
    """Each store's newest staged record: store_id, store_name, region, channel."""
    return first_per_key(con.table("stg_store"), "store_id").select("store_id", "store_name", "region", "channel")


def is_training_store(stores: ir.Table, settings: Settings) -> ir.BooleanValue:
    """Stores whose name matches one of the settings' training-till patterns (SQL LIKE, any case)."""
    return ibis.or_(*[stores.store_name.ilike(p) for p in settings.training_stores]).fill_null(False) \
        if settings.training_stores else ibis.literal(False)


def remove_junk(con, records: ir.Table, settings: Settings, log: list[dict]) -> tuple[ir.Table, ir.Table]:
    """Step 2: flag junk customer records and clean the order lines; log what went.

    Returns:
        (the records with ``is_junk``, the staged order lines without exact duplicate rows, the
        training tills' receipts and the orders of junk customer records).
    """
    records = wh.temporary(records.mutate(is_junk=standardise.is_junk_record(records, settings)))
    n_records, n_junk = records.count().execute(), records.is_junk.sum().execute()
    log_step(log, "customer records", n_records, n_records - n_junk,
             "test and junk records: test names, test e-mail domains")

    stores = current_stores(con)
    training = stores.filter(is_training_store(stores, settings)).store_id
    junk = records.filter(records.is_junk).select("source", customer_ref="source_record_id")
    lines = standardise.distinct_order_lines(con)
    n_staged, staged = lines_and_revenue(con.table("stg_order_line"))
    n_distinct, distinct = lines_and_revenue(lines)
    log_step(log, "order lines", n_staged, n_distinct, DUPLICATE_LINES, staged - distinct)
    clean = lines.filter(~lines.store_id.fill_null("").isin(training)).anti_join(junk, ["source", "customer_ref"])
    n_clean, kept = lines_and_revenue(clean)
    log_step(log, "order lines", n_distinct, n_clean, TEST_ORDERS, distinct - kept)
    return records, clean


def resolve(con, records: ir.Table, master: str | None, threshold: float, seed: int,
            log: list[dict]) -> ir.Table:
    """Step 3: ``identity_map`` (source, source_record_id, customer_id) for records and loyalty cards.

    The method (a Splink model, or deterministic matching when none can be estimated) and its
    reason are logged under "identity resolution".
    """
    real = records.filter(~records.is_junk)
    people = real.select("unique_id", *identity.IDENTIFIERS).order_by("unique_id").to_pandas()
    clusters, method = identity.resolve_identities(people, threshold=threshold, seed=seed)
    resolved = wh.temporary(identity.customer_ids(real, clusters))
    log_step(log, "identity resolution", len(people), resolved.customer_id.nunique().execute(), method)
    record_sources = set(real.select("source").distinct().to_pandas().source)
    till_sources = set(con.table("stg_order_line").select("source").distinct().to_pandas().source) - record_sources
    return (ibis.union(resolved.select("source", "source_record_id", "customer_id"),
                       *identity.card_identities(resolved, sorted(till_sources), master))
            .order_by(["customer_id", "source", "source_record_id"]))


def build_star(con, records: ir.Table, identity_map: ir.Table, lines: ir.Table, settings: Settings,
               roles: pd.DataFrame, master: str | None, log: list[dict]) -> dict[str, ir.Table]:
    """Step 4: the single customer view and the star schema, as expressions by table name."""
    stores = current_stores(con)
    products = wh.temporary(first_per_key(con.table("stg_product"), "sku").select(
        "sku", "product_name", "category", "tier", "list_price", "unit_cost").order_by("sku"))
    log_step(log, "products", con.table("stg_product").count().execute(), products.count().execute(),
             "repeated sku: the latest record wins")
    facts = wh.temporary(order_line_facts(lines, identity_map, products))
    regions = home_region(facts.filter(facts.customer_id.notnull()), stores, settings.store_channel)
    golden = (golden_records(records.filter(~records.is_junk), identity_map, source_order(roles))
              .left_join(regions, "customer_id").drop("customer_id_right")
              .mutate(region=_.region.fill_null("online only")))
    span = facts.aggregate(first=facts.order_date.min(), last=facts.order_date.max()).to_pandas().iloc[0]
    interactions = con.table("stg_interaction").select(
        "source", "interaction_id", "customer_ref", "interaction_ts", interaction_date=_.interaction_ts.date(),
        channel="channel", reason_code="reason_code", outcome="outcome").distinct()
    contacts = con.table("stg_campaign_contact").select(
        "source", "campaign_id", "customer_ref", "contact_date", "channel", "treatment_group").distinct()
    responses = con.table("stg_campaign_response").select(
        "source", "campaign_id", "customer_ref", "response_date", "response_type", "order_id",
        "response_value").distinct()
    return {
        "dim_customer": golden.order_by("customer_id"),
        "dim_product": with_inferred_members(products, facts, "sku", product_name=_.sku.min()).order_by("sku"),
        "dim_date": date_dimension(span["first"], span["last"]),
        "dim_channel": with_inferred_members(channel_dimension(stores, settings), facts, "store_id",
                                             channel=_.channel.min()).order_by("store_id"),
        "dim_campaign": first_per_key(con.table("stg_campaign"), "campaign_id").select(
            "campaign_id", "campaign_name", "channel", "start_date", "end_date", "offer", "offer_type"
        ).order_by("campaign_id"),
        "fact_order_line": facts,
        "fact_interaction": map_customer(interactions, identity_map).order_by("interaction_ts"),
        "fact_campaign_contact": map_customer(contacts, identity_map, master).order_by(["campaign_id", "customer_id"]),
        "fact_campaign_response": map_customer(responses, identity_map, master).order_by(
            ["campaign_id", "customer_id", "response_date"]),
    }


NEW = "_next_"  # prefix of the tables being built, until they are swapped in


def checkpoint(step: str) -> None:
    """Test hook: ``CRM_KILL_AT=<step>`` kills the process here, as a power cut would (tests/test_atomic.py)."""
    if os.environ.get("CRM_KILL_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)


def write_tables(con, tables: dict[str, ir.Table], run_id: int) -> pd.DataFrame:
    """The one writer: build every table under a new name, check the contracts, swap all in at once.

    Each table is written as ``_next_<name>``; :data:`.contracts.CONTRACTS` are checked on them;
    then one transaction drops the previous tables, renames the new ones and marks run ``run_id``
    complete, with the contract results (``contract_check``). A broken contract raises
    :class:`.contracts.ContractFailed` and leaves the previous tables.

    Returns:
        The contract results (one row per contract).
    """
    for name, expr in tables.items():
        con.create_table(NEW + name, expr, overwrite=True)
    checkpoint("written")
    results = contracts.check(con, prefix=NEW, built=tables)
    con.create_table(NEW + "contract_check", ibis.memtable(results), overwrite=True)
    try:
        contracts.require(results)
    except contracts.ContractFailed:
        drop_new_tables(con)
        raise
    swap([*tables, "contract_check"], con, run_id)
    return results


def swap(names: list[str], con, run_id: int) -> None:
    """Replace each table of ``names`` by its ``_next_`` version and mark the run complete, in one transaction."""
    raw = con.con
    with wh.transaction(raw):
        for name in names:
            raw.execute(f'DROP TABLE IF EXISTS "{name}"')
            raw.execute(f'ALTER TABLE "{NEW}{name}" RENAME TO "{name}"')
        raw.execute("UPDATE integration_run SET finished_at = now()::TIMESTAMP, status = 'complete' "
                    "WHERE run_id = ?", [run_id])
        checkpoint("swap")
    checkpoint("committed")


def drop_new_tables(con) -> None:
    """Drop the ``_next_`` tables of a failed or killed run."""
    for name in con.list_tables(like=f"^{NEW}"):
        con.drop_table(name)


def start_run(con) -> int:
    """Record a new run in ``integration_run`` as ``running``; return its ``run_id``.

    A run killed before its swap stays ``running``: the record says it did not finish.
    """
    raw = con.con
    raw.execute("CREATE TABLE IF NOT EXISTS integration_run (run_id INTEGER, started_at TIMESTAMP, "
                "finished_at TIMESTAMP, status VARCHAR)")
    run_id = raw.execute("SELECT coalesce(max(run_id), 0) + 1 FROM integration_run").fetchone()[0]
    raw.execute("INSERT INTO integration_run VALUES (?, now()::TIMESTAMP, NULL, 'running')", [run_id])
    return run_id


def end_run(con, run_id: int, status: str) -> None:
    """Mark run ``run_id`` finished with ``status`` (a failed run; a complete one is marked by :func:`swap`)."""
    con.con.execute("UPDATE integration_run SET finished_at = now()::TIMESTAMP, status = ? WHERE run_id = ?",
                    [status, run_id])


def integrate(warehouse: Path | str | None = None, threshold: float | None = None,
              progress: bool = True, seed: int = config.DEFAULT_SEED) -> dict:
    """Build identity_map, dim_customer and the star schema from the staging tables.

    Args:
        warehouse: the DuckDB warehouse file holding the staging tables.
        threshold: Splink match probability at which two records are one customer (default: the
            ``match_threshold`` setting).
        progress: show a progress bar over the steps.
        seed: seed of Splink's random sampling.
    Returns:
        A summary: record counts, junk and duplicates removed, customers, order lines, the
        identity-resolution method, the contracts that hold.
    Raises:
        contracts.ContractFailed: a new table breaks a contract; the previous tables are kept.
    """
    started = time.perf_counter()
    con = wh.connect(warehouse)
    try:
        drop_new_tables(con)
        run_id = start_run(con)
        try:
            run_steps(con, threshold, seed, progress, run_id)
        except BaseException:
            end_run(con, run_id, "failed")
            raise
        summary = integration_summary(con)
    finally:
        con.disconnect()
    return {**summary, "seconds": round(time.perf_counter() - started, 1)}


def run_steps(con, threshold: float | None, seed: int, progress: bool, run_id: int) -> None:
    """The four steps and the writer (run ``run_id`` of ``integration_run``) on an open warehouse connection.

    Results used several times are kept in temporary tables (:func:`crm_helpers.warehouse.temporary`),
    gone when the connection closes.
    """
    from tqdm.auto import tqdm

    settings, roles = wh.settings(con), wh.source_roles(con)
    threshold = settings.match_threshold if threshold is None else threshold
    log: list[dict] = []
    with tqdm(total=5, desc="integrate", disable=not progress) as steps:
        records = standardise_step(con, settings, roles)
        checkpoint("standardised")
        steps.update()
        records, lines = remove_junk(con, records, settings, log)
        steps.update()
        master = customer_master(roles, set(records.select("source").distinct().to_pandas().source))
        identity_map = wh.temporary(resolve(con, records, master, threshold, seed, log))
        steps.update()
        star = build_star(con, records, identity_map, lines, settings, roles, master, log)
        steps.update()
        write_tables(con, {"customer_record": records, "identity_map": identity_map, **star,
                           "integration_log": ibis.memtable(pd.DataFrame(log))}, run_id)
        steps.update()


# --------------------------------------------------------------------------------------------
# Star schema builders
# --------------------------------------------------------------------------------------------

def golden_records(records: ir.Table, identity_map: ir.Table, order: list[str]) -> ir.Table:
    """``dim_customer``: one row per customer_id, by the rules in :data:`SURVIVORSHIP`.

    ``order`` lists the sources by survivorship priority (:func:`source_order`); sources missing
    from it come last.
    """
    priority = ibis.cases(*[(records.source == s, i) for i, s in enumerate(order)], else_=len(order)) \
        if order else ibis.literal(0)
    r = records.join(identity_map, ["source", "source_record_id"]).mutate(priority=priority)

    def best(col):
        # NULLs sort last, so the first value is the best non-empty one; unique_id breaks ties
        return r[col].first(order_by=[r[col].isnull(), r.priority, ibis.desc(r.signup_ts), r.unique_id])

    fields = ["first_name", "last_name", "email", "phone", "street", "postcode", "city", "birth_date"]
    return r.group_by("customer_id").aggregate(
        **{f: best(f) for f in fields},
        signup_date=r.signup_ts.min().date(),
        acquisition_channel=r.signup_channel.first(order_by=[r.signup_ts.isnull(), r.signup_ts, r.unique_id]),
        loyalty_card=best("loyalty_card"),
        email_opt_in=_most_restrictive(r.email_opt_in),
        sms_opt_in=_most_restrictive(r.sms_opt_in),
        do_not_contact=r.do_not_contact.any().fill_null(False),
        n_source_records=r.count(),
        sources=r.source.collect(distinct=True, order_by=r.source).join(","),
    )


def _most_restrictive(flag: ir.BooleanColumn) -> ir.BooleanScalar:
    """Consent: true only if some record says yes and none says no."""
    return (flag.any() & flag.all()).fill_null(False)


def home_region(orders: ir.Table, stores: ir.Table, store_channel: str) -> ir.Table:
    """Each customer's region: the region of the store where they bought most lines.

    Customers who never bought in a store (order lines of channel ``store_channel``) have no home
    region (NULL, shown as "online only").
    """
    store_lines = (orders.filter(orders.channel == store_channel).join(stores.select("store_id", "region"), "store_id")
                   .group_by(["customer_id", "region"]).aggregate(lines=_.count()))
    return first_per_key(store_lines, "customer_id", order_by=[ibis.desc("lines"), "region"]).select(
        "customer_id", "region")


def channel_dimension(stores: ir.Table, settings: Settings) -> ir.Table:
    """``dim_channel``: the stores (training tills left out) plus one row for the web shop."""
    web = ibis.memtable({"store_id": [settings.web_store_id], "store_name": ["Web shop"], "region": ["online"],
                         "channel": [settings.web_channel]}, schema=stores.schema())
    return stores.filter(~is_training_store(stores, settings)).union(web).order_by("store_id")


def order_line_facts(lines: ir.Table, identity_map: ir.Table, products: ir.Table) -> ir.Table:
    """``fact_order_line``: clean order lines with customer, cost and return flag.

    A line's ``customer_ref`` is a customer key of its own source (the e-mail of a web order, the
    loyalty card on a receipt), found in ``identity_map``; a receipt without a known card stays
    anonymous (customer_id NULL).
    """
    ids = identity_map.select(source="source", customer_ref="source_record_id", customer_id="customer_id")
    t = (lines.left_join(ids, ["source", "customer_ref"])
         .left_join(products.select("sku", "unit_cost"), "sku"))
    return t.select(
        "order_id", "line_no", "customer_id", "order_ts", order_date=t.order_ts.date(),
        store_id="store_id", channel="channel", sku="sku", quantity="quantity", unit_price="unit_price",
        line_amount="line_amount", cost_amount=(t.quantity * t.unit_cost).cast("decimal(14, 2)"),
        is_return=t.quantity < 0, source="source",
    ).order_by(["order_ts", "order_id", "line_no"])


def with_inferred_members(dimension: ir.Table, facts: ir.Table, key: str, **known) -> ir.Table:
    """``dimension`` plus one row for each ``key`` the facts use but no source describes.

    Kimball's inferred members: an organisation without a product list or store list still gets
    a row per product or store its sales name, so that every fact finds its dimension (the
    contract ``relationships``). ``known`` computes columns from the facts (e.g. the product name
    is the sku); the other columns are empty.
    """
    missing = facts.filter(facts[key].notnull()).anti_join(dimension.select(key), key)
    rows = missing.group_by(key).aggregate(**known) if known else missing.select(key).distinct()
    types = {c: t.copy(nullable=True) for c, t in dimension.schema().items()}
    return dimension.cast(types).union(
        rows.select(*[rows[c].cast(t) if c in rows.columns else ibis.null(t).name(c) for c, t in types.items()]))


def date_dimension(first, last) -> ir.Table:
    """``dim_date``: one row per calendar day from ``first`` to ``last`` (a small table)."""
    days = pd.date_range(first, last, freq="D")
    return ibis.memtable(pd.DataFrame({
        "date": days.date, "year": days.year, "quarter": days.quarter, "month": days.month,
        "year_month": days.strftime("%Y-%m"), "year_quarter": days.year.astype(str) + "-Q" + days.quarter.astype(str),
        "week": days.isocalendar().week.to_numpy(), "day_of_week": days.day_name(),
        "is_weekend": days.dayofweek >= 5}))


def map_customer(facts: ir.Table, identity_map: ir.Table, source: str | None = None) -> ir.Table:
    """Replace a fact's ``customer_ref`` by its ``customer_id``.

    The reference is a record id of the fact's own source, or of ``source`` when given (campaign
    platforms key their contacts by the customer master's ids).
    """
    ids = identity_map.select(ref_source="source", customer_ref="source_record_id", customer_id="customer_id")
    keyed = facts.mutate(ref_source=ibis.literal(source) if source else facts.source)
    return (keyed.left_join(ids, ["ref_source", "customer_ref"])
            .drop("ref_source", "customer_ref", "ref_source_right", "customer_ref_right", "source"))


# --------------------------------------------------------------------------------------------
# What the notebook and the command line show
# --------------------------------------------------------------------------------------------

def integration_summary(con) -> dict:
    """Headline counts of the last integration, from ``integration_log`` and the written tables."""
    log = con.table("integration_log").to_pandas()
    records, orders = log[log.step == "customer records"].iloc[0], log[log.step == "order lines"]
    facts = con.table("fact_order_line")
    return {
        "customer_records": int(records.rows_in), "junk_records": int(records.rows_removed),
        "customers": int(con.table("dim_customer").count().execute()),
        "order_lines_staged": int(orders.rows_in.iloc[0]), "exact_duplicate_lines": int(orders.rows_removed.iloc[0]),
        "test_order_lines": int(orders.rows_removed.iloc[1]),
        "order_lines": int(facts.count().execute()),
        "anonymous_order_lines": int(facts.customer_id.isnull().sum().execute()),
        "identity_resolution": log.loc[log.step == "identity resolution", "reason"].iloc[0],
        "contracts": contracts_held(con),
    }


def contracts_held(con) -> str:
    """How many of the warehouse's contracts held at the last integration (table ``contract_check``)."""
    if "contract_check" not in con.list_tables():
        return "not checked"
    checked = con.table("contract_check")
    held = checked.filter(checked.failures == 0).count().execute()
    return f"{held} of {checked.count().execute()} hold"


def source_overlap(con):
    """Customers by the combination of sources they were found in (``sources``: "a + b")."""
    overlap = (con.table("dim_customer").group_by("sources").aggregate(customers=_.count())
               .order_by([ibis.desc("customers"), "sources"]).to_pandas())
    return overlap.assign(sources=overlap.sources.str.replace(",", " + ", regex=False))


def consent_summary(con):
    """Customers who may be contacted by e-mail, by SMS, and who asked not to be contacted."""
    c = con.table("dim_customer")
    return c.aggregate(customers=c.count(), email_opt_in=c.email_opt_in.sum(),
                       sms_opt_in=c.sms_opt_in.sum(), do_not_contact=c.do_not_contact.sum()).to_pandas()


def star_schema_counts(con):
    """Rows in each table of the star schema."""
    return pd.DataFrame({"table": STAR_SCHEMA,
                         "rows": [int(con.table(t).count().execute()) for t in STAR_SCHEMA]})


def standardisation_examples(con, per_source: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first ``per_source`` real (not junk) customer records of each source, as staged and as
    standardised (``customer_record``): two frames with ``source``, ``record`` (1, 2, ...) and the
    record's fields. Personal fields are left as they are: mask them before showing them."""
    records = con.table("customer_record")
    real = records.filter(~records.is_junk)
    after = (real.mutate(record=real.unique_id.rank().over(group_by="source", order_by="unique_id") + 1)
             .filter(lambda t: t.record <= per_source).order_by(["source", "record"]).to_pandas())
    staged = first_per_key(con.table("stg_customer"), ["source", "source_record_id"])
    wanted = ibis.memtable(after[["source", "source_record_id", "record"]])
    before = staged.join(wanted, ["source", "source_record_id"]).order_by(["source", "record"]).to_pandas()
    return before, after
