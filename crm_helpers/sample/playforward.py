"""Playing a planned campaign forward in the sample world, and the true uplift of any plan row.

The sample world knows why each person buys: their segment, purchase rate, web share and
whether they have left (truth/people.csv). :func:`true_uplift` applies the campaign design of
:mod:`crm_helpers.sample.world` (segment uplift x recency factor x channel factor, capped, as
:func:`crm_helpers.sample.behaviour.run_campaigns` does) to the rows of a plan, so a plan can be
scored by the incremental purchases it truly causes. :func:`play_forward` then draws each
planned person's outcome from those uplifts and writes the campaign platform's files (the
campaign, its contacts and its responses) into raw/, where ``crm collect`` loads them like
any other export. Only the sample module reads the truth; the workbook never does.
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from pathlib import Path

import ibis
import numpy as np
import pandas as pd

from crm_helpers import truth
from crm_helpers import warehouse as wh

from . import world as w
from .behaviour import FIRST_DAY, SEASON, day_intensity
from .clock import DAY, END_DAY, day_number, local_to_utc

CAMPAIGNS_FILE = "campaigns/campaigns.csv"
CAMPAIGN_COLUMNS = ["campaign_id", "campaign_name", "channel", "start_date", "end_date", "offer", "offer_type"]


def _as_date(start) -> date:
    return pd.Timestamp(start).date()


def start_instant(start) -> int:
    """UTC instant (seconds) of local midnight on the campaign's first day."""
    return int(local_to_utc(np.array([day_number(_as_date(start)) * DAY]))[0])


def seasonality(base: Path) -> float:
    """The world's seasonality strength (truth/config.json; 1 when not recorded)."""
    import json

    config = Path(base) / "truth" / "config.json"
    if not config.exists():
        return 1.0
    return float(json.loads(config.read_text()).get("seasonality", {}).get("strength", 1.0))


def window_intensity(start, strength: float = 1.0) -> float:
    """Expected organic purchases in the response window per unit of monthly rate.

    Inside the simulated window this is the simulator's own day intensity (seasonality, shocks,
    Easter); after it, the monthly seasonality alone (no designed shocks lie beyond the window).
    """
    from .clock import MONTH_DAYS

    first = day_number(_as_date(start))
    days = first + np.arange(w.CAMPAIGN_WINDOW_DAYS)
    inside = (days >= FIRST_DAY) & (days < END_DAY)
    total = day_intensity(strength)[days[inside] - FIRST_DAY].sum()
    months = np.array([(date(1970, 1, 1) + timedelta(days=int(d))).month for d in days[~inside]])
    total += (1 + strength * (SEASON[months - 1] - 1)).sum() if len(months) else 0.0
    return float(total / MONTH_DAYS)


def last_purchase(base: Path, con, start) -> pd.Series:
    """Each person's last purchase instant (UTC seconds) before ``start``: orders of the
    warehouse's ``fact_order_line`` (returns excluded) attributed to their true person by
    truth/orders.csv. Computed in the engine; one row per person with a purchase."""
    orders = truth.read_truth("orders", Path(base) / "truth")
    known = con.create_table("_truth_orders", ibis.memtable(orders), temp=True, overwrite=True)
    lines = con.table("fact_order_line")
    cutoff = pd.Timestamp(start_instant(start), unit="s").to_pydatetime()
    bought = lines.filter(~lines.is_return & (lines.order_ts < cutoff)) \
        .select("source", "order_id", "order_ts").distinct()
    last = bought.join(known, ["source", "order_id"]).group_by("person_id") \
        .aggregate(last_ts=lambda t: t.order_ts.max()).to_pandas()
    seconds = (pd.to_datetime(last.last_ts) - pd.Timestamp(0)) // pd.Timedelta(seconds=1)
    return pd.Series(seconds.to_numpy(), index=last.person_id)


def _campaign(campaign_id: str, channel: str, start) -> w.Campaign:
    """The designed campaign behind a plan's rows: a past one by its id, else a played-forward
    campaign of PLAYFORWARD_STRENGTH."""
    strength = {cid: s for cid, *_, s in w.CAMPAIGNS}.get(campaign_id, w.PLAYFORWARD_STRENGTH)
    return w.Campaign(campaign_id, campaign_id, channel, _as_date(start), "", 1.0,
                      strength * w.CAMPAIGN_SEGMENT_UPLIFT, strength=strength,
                      sleeping_dogs=campaign_id == w.SLEEPING_DOGS_CAMPAIGN)


def person_uplift(base: Path, con, persons: pd.DataFrame, start) -> pd.DataFrame:
    """Designed uplift of (campaign_id, person_id, channel) rows at ``start``.

    Returns ``persons`` with alive, recency_days, web_share, q (chance of no organic purchase
    in the window), designed (u, before the organic purchase caps it) and true_uplift:
    min(u, q) for people alive at the start, 0 for people who had left, and -leave_p x (1 - q)
    for lapsed people reached by the sleeping-dogs campaign.
    """
    people = truth.read_truth("people", Path(base) / "truth").set_index("person_id")
    if "web_share" not in people:
        raise ValueError("truth/people.csv has no web_share: regenerate the sample world")
    start_s = start_instant(start)
    out = persons.reset_index(drop=True).copy()
    known = out.person_id.isin(people.index)
    info = people.reindex(out.person_id)
    dropout = pd.to_datetime(info.dropout_date, errors="coerce")
    out["alive"] = known.to_numpy() & (dropout.isna() | (dropout >= pd.Timestamp(_as_date(start)))).to_numpy()
    last = last_purchase(base, con, start).reindex(out.person_id)
    out["recency_days"] = np.where(last.notna(), (start_s - last.to_numpy()) / DAY, np.inf)
    out["web_share"] = info.web_share.to_numpy(dtype=float)
    rate = info.purchase_rate_per_month.to_numpy(dtype=float)
    out["q"] = np.exp(-rate * window_intensity(start, seasonality(base)))
    seg = info.segment.map({s: i for i, s in enumerate(w.SEGMENTS)}).fillna(0).astype(int).to_numpy()
    designed = np.zeros(len(out))
    dogs = np.zeros(len(out), dtype=bool)
    for (cid, channel), idx in out.groupby(["campaign_id", "channel"]).groups.items():
        c = _campaign(cid, channel, start)
        idx = np.asarray(idx)
        designed[idx] = w.designed_uplift(c, seg[idx], out.recency_days.to_numpy()[idx],
                                          np.nan_to_num(out.web_share.to_numpy()[idx]))
        dogs[idx] = c.sleeping_dogs
    dogs &= out.alive.to_numpy() & np.isfinite(out.recency_days) & (out.recency_days > w.SLEEPING_DOGS_DAYS)
    out["designed"] = designed
    out["sleeping_dog"] = dogs
    out["true_uplift"] = np.where(dogs, -w.SLEEPING_DOGS_LEAVE_P * (1 - out.q),
                                  np.where(out.alive, np.minimum(designed, out.q), 0.0))
    out.loc[~known.to_numpy(), "true_uplift"] = np.nan
    return out


def true_uplift(base: Path, con, plan: pd.DataFrame, start) -> pd.Series:
    """Each plan row's true individual uplift: the rise in its person's chance of buying in the
    response window if contacted through the row's channel, from the sample world's design.

    base: the world's folder (truth/ inside); con: the warehouse (its identity_map says whose
    customer_id is whose, its order lines give recency at the start); plan: rows with
    customer_id and channel (and campaign_id: a past campaign's id uses its designed strength,
    any other id world.PLAYFORWARD_STRENGTH); start: the campaign's first day. Returns a Series
    aligned with ``plan`` (NaN for a customer with no true person, such as a test record).
    """
    persons = truth.customer_persons(con, Path(base) / "truth")
    rows = pd.DataFrame({
        "campaign_id": plan["campaign_id"].astype(str).to_numpy() if "campaign_id" in plan else "PLAN",
        "person_id": plan["customer_id"].map(persons).to_numpy(),
        "channel": plan["channel"].astype(str).to_numpy()})
    return pd.Series(person_uplift(base, con, rows, start)["true_uplift"].to_numpy(),
                     index=plan.index, name="true_uplift")


def true_margin(base: Path, con, chosen: pd.DataFrame, start) -> float:
    """A plan's TRUE incremental margin net of contact costs: Σ true uplift × value − cost over its
    rows (candidate rows: customer_id, channel, value, cost), the truth from :func:`true_uplift`
    at ``start`` (a customer without a true person adds nothing but its cost)."""
    truth_uplift = true_uplift(base, con, chosen, start).fillna(0.0)
    return float((truth_uplift * chosen["value"] - chosen["cost"]).sum())


# --------------------------------------------------------------------------------------------
# Playing a plan forward
# --------------------------------------------------------------------------------------------

def read_plan(warehouse: Path | str, campaign_id: str) -> pd.DataFrame:
    """The campaign's rows of ``campaign_plan`` (both arms), sorted by customer_id."""
    with wh.reading(warehouse) as con:
        if "campaign_plan" not in con.list_tables():
            raise ValueError(f"{warehouse} has no campaign_plan: record a plan first (notebook 08)")
        plan = con.table("campaign_plan")
        plan = plan.filter(plan.campaign_id == campaign_id).to_pandas()
    if plan.empty:
        raise ValueError(f"campaign_plan holds no rows for campaign {campaign_id!r}")
    return plan.sort_values(["customer_id", "channel"], ignore_index=True)


def master_refs(con, customer_ids) -> pd.Series:
    """customer_id -> the customer master's record id the campaign platform addresses (the
    smallest one when a customer has several)."""
    roles = con.table("source_declaration").to_pandas()
    master = roles.loc[roles.role == "customer_master", "source"]
    if master.empty:
        raise ValueError("no source is declared the customer master: campaign files cannot name customers")
    ids = con.table("identity_map")
    refs = ids.filter((ids.source == master.iloc[0]) & ids.customer_id.isin(list(map(int, customer_ids)))) \
        .group_by("customer_id").aggregate(ref=lambda t: t.source_record_id.min()).to_pandas()
    return refs.set_index("customer_id")["ref"]


def order_values(con, customer_ids) -> tuple[dict, np.ndarray]:
    """Gross value of each customer's past orders (engine aggregate) and the pool of all order
    values, the basket a played-forward purchase is drawn from."""
    lines = con.table("fact_order_line")
    orders = lines.filter(~lines.is_return & lines.customer_id.notnull()) \
        .group_by(["customer_id", "order_id"]).aggregate(value=lambda t: t.line_amount.sum().cast("float64")) \
        .to_pandas()
    pool = np.sort(orders.value.to_numpy())
    mine = orders[orders.customer_id.isin(list(customer_ids))].sort_values(["customer_id", "order_id"])
    return {k: g.to_numpy() for k, g in mine.groupby("customer_id").value}, pool


def _csv(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    return buf.getvalue()


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds it (a rerun leaves the file untouched)."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def play_forward(base: Path | str, warehouse: Path | str, campaign_id: str, start, seed: int = 0) -> list[Path]:
    """Play a recorded plan forward: draw each planned person's response from the true uplift
    and write the campaign platform's files into ``base``/raw.

    The operational CRM contacted the plan's treatment arm; control rows are held out. Each
    alive person buys organically in the window with probability 1 - q (q = exp(-rate x the
    window's intensity)); a contacted one who would not have bought is persuaded with
    probability u / q, so the uplift is min(u, q) as in the simulator. Sleeping dogs reached by
    a played-forward campaign do not arise (only campaign C13 has them). A purchase's value is
    one of the customer's past order values (any customer's when they have none), its day
    uniform in the window. Writes campaigns/contacts_<id>.csv, campaigns/responses_<id>.csv
    and adds the campaign to campaigns/campaigns.csv (replacing an earlier row of the same id; its
    offer_type joins the plan offers' types, ``Settings.offer_types``, with "+" as its channel and
    offer do);
    the same plan, start and seed write the same bytes. Returns the files written or confirmed.
    """
    base = Path(base)
    start = _as_date(start)
    plan = read_plan(warehouse, campaign_id)
    rng = np.random.default_rng([int(seed), *map(ord, campaign_id)])
    with wh.reading(warehouse) as con:
        persons = truth.customer_persons(con, base / "truth")
        refs = master_refs(con, plan.customer_id.unique())
        plan = plan.assign(person_id=plan.customer_id.map(persons), customer_ref=plan.customer_id.map(refs))
        plan = plan.dropna(subset=["customer_ref"]).reset_index(drop=True)
        truths = person_uplift(base, con, plan[["campaign_id", "person_id", "channel"]], start)
        values, pool = order_values(con, plan.customer_id.unique())
        offer_types = wh.settings(con).offer_types
    u0, u1, pick, day = (rng.random(len(plan)) for _ in range(4))
    alive = truths.alive.to_numpy()
    q, designed = truths.q.to_numpy(), truths.designed.to_numpy()
    treated = (plan.arm == "treatment").to_numpy()
    y0 = alive & (u0 > q)
    persuaded = treated & alive & ~y0 & (u1 * q < designed)
    bought = y0 | persuaded
    value = np.array([(values.get(c) if c in values else pool)[int(k * len(values.get(c, pool)))]
                      for c, k in zip(plan.customer_id, pick, strict=True)])
    end = start + timedelta(days=w.CAMPAIGN_WINDOW_DAYS - 1)
    contacts = pd.DataFrame({"campaign_id": campaign_id, "customer_ref": plan.customer_ref,
                             "contact_date": start.isoformat(), "channel": plan.channel,
                             "group": plan.arm}).sort_values(["customer_ref", "channel"], kind="stable")
    response_day = [start + timedelta(days=int(d * w.CAMPAIGN_WINDOW_DAYS)) for d in day[bought]]
    responses = pd.DataFrame({
        "campaign_id": campaign_id, "customer_ref": plan.customer_ref[bought].to_numpy(),
        "response_date": [d.isoformat() for d in response_day], "response_type": "purchase",
        "order_id": [f"{campaign_id}-{i:07d}" for i in np.flatnonzero(bought)],
        "response_value": np.round(value[bought], 2)}).sort_values(
        ["response_date", "customer_ref"], kind="stable")
    responses["response_value"] = responses.response_value.map("{:.2f}".format)
    raw = base / "raw"
    campaigns_path = raw / CAMPAIGNS_FILE
    known = pd.read_csv(campaigns_path, dtype=str, keep_default_na=False) if campaigns_path.exists() \
        else pd.DataFrame(columns=CAMPAIGN_COLUMNS)
    row = {"campaign_id": campaign_id, "campaign_name": f"Planned campaign {campaign_id}",
           "channel": "+".join(sorted(plan.channel.unique())), "start_date": start.isoformat(),
           "end_date": end.isoformat(), "offer": "+".join(sorted(plan.offer.astype(str).unique())),
           "offer_type": "+".join(sorted({offer_types.get(o, "") for o in plan.offer.astype(str)} - {""}))}
    known = pd.concat([known[known.campaign_id != campaign_id], pd.DataFrame([row])], ignore_index=True)
    files = {raw / "campaigns" / f"contacts_{campaign_id}.csv": _csv(contacts),
             raw / "campaigns" / f"responses_{campaign_id}.csv": _csv(responses),
             campaigns_path: _csv(known.reindex(columns=CAMPAIGN_COLUMNS).fillna(""))}
    for path, text in files.items():
        _write_if_changed(path, text)
    return list(files)


def play_and_load(base: Path | str, warehouse: Path | str, campaign_id: str, start, seed: int = 0,
                  progress: bool = False) -> dict:
    """Play a plan forward, then collect and integrate the new files, as an analyst would run
    ``crm play-forward``, ``crm collect`` and ``crm integrate``. Returns the files written, the
    collect audit of the campaign files and the customers whose id changed in the re-integration
    (expected: none, since campaign files add no customer records)."""
    from crm_helpers.data.collect import collect
    from crm_helpers.information.integrate import integrate

    with wh.reading(warehouse) as con:
        before = con.table("identity_map").to_pandas()
    files = play_forward(base, warehouse, campaign_id, start, seed)
    audit = collect(Path(base), warehouse, progress=progress)
    integrate(warehouse, progress=progress)
    with wh.reading(warehouse) as con:
        after = con.table("identity_map").to_pandas()
    both = before.merge(after, on=["source", "source_record_id"], suffixes=("_before", "_after"))
    names = {str(p.relative_to(Path(base) / "raw")) for p in files}
    return {"files": files, "audit": audit[audit.file.isin(names)].reset_index(drop=True),
            "moved": int((both.customer_id_before != both.customer_id_after).sum())}
