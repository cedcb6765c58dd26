"""The simulation driver: people in fixed-size chunks, each chunk's rows appended to the files.

Memory is bounded by the chunk size: only ID counters, e-mail hashes (8 bytes per address) and
small accumulators (cohort counts, the order mix for the affinity truth, campaign effects) are
carried across chunks. Each chunk draws from its own generator, spawned from the seed by chunk
number (np.random.SeedSequence), so the same seed and size give byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from crm_helpers.config import DEFAULT_SEED, END_DATE, START_DATE, private_files

from . import world as w
from .behaviour import (SEASON, SEASONALITY, STORE, WEB, assign_tiers, calendar_events,
                        calendar_month, campaign_window, draw_lines, draw_walkins,
                        first_complaint, merge_purchases, purchases_between, quarter_label,
                        quarter_tiers, run_campaigns, simulate_calls, simulate_purchases,
                        trim_calls)
from .clock import (DAY, MONTH_DAYS, N_MONTHS, START_S, day_number, format_date, format_timestamp,
                    month_index, month_label, to_local)
from .defects import DefectRates, defect_frame, impossible_timestamps, pick_defect_rows
from .orders import (TRAINING, Built, OrderSet, build_pos, build_web, concat_orders, orders_of,
                     staff_test_orders)
from .output import Output, month_runs, monthly_file
from .people import EmailRegistry, People, add_life_events, draw_people, existing_base_share
from .records import build_master, money, qa_customer_fields, tickets, web_customer_fields
from .text import cat, ids

CHUNK_SIZE = 25_000  # people per chunk: bounds memory (~0.5 GB peak); fastest around 20-25k
NO_TIME = np.iinfo(np.int64).max
DUP_REF_IN_CAMPAIGNS = 0.3  # the e-mail platform sometimes holds the newer master record
# The window's last 12 months are the holdout year of the BG/NBD calibration (truth: alive then).
HOLDOUT_START = END_DATE.replace(year=END_DATE.year - 1) + timedelta(days=1)
HOLDOUT_START_S = day_number(HOLDOUT_START) * DAY


@dataclass
class World:
    """Fixed parts of the sample world, drawn once from the seed."""

    names: w.NameBook
    products: pd.DataFrame
    campaigns: list[w.Campaign]
    seasonality: float = SEASONALITY  # strength of seasonality and calendar events (0 = off)


@dataclass
class RunState:
    """What is carried from chunk to chunk."""

    counters: dict = field(default_factory=lambda: {"cm": 0, "receipt": 0, "web": 0, "ticket": 0})
    emails: EmailRegistry = field(default_factory=EmailRegistry)
    qa_emails: set = field(default_factory=set)
    cohort: np.ndarray = field(default_factory=lambda: np.zeros((N_MONTHS, N_MONTHS), np.int64))
    basket_mix: np.ndarray = field(  # sales orders by segment x calendar month (affinity truth)
        default_factory=lambda: np.zeros((len(w.SEGMENTS), 12), np.int64))
    summary: dict = field(default_factory=dict)
    effect_sum: np.ndarray = field(  # true uplift of contacted people by campaign x segment
        default_factory=lambda: np.zeros((len(w.CAMPAIGNS), len(w.SEGMENTS))))
    effect_n: np.ndarray = field(
        default_factory=lambda: np.zeros((len(w.CAMPAIGNS), len(w.SEGMENTS)), np.int64))

    def numberer(self, kind: str):
        """Function handing out the next consecutive numbers of a kind, in time order."""
        def number(t: np.ndarray) -> np.ndarray:
            order = np.argsort(t, kind="stable")
            out = np.empty(len(t), dtype=np.int64)
            out[order] = self.counters[kind] + 1 + np.arange(len(t))
            self.counters[kind] += len(t)
            return out
        return number

    def count(self, key: str, k: int) -> None:
        self.summary[key] = self.summary.get(key, 0) + int(k)


def generate(out_dir: Path, customers: int = 20_000, seed: int = DEFAULT_SEED,
             progress: bool = True, *, rates: DefectRates | None = None,
             chunk_size: int = CHUNK_SIZE, seasonality: float = SEASONALITY) -> dict:
    """Simulate the retailer and write out_dir/raw, out_dir/truth and out_dir/sources.yml.

    customers: number of CRM people (N); seed: all randomness derives from it; progress: show
    a tqdm bar over chunks; rates: defect rates (DefectRates() by default); chunk_size: people
    simulated at once (memory bound, not a model parameter); seasonality: strength of the
    monthly seasonality, shocks and Easter (1 as designed, 0 = a flat purchase intensity).
    Returns a summary of counts (people, master records, receipts, lines, tickets, ...).
    """
    if customers < 1:
        raise ValueError("customers must be positive")
    rates = rates or DefectRates()
    private_files()  # the exports hold (invented) personal data, like real ones
    world_seq, chunk_seq = np.random.SeedSequence(seed).spawn(2)
    world = build_world(np.random.default_rng(world_seq))
    world.seasonality = float(seasonality)
    out = Output(out_dir)
    out.start([c.campaign_id for c in world.campaigns])
    write_reference_files(out, world)
    state = RunState()
    n_chunks = -(-customers // chunk_size)
    for k, chunk_rng_seq in enumerate(tqdm(chunk_seq.spawn(n_chunks), disable=not progress,
                                           desc="sample world", unit="chunk")):
        first = k * chunk_size
        simulate_chunk(world, state, rates, np.random.default_rng(chunk_rng_seq), first,
                       min(chunk_size, customers - first), k == 0, out)
    write_final_truth(out, world, state, rates, seed, customers, chunk_size)
    return {"customers": customers, "seed": seed, "out_dir": str(out.base), **state.summary,
            "raw_files": len(out.files_written)}


def build_world(rng: np.random.Generator) -> World:
    """Names, catalogue and campaign calendar (independent of the number of customers)."""
    return World(w.build_name_book(), w.build_products(rng), w.build_campaigns(rng))


def write_reference_files(out: Output, world: World) -> None:
    """Products, stores and campaigns (small files written once)."""
    prod = world.products
    out.write_table("products", "products/products.csv", {
        "sku": prod["sku"], "product_name": prod["product_name"], "category": prod["category"],
        "tier": prod["tier"], "list_price": money(prod["list_pence"]),
        "unit_cost": money(prod["cost_pence"])})
    stores = list(w.STORES) + [w.TRAINING_STORE]
    out.write_table("stores", "pos/stores.csv", {
        "store_id": [s[0] for s in stores], "store_name": [s[1] for s in stores],
        "region": [w.REGIONS[s[2]] for s in stores], "channel_type": ["store"] * len(stores)})
    cs = world.campaigns
    out.write_table("campaigns", "campaigns/campaigns.csv", {
        "campaign_id": [c.campaign_id for c in cs], "campaign_name": [c.name for c in cs],
        "channel": [c.channel for c in cs], "start_date": [c.start.isoformat() for c in cs],
        "end_date": [(pd.Timestamp(c.start) + pd.Timedelta(days=w.CAMPAIGN_WINDOW_DAYS - 1))
                     .date().isoformat() for c in cs],
        "offer": [c.offer for c in cs], "offer_type": [c.offer_type for c in cs]})


def simulate_chunk(world: World, state: RunState, rates: DefectRates, rng: np.random.Generator,
                   first_index: int, n: int, first_chunk: bool, out: Output) -> None:
    """Simulate n people and append all their records and truth to the files."""
    p = draw_people(rng, first_index, n, world.names, state.emails)
    add_life_events(p, rng, rates, world.names, state.emails)
    master = build_master(rng, p, rates)
    refs = number_master(master, state)
    calls = simulate_calls(rng, p)
    organic, dropout_t = simulate_purchases(rng, p, first_complaint(calls, n), world.seasonality)
    after_purchase = dropout_t.copy()
    contacts, extras, organic, dropout_t = run_campaigns(
        rng, p, organic, dropout_t, world.campaigns,
        {"email": master.email_on_file, "sms": master.phone_on_file}, world.seasonality)
    calls = trim_calls(calls, dropout_t)
    add_effects(state, contacts, p)
    pur = merge_purchases([organic, *extras], n)
    tier, final_tier = assign_tiers(rng, pur, p)
    order_seg, order_month = p["segment"][pur.person], calendar_month(pur.t)
    lines = draw_lines(rng, order_seg, tier, world.products, order_month)
    add_baskets(state, order_seg, order_month)
    pos = build_pos(rng, store_sales(rng, p, pur, lines, master, world, rates, state), rates,
                    world.products, state.numberer("receipt"), first_chunk)
    web = build_web(rng, web_sales(rng, p, pur, lines, world, rates), rates, world.products,
                    state.numberer("web"), first_chunk)
    order_ref = np.empty(len(pur.t), dtype=object)
    is_store = pur.channel == STORE
    order_ref[is_store] = pos.order_ids.to_numpy(zero_copy_only=False)[:is_store.sum()]
    order_ref[~is_store] = web.order_ids.to_numpy(zero_copy_only=False)[:(~is_store).sum()]
    gross = np.bincount(lines.order, lines.qty * lines.unit_pence, minlength=len(pur.t))
    defects = write_master(out, rng, master, refs, rates) + pos.defects + web.defects
    write_orders(out, "pos", pos)
    write_orders(out, "webshop", web)
    defects += write_tickets(out, rng, p, calls, rates, state)
    write_campaigns(out, rng, world, p, contacts, pur, order_ref, gross, master, refs)
    defects += write_identity(out, p, master, web, state)
    out.append_truth("orders", {k: np.concatenate([_objects(pos.truth_orders[k]),
                                                  _objects(web.truth_orders[k])])
                                for k in ("source", "order_id", "person_id")})
    out.append_truth("defects", pd.concat([pd.DataFrame(d) for d in defects], ignore_index=True))
    write_people(out, p, dropout_t, dropout_t != after_purchase, final_tier,
                 {"email": master.email_on_file, "phone": master.phone_on_file})
    write_tiers(out, p, quarter_tiers(pur, tier, p, dropout_t))
    add_cohorts(state, pur)
    kind = master.table["kind"].to_numpy(dtype=str)
    for key, k in (("people", n), ("crm_master_records", len(kind)),
                   ("duplicate_master_records", (kind == "duplicate").sum()),
                   ("test_master_records", (kind == "junk").sum()),
                   ("purchases", len(pur.t)), ("campaign_purchases", (pur.campaign >= 0).sum()),
                   ("pos_receipts", len(pos.truth_orders["order_id"])),
                   ("pos_lines", len(pos.month)),
                   ("web_orders", len(web.truth_orders["order_id"])),
                   ("web_lines", len(web.month)),
                   ("tickets", len(calls.t)), ("campaign_contacts", len(contacts)),
                   ("defects", sum(len(d["source"]) for d in defects))):
        state.count(key, k)


def _objects(values) -> np.ndarray:
    """Object array from a pyarrow or numpy column."""
    if isinstance(values, pa.Array):
        values = values.to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=object)


def add_baskets(state: RunState, seg: np.ndarray, month: np.ndarray) -> None:
    """Count sales orders by the segment their lines were drawn for and calendar month (1-12).

    Only the mix is kept: the affinity truth weighs the designed basket probabilities by it.
    """
    np.add.at(state.basket_mix, (seg, month - 1), 1)


def number_master(master, state: RunState) -> dict:
    """CM ids in sign-up order; returns each person's primary and duplicate reference.

    "duplicate" is the person's first re-registration (the one ``master.dup_t`` dates); a
    second re-registration has a CM id but no reference here.
    """
    table = master.table
    table["customer_ref"] = ids("CM", state.numberer("cm")(table["signup_s"].to_numpy()), 8) \
        .to_numpy(zero_copy_only=False)
    n = len(master.has_dup)
    primary = np.empty(n, dtype=object)
    dup = np.full(n, "", dtype=object)
    kind = table["kind"].to_numpy(dtype=str)
    person = table["person"].to_numpy()
    ref = table["customer_ref"].to_numpy(dtype=object)
    primary[person[kind == "primary"]] = ref[kind == "primary"]
    later_first = np.flatnonzero(kind == "duplicate")[::-1]  # the earliest assignment wins
    dup[person[later_first]] = ref[later_first]
    return {"primary": primary, "duplicate": dup}


def store_sales(rng, p: People, pur, lines, master, world: World, rates,
                state: RunState) -> OrderSet:
    """Till receipts of CRM people (with their loyalty card), walk-ins and the training till."""
    is_store = pur.channel == STORE
    person = pur.person[is_store]
    t = pur.t[is_store]
    home = p["home_store"][person]
    store = np.where(rng.random(len(person)) < w.HOME_STORE_SHARE, home,
                     rng.integers(0, len(w.STORES), len(person)))
    # After a re-registration with a replacement card the new card is used.
    new = master.dup_new_card[person] & (t >= master.dup_t[person])
    card = np.where(new, p["new_card"][person],
                    p["card"][person])
    person_ids = p["person_id"].astype(object)[pur.person]
    crm = orders_of(person_ids, pur.t, lines, is_store, {"store": store, "card": card})
    walk_t, walk_store, walk_tier = draw_walkins(rng, crm.t)
    k = len(walk_t)
    walk_month = calendar_month(walk_t)
    walk_lines = draw_lines(rng, np.full(k, 2), walk_tier, world.products, walk_month)
    add_baskets(state, np.full(k, 2), walk_month)
    walkins = OrderSet(walk_t, np.full(k, "", dtype=object), walk_lines,
                       {"store": walk_store, "card": np.full(k, "")})
    k = rng.binomial(len(crm.t) + k, rates.training_receipt)
    tr_t, tr_lines = staff_test_orders(rng, k, world.products, 0)
    training = OrderSet(tr_t, np.full(k, "", dtype=object), tr_lines,
                        {"store": np.full(k, TRAINING), "card": np.full(k, "")})
    return concat_orders([crm, walkins, training])


def web_sales(rng, p: People, pur, lines, world: World, rates) -> OrderSet:
    """Web orders of CRM people (typed details vary by order) and QA test orders."""
    is_web = pur.channel == WEB
    fields = web_customer_fields(rng, p, pur.person[is_web], rates, pur.t[is_web])
    fields["is_test"] = np.zeros(is_web.sum(), dtype=bool)
    person_ids = p["person_id"].astype(object)[pur.person]
    crm = orders_of(person_ids, pur.t, lines, is_web, fields)
    k = rng.binomial(len(crm.t), rates.test_web_order)
    qa_t, qa_lines = staff_test_orders(rng, k, world.products, 1)
    qa = qa_customer_fields(rng, k)
    qa["is_test"] = np.ones(k, dtype=bool)
    return concat_orders([crm, OrderSet(qa_t, np.full(k, "", dtype=object), qa_lines, qa)])


def _append_monthly(out: Output, source: str, columns: dict, month: np.ndarray,
                    replaced: dict | None = None) -> None:
    """Append rows (sorted by month) to the month files of a source."""
    replaced = replaced or {}
    for m, a, b in month_runs(month):
        part = {c: (v.slice(a, b - a) if isinstance(v, pa.Array) else v[a:b])
                for c, v in columns.items()}
        local = {r - a: text for r, text in replaced.items() if a <= r < b}
        out.append_rows(source, monthly_file(source, m), part, local)


def write_orders(out: Output, source: str, built: Built) -> None:
    """Append a channel's order lines to its month files."""
    _append_monthly(out, source, built.columns, built.month, built.replaced)


def write_master(out: Output, rng, master, refs: dict, rates: DefectRates) -> list:
    """Append CRM master records (already in sign-up order) and return their defects.

    Records signed up before the window (the existing base) go to the first month's file with
    their original sign-up time, as a first export of the whole master would carry them.

    A few birth dates are typed impossibly (31/02, the year 2099): the loader keeps the record
    and sets the value aside.
    """
    t = master.table
    local = to_local(t["signup_s"].to_numpy())
    birth = t["birth_day"].to_numpy()
    has_birth = birth > -10**6
    birth_text = np.where(has_birth, np.asarray(format_date(np.where(has_birth, birth, 0), "uk")
                                                .to_numpy(zero_copy_only=False), dtype=object), "")
    cols = {c: t[c].to_numpy(dtype=object) for c in
            ("customer_ref", "first_name", "last_name", "email", "phone", "street", "postcode",
             "city", "signup_channel", "loyalty_card", "email_opt_in", "sms_opt_in",
             "do_not_contact")}
    bad_birth = pick_defect_rows(rng, np.flatnonzero(has_birth & (t["kind"].to_numpy(dtype=str) != "junk")),
                                 rates.impossible_birth_date, len(birth), False)
    birth_text[bad_birth] = impossible_timestamps(rng, birth_text[bad_birth].astype(str), "uk")
    cols["birth_date"] = birth_text
    cols["signup_time"] = format_timestamp(local, "uk_minutes")
    month = np.maximum(month_index(local), 0)  # the existing base: in the first month's file
    _append_monthly(out, "crm_master", cols, month)
    files = np.array([monthly_file("crm_master", m) for m in range(N_MONTHS)], dtype=object)[month]
    kind = t["kind"].to_numpy(dtype=str)
    ref = cols["customer_ref"]
    dup, junk = kind == "duplicate", kind == "junk"
    defects = [defect_frame("crm_master", files[dup], ref[dup], "duplicate_person"),
               defect_frame("crm_master", files[junk], ref[junk], "test_record"),
               defect_frame("crm_master", files[bad_birth], ref[bad_birth], "impossible_birth_date")]
    real = kind != "junk"
    for c in ("email", "phone", "street", "postcode", "city", "birth_date"):
        blank = real & (cols[c] == "")
        defects.append(defect_frame("crm_master", files[blank], ref[blank], f"missing_value:{c}"))
    return defects


def write_tickets(out: Output, rng, p: People, calls, rates, state: RunState) -> list:
    """Append call-centre tickets; record their identity truth and defects."""
    tk = tickets(rng, p, calls.person, rates, calls.t)
    numbers = state.numberer("ticket")(calls.t)
    order = np.argsort(numbers)
    local = to_local(calls.t[order])
    ticket_id = ids("T", numbers[order], 8)
    cols = {"ticket_id": ticket_id, "contact_time": format_timestamp(local, "iso")}
    for c in ("caller_name", "caller_email", "caller_phone", "caller_postcode"):
        cols[c] = tk[c].to_numpy(dtype=object)[order]
    cols["reason_code"] = np.array(w.REASON_CODES, dtype=object)[calls.reason[order]]
    cols["outcome"] = np.array(w.OUTCOMES, dtype=object)[calls.outcome[order]]
    month = month_index(local)
    _append_monthly(out, "callcentre", cols, month)
    person_id = p["person_id"].astype(object)[calls.person[order]]
    out.append_truth("identity", {"source": np.full(len(order), "callcentre", dtype=object),
                                  "source_record_id": ticket_id, "person_id": person_id,
                                  "variation": tk["variation"].to_numpy(dtype=object)[order]})
    files = np.array([monthly_file("callcentre", m) for m in range(N_MONTHS)], dtype=object)[month]
    key = np.asarray(ticket_id.to_numpy(zero_copy_only=False), dtype=object)
    defects = []
    for c in ("caller_email", "caller_phone", "caller_postcode"):
        blank = cols[c] == ""
        defects.append(defect_frame("callcentre", files[blank], key[blank], f"missing_value:{c}"))
    typo = tk["name_typo"].to_numpy()[order]
    defects.append(defect_frame("callcentre", files[typo], key[typo], "name_typo"))
    return defects


def write_identity(out: Output, p: People, master, web: Built, state: RunState) -> list:
    """Identity truth of CRM master records and web-shop e-mails, the households; defects.

    Each identity row names the record's variations from the person's primary details
    (``variation``, e.g. "nickname;moved"); a web-shop record (an e-mail) is marked
    alternate_email or new_email when it is not the person's first address.
    """
    t = master.table
    person = t["person"].to_numpy()
    pid = np.where(person >= 0, p["person_id"].astype(object)[np.maximum(person, 0)], "")
    out.append_truth("identity", {"source": np.full(len(t), "crm_master", dtype=object),
                                  "source_record_id": t["customer_ref"].to_numpy(dtype=object),
                                  "person_id": pid,
                                  "variation": t["variation"].to_numpy(dtype=object)})
    write_households(out, p)
    ident = web.identity
    is_test = ident["person_id"].to_numpy(dtype=object) == ""
    new_test = is_test & ~ident["email"].isin(state.qa_emails).to_numpy()
    state.qa_emails.update(ident["email"][new_test])
    ident = ident[~is_test | new_test]
    alt = set(np.strings.lower(p["alt_email"]))
    is_alt = ident["email"].isin(alt).to_numpy() & (ident["email"] != "").to_numpy()
    is_new = ident["email"].isin(set(np.strings.lower(p["new_email"]))).to_numpy() & ~is_alt
    out.append_truth("identity", {"source": np.full(len(ident), "webshop", dtype=object),
                                  "source_record_id": ident["email"].to_numpy(dtype=object),
                                  "person_id": ident["person_id"].to_numpy(dtype=object),
                                  "variation": np.where(is_alt, "alternate_email",
                                                        np.where(is_new, "new_email", ""))})
    return [defect_frame("webshop", ident["file"].to_numpy(dtype=object)[is_alt],
                         ident["email"].to_numpy(dtype=object)[is_alt], "alternate_email")]


def write_households(out: Output, p: People) -> None:
    """Append the people who share a home with another customer: household (the first
    person's id), relation (partner or namesake) and what the two share besides the address."""
    rows = np.flatnonzero(p["household"] >= 0)
    tf = np.array(["false", "true"], dtype=object)
    first_id = p["person_id"].astype(object)
    out.append_truth("households", {
        "household_id": cat("H", np.strings.zfill((p["household"][rows] + 1).astype(str), 7)),
        "person_id": first_id[rows],
        "relation": np.array(["", "partner", "namesake"], dtype=object)[p["household_role"][rows]],
        "shares_phone": tf[p["shares_phone"][rows].astype(int)],
        "shares_email": tf[p["shares_email"][rows].astype(int)]})


def write_campaigns(out: Output, rng, world: World, p: People, contacts: pd.DataFrame,
                    pur, order_ref: np.ndarray, gross: np.ndarray, master, refs: dict) -> None:
    """Contacts, responses (purchases in the window for both groups, clicks) and outcomes."""
    for ci, c in enumerate(world.campaigns):
        cc = contacts[contacts["campaign"] == ci]
        who = cc["person"].to_numpy()
        start_day, start_s, end_s = campaign_window(c)
        # The platform addresses the CM record it holds: usually the first, sometimes a newer one.
        use_dup = (refs["duplicate"][who] != "") & (master.dup_t[who] < start_s) \
            & (rng.random(len(who)) < DUP_REF_IN_CAMPAIGNS)
        ref = np.where(use_dup, refs["duplicate"][who], refs["primary"][who])
        group = np.where(cc["control"].to_numpy(), "control", "treatment")
        srt = np.argsort(ref, kind="stable")
        k = len(who)
        out.append_rows("campaign_contacts", f"campaigns/contacts_{c.campaign_id}.csv", {
            "campaign_id": np.full(k, c.campaign_id), "customer_ref": ref[srt],
            "contact_date": np.full(k, c.start.isoformat()), "channel": np.full(k, c.channel),
            "group": group[srt]})
        lo, hi = purchases_between(pur, who, start_s, end_s)
        incremental = cc["incremental"].to_numpy()
        clicked = (group == "treatment") & (rng.random(k) < np.where(
            incremental, w.CLICK_P[c.channel][1], w.CLICK_P[c.channel][0]))
        click_day = start_day + np.minimum(rng.exponential(3.0, clicked.sum()).astype(np.int64),
                                           w.CAMPAIGN_WINDOW_DAYS - 1)
        owner, bought = expand_ranges(lo, hi)
        resp = pd.DataFrame({
            "customer_ref": np.concatenate([ref[owner], ref[clicked]]),
            "day": np.concatenate([to_local(pur.t[bought]) // DAY, click_day]),
            "response_type": np.repeat(["purchase", "click"], [len(owner), clicked.sum()]),
            "order_id": np.concatenate([order_ref[bought], np.full(clicked.sum(), "")]),
            "pence": np.concatenate([gross[bought], np.zeros(clicked.sum())]).astype(np.int64),
        }).sort_values(["day", "customer_ref", "response_type"], kind="stable", ignore_index=True)
        write_responses(out, c.campaign_id, resp)
        recency = cc["recency_days"].to_numpy()
        known = np.isfinite(recency)
        tf = np.array(["false", "true"], dtype=object)
        out.append_truth("campaign_outcomes", {
            "campaign_id": np.full(k, c.campaign_id), "person_id": p["person_id"][who],
            "segment": np.array(w.SEGMENTS)[p["segment"][who]], "group": group,
            "alive_at_start": tf[cc["alive"].to_numpy(dtype=int)],
            "recency_days": np.where(known, np.floor(np.where(known, recency, 0))
                                     .astype(np.int64).astype(str), ""),
            "web_share": np.round(cc["web_share"].to_numpy(), 3),
            "y0": tf[cc["y0"].to_numpy(dtype=int)], "y1": tf[cc["y1"].to_numpy(dtype=int)],
            "purchased_in_window": tf[(hi > lo).astype(int)],
            "incremental": tf[incremental.astype(int)],
            "true_uplift": np.round(cc["true_uplift"].to_numpy(), 4)})


def expand_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges [lo_i, hi_i): (i repeated per element, the elements)."""
    size = hi - lo
    owner = np.repeat(np.arange(len(lo)), size)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(size) - size, size)
    return owner, lo[owner] + offset


def write_responses(out: Output, campaign_id: str, resp: pd.DataFrame) -> None:
    """Append a campaign's responses (value only for purchases)."""
    value = np.where(resp["response_type"] == "purchase",
                     money(resp["pence"].to_numpy()).to_numpy(zero_copy_only=False), "")
    out.append_rows("campaign_responses", f"campaigns/responses_{campaign_id}.csv", {
        "campaign_id": np.full(len(resp), campaign_id),
        "customer_ref": resp["customer_ref"].to_numpy(dtype=object),
        "response_date": format_date(resp["day"].to_numpy(), "iso"),
        "response_type": resp["response_type"].to_numpy(dtype=object),
        "order_id": resp["order_id"].to_numpy(dtype=object), "response_value": value})


def write_people(out: Output, p: People, dropout_t: np.ndarray, by_campaign: np.ndarray,
                 final_tier: np.ndarray, on_file: dict) -> None:
    """Append the people truth of a chunk: segment, each person's rate and dropout draws,
    whether they were alive (not yet left) at the window's start, at the start of its last
    12 months (the holdout year) and at its end, why they left (after a purchase, as in
    BG/NBD, or at a sleeping-dogs contact: `by_campaign`), and whether some CRM master record
    holds their e-mail address / phone number (what campaign targeting can use), and their
    web share (the chance that a purchase is online: campaign channels act on it)."""
    acq_day = to_local(p["acq_t"]) // DAY
    left = dropout_t != NO_TIME
    drop_day = to_local(np.where(left, dropout_t, p["acq_t"])) // DAY
    tf = np.array(["false", "true"], dtype=object)
    out.append_truth("people", {
        "person_id": p["person_id"].astype(object),
        "segment": np.array(w.SEGMENTS, dtype=object)[p["segment"]],
        "region": np.array(w.REGIONS, dtype=object)[p["region"]],
        "acquisition_date": format_date(acq_day, "iso"),
        "acquisition_channel": np.array(w.ACQUISITION_CHANNELS, dtype=object)[p["acq_channel"]],
        "dropout_date": np.where(left, format_date(drop_day, "iso").to_numpy(zero_copy_only=False),
                                 ""),
        "purchase_rate_per_month": np.round(p["rate"], 4),
        "dropout_prob": np.round(p["dropout_prob"], 4),
        "email_opt_in": tf[p["email_opt_in"].astype(int)],
        "sms_opt_in": tf[p["sms_opt_in"].astype(int)],
        "do_not_contact": tf[p["do_not_contact"].astype(int)],
        "initial_tier": np.array(w.TIERS, dtype=object)[p["tier0"]],
        "final_tier": np.array(w.TIERS, dtype=object)[final_tier],
        "existing_base": tf[(p["acq_t"] < START_S).astype(int)],
        "prior_purchases": p["prior_purchases"],
        "alive_at_start": tf[(dropout_t >= START_S).astype(int)],
        "alive_at_holdout_start": tf[(dropout_t >= HOLDOUT_START_S).astype(int)],
        "alive_at_end": tf[(~left).astype(int)],
        "dropout_cause": np.where(~left, "", np.where(by_campaign, "campaign", "purchase"))
        .astype(object),
        "email_on_file": tf[on_file["email"].astype(int)],
        "phone_on_file": tf[on_file["phone"].astype(int)],
        "web_share": np.round(1.0 - p["p_store"], 4),
    })


def write_tiers(out: Output, p: People, tiers: pd.DataFrame) -> None:
    """Append each person's tier at the end of each quarter they were a customer in."""
    out.append_truth("tiers", {
        "person_id": p["person_id"].astype(object)[tiers["person"].to_numpy()],
        "quarter": quarter_label(tiers["quarter"].to_numpy()),
        "tier": np.array(w.TIERS, dtype=object)[tiers["tier"].to_numpy()]})


def add_effects(state: RunState, contacts: pd.DataFrame, p: People) -> None:
    """Accumulate contacted people's true individual uplift by campaign and segment."""
    seg = p["segment"][contacts["person"].to_numpy()]
    camp = contacts["campaign"].to_numpy()
    np.add.at(state.effect_sum, (camp, seg), contacts["true_uplift"].to_numpy())
    np.add.at(state.effect_n, (camp, seg), 1)


def add_cohorts(state: RunState, pur) -> None:
    """Count active people by cohort (month of first purchase) and months since."""
    if not len(pur.t):
        return
    month = month_index(to_local(pur.t))
    new_person = np.concatenate([[True], pur.person[1:] != pur.person[:-1]])
    first_month = month[np.flatnonzero(new_person)][np.cumsum(new_person) - 1]
    new_pair = new_person | np.concatenate([[True], month[1:] != month[:-1]])
    np.add.at(state.cohort, (first_month[new_pair], (month - first_month)[new_pair]), 1)


def write_final_truth(out: Output, world: World, state: RunState, rates: DefectRates, seed: int,
                      customers: int, chunk_size: int) -> None:
    """Cohort retention, category affinity, campaign effects and the run configuration."""
    rows = []
    for m0 in range(N_MONTHS):
        size = state.cohort[m0, 0]
        if size == 0:
            continue
        for k in range(N_MONTHS - m0):
            rows.append((month_label(m0), k, size, state.cohort[m0, k], state.cohort[m0, k] / size))
    out.write_truth_frame("cohort_retention", pd.DataFrame(rows, columns=[
        "cohort_month", "months_since", "cohort_size", "active_customers", "retention_rate"])
        .round({"retention_rate": 6}))
    pairs, sets = affinity_truth(state.basket_mix)
    out.write_truth_frame("category_affinity", pairs)
    out.write_truth_frame("affinity_sets", sets)
    out.write_truth_frame("campaign_effects", campaign_effects(world, state))
    out.write_truth_frame("campaign_design", campaign_design(world))
    out.write_truth_frame("segments", segment_truth())
    out.write_truth_frame("calendar", calendar_truth(world.seasonality))
    out.write_truth_frame("touchpoints", w.touchpoint_design())
    config = {"seed": seed, "N": customers, "chunk_size": chunk_size,
              "window": [START_DATE.isoformat(), END_DATE.isoformat()],
              "defect_rates": rates.as_dict(),
              "segments": {s: {"share": float(w.SEGMENT_SHARE[i]),
                               "purchase_rate_per_month": float(w.PURCHASE_RATE[i]),
                               "rate_shape_r": float(w.RATE_SHAPE[i]),
                               "rate_scale": float(w.RATE_SCALE[i]),
                               "dropout_a": float(w.DROPOUT_A[i]),
                               "dropout_b": float(w.DROPOUT_B[i]),
                               "dropout_prob": float(w.DROPOUT_PROB[i])}
                           for i, s in enumerate(w.SEGMENTS)},
              "existing_base": {"years": w.EXISTING_BASE_YEARS,
                                "share": round(existing_base_share(), 6)},
              "seasonality": {"strength": world.seasonality,
                              "monthly": [round(float(x), 6) for x in SEASON]},
              "holdout_start": HOLDOUT_START.isoformat(),
              "complaint_dropout_multiplier": w.COMPLAINT_DROPOUT_MULTIPLIER,
              "control_share": w.CONTROL_SHARE, "campaign_window_days": w.CAMPAIGN_WINDOW_DAYS,
              "campaign_uplift": {
                  "segment_uplift": dict(zip(w.SEGMENTS, w.CAMPAIGN_SEGMENT_UPLIFT.tolist())),
                  "recency_bands_days": list(w.RECENCY_BANDS),
                  "recency_factor": w.RECENCY_FACTOR.tolist(),
                  "channel_factor": {k: list(v) for k, v in w.CHANNEL_FACTOR.items()},
                  "max_uplift": w.MAX_UPLIFT,
                  "sleeping_dogs": {"campaign_id": w.SLEEPING_DOGS_CAMPAIGN,
                                    "lapsed_after_days": w.SLEEPING_DOGS_DAYS,
                                    "leave_p": w.SLEEPING_DOGS_LEAVE_P}},
              "counts": {k: v for k, v in state.summary.items()}}
    (out.truth / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def segment_truth() -> pd.DataFrame:
    """The designed segments: share, BG/NBD parameters and the observable signatures.

    Purchase rates (per month while alive) are Gamma(rate_shape_r, scale rate_scale), i.e.
    BG/NBD's r and alpha = alpha_months (= 1 / scale, in months; alpha_days for a daily fit);
    dropout probabilities after each repeat purchase are Beta(dropout_a, dropout_b).
    """
    out = pd.DataFrame({
        "segment": w.SEGMENTS, "share": w.SEGMENT_SHARE,
        "mean_rate_per_month": w.PURCHASE_RATE, "rate_shape_r": w.RATE_SHAPE,
        "rate_scale": w.RATE_SCALE, "alpha_months": 1 / w.RATE_SCALE,
        "alpha_days": MONTH_DAYS / w.RATE_SCALE,
        "dropout_a": w.DROPOUT_A, "dropout_b": w.DROPOUT_B, "mean_dropout_prob": w.DROPOUT_PROB,
        "mean_lines_per_order": 1 + 3 * w.EXTRA_LINE_PROB,
        "mean_quantity_per_line": 1 + w.EXTRA_QTY_MEAN,
        "store_preference": w.SEGMENT_STORE_PREFERENCE,
        "responsiveness": w.SEGMENT_RESPONSIVENESS,
    })
    for t, tier in enumerate(w.TIERS):
        out[f"tier_share_{tier}"] = w.INITIAL_TIER_P[:, t]
    for c, (category, *_) in enumerate(w.CATEGORIES):
        out[f"first_category_{category.lower()}"] = w.FIRST_CATEGORY_P[:, c]
    return out.round(6)


def calendar_truth(seasonality: float) -> pd.DataFrame:
    """Shocks and the moving holiday: first_day, last_day, kind, name and the multiplier of the
    purchase rate applied on those days (after the seasonality strength)."""
    events = calendar_events()
    events["multiplier"] = (1 + seasonality * (events["multiplier"] - 1)).round(4)
    return events


def campaign_effects(world: World, state: RunState) -> pd.DataFrame:
    """Designed and true uplift by campaign and segment.

    designed_uplift: the campaign's segment parameter (strength x CAMPAIGN_SEGMENT_UPLIFT)
    before recency and channel act on it. true_uplift: the mean individual uplift (designed
    probabilities, not outcomes) of the segment's contacted people, both groups; this is what a
    difference in purchase rates between treatment and control estimates. contacted: people.
    """
    rows = []
    for ci, c in enumerate(world.campaigns):
        for si, s in enumerate(w.SEGMENTS):
            n = int(state.effect_n[ci, si])
            true = round(float(state.effect_sum[ci, si] / n), 4) if n else float("nan")
            rows.append((c.campaign_id, s, round(float(c.uplift[si]), 4), true, n))
    return pd.DataFrame(rows, columns=["campaign_id", "segment", "designed_uplift",
                                       "true_uplift", "contacted"])


def campaign_design(world: World) -> pd.DataFrame:
    """The campaign calendar as designed: channel, dates, target and control shares, strength."""
    return pd.DataFrame([{
        "campaign_id": c.campaign_id, "channel": c.channel, "start_date": c.start.isoformat(),
        "target_share": c.target_share, "control_share": c.control_share,
        "strength": c.strength, "sleeping_dogs": str(c.sleeping_dogs).lower()}
        for c in world.campaigns])


def affinity_truth(mix: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Designed category affinities: every unordered pair, and the three-item set.

    Pairs: kind (strong, weak, seasonal, in_set for pairs inside the three-item set, none),
    designed strength (off season for the seasonal pair; season_months and season_strength
    give its season) and designed_lift: the expected order-level lift P(a and b) / (P(a) P(b))
    computed from the generator's probabilities, weighted by the orders' segment x month mix
    (world.designed_basket_shares), never counted from the orders; designed_lift_in_season the
    same over the season's months only. Sets: the three-item set's strength, designed_lift
    P(abc) / (P(a) P(b) P(c)) and designed_lift_over_pairs P(abc) P(a) P(b) P(c) /
    (P(ab) P(ac) P(bc)) (1 when the pairs explain the triple).
    """
    names = w.category_names()
    members, strength = w.affinity_triple()
    triple = tuple(sorted(int(m) for m in members))
    pairs = list(combinations(range(len(names)), 2))
    sets = [(i,) for i in range(len(names))] + pairs + [triple]
    share = w.designed_basket_shares(mix, sets)
    designed = {tuple(sorted((names.index(a), names.index(b)))): (kind, s, (a, b))
                for a, b, kind, s in w.AFFINITY_PAIRS}
    rows = []
    for a, b in pairs:
        kind, s, key = designed.get((a, b), ("in_set" if {a, b} <= set(triple) else "none",
                                             0.0, None))
        months, in_season = w.SEASONAL_AFFINITY.get(key, ((), None))
        lift_in = ""
        if months:
            season_mix = np.zeros_like(mix)
            season_mix[:, [m - 1 for m in months]] = mix[:, [m - 1 for m in months]]
            sp = w.designed_basket_shares(season_mix, [(a,), (b,), (a, b)])
            lift_in = round(sp[(a, b)] / (sp[(a,)] * sp[(b,)]), 4)
        rows.append((names[a], names[b], kind, s, " ".join(map(str, months)),
                     in_season if months else "",
                     round(share[(a, b)] / (share[(a,)] * share[(b,)]), 4), lift_in))
    pair_frame = pd.DataFrame(rows, columns=[
        "category_a", "category_b", "kind", "strength", "season_months", "season_strength",
        "designed_lift", "designed_lift_in_season"])
    x, y, z = triple
    singles = share[(x,)] * share[(y,)] * share[(z,)]
    set_frame = pd.DataFrame([{
        "categories": " + ".join(names[i] for i in triple), "kind": "three_item_set",
        "strength": strength, "designed_support": round(share[triple], 6),
        "designed_lift": round(share[triple] / singles, 4),
        "designed_lift_over_pairs": round(share[triple] * singles / (
            share[(x, y)] * share[(x, z)] * share[(y, z)]), 4)}])
    return pair_frame, set_frame
