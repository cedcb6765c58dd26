"""Behaviour of one chunk of people: calls, purchases (buy-till-you-die), campaigns, baskets.

Everything is vectorised over events with numpy; events of a chunk are kept sorted by
(person, time) so per-person quantities come from group offsets instead of Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

import numpy as np
import pandas as pd
from dateutil.easter import easter

from crm_helpers.config import START_DATE

from . import world as w
from .clock import (DAY, END_DAY, END_S, MONTH_DAYS, START_DAY, START_S, day_number,
                    local_to_utc, month_index, to_local)
from .people import People, at_local_time

STORE, WEB = 0, 1
SIGNUP_PURCHASE_P = np.array([0.8, 0.7, 0.0])  # by acquisition channel: buy when signing up
# Monthly seasonality (Jan..Dec), mean 1: Christmas and the January sales, a quiet February.
# Mild on purpose: a calibration period that ends on a strong December peak makes BG/NBD
# over-predict the next year (the feasibility study's 22-26%); at this profile the bias is a
# few per cent (tests/test_world_calibration.py).
SEASON = np.array([1.15, 0.85, 0.95, 1.0, 0.95, 1.0, 1.05, 0.95, 0.95, 0.95, 1.0, 1.2])
SEASON = SEASON / SEASON.mean()
# Strength of seasonality and calendar events: each day's purchase intensity is
# 1 + SEASONALITY x (designed multiplier - 1); generate(seasonality=0) switches both off.
SEASONALITY = 1.0
# Yearly shocks of the revenue series (first day, last day, kind, name, rate multiplier); their
# dates move from year to year, so last year's same month is not a perfect forecast.
SHOCKS = (
    (date(2023, 6, 19), date(2023, 6, 25), "promotion", "Summer sale week", 1.6),
    (date(2023, 9, 11), date(2023, 9, 24), "supply_problem", "Warehouse system outage", 0.6),
    (date(2024, 2, 5), date(2024, 2, 18), "supply_problem", "Port strike delays", 0.6),
    (date(2024, 7, 1), date(2024, 7, 7), "promotion", "Summer sale week", 1.6),
    (date(2025, 5, 12), date(2025, 5, 18), "promotion", "Spring sale week", 1.6),
    (date(2025, 10, 6), date(2025, 10, 19), "supply_problem", "Supplier insolvency", 0.6),
)
EASTER_MULTIPLIER = 1.5  # Maundy Thursday to Easter Monday (a moving holiday)
CALL_GRACE_DAYS = 60  # people still call for a while after their last purchase
WALKIN_PER_CRM_RECEIPT = 0.5  # anonymous receipts per CRM store receipt (a third of all)
WALKIN_TIER_P = np.array([0.55, 0.30, 0.15])
DISCOUNT_P = 0.10


def group_starts(person: np.ndarray, n: int) -> np.ndarray:
    """Index of each person's first event in an array sorted by person (n+1 offsets)."""
    return np.searchsorted(person, np.arange(n + 1))


def sort_events(person: np.ndarray, t: np.ndarray, *others: np.ndarray):
    """Sort event arrays by (person, time)."""
    order = np.lexsort((t, person))
    return (person[order], t[order], *(o[order] for o in others))


def calendar_events() -> pd.DataFrame:
    """The designed calendar of the window: shocks and Easter (first_day, last_day, kind, name,
    multiplier of the purchase rate on those days, at full seasonality strength)."""
    rows = [(a, b, kind, name, m) for a, b, kind, name, m in SHOCKS]
    for year in range(START_DAY_DATE.year, END_DAY_DATE.year + 1):
        sunday = easter(year)
        rows.append((sunday - timedelta(days=3), sunday + timedelta(days=1), "holiday",
                     "Easter", EASTER_MULTIPLIER))
    out = pd.DataFrame(rows, columns=["first_day", "last_day", "kind", "name", "multiplier"])
    return out.sort_values("first_day", ignore_index=True)


FIRST_DAY = START_DAY - int(np.ceil(w.EXISTING_BASE_YEARS * 365.25)) - 2  # earliest sign-up
START_DAY_DATE = date(1970, 1, 1) + timedelta(days=START_DAY)
END_DAY_DATE = date(1970, 1, 1) + timedelta(days=END_DAY - 1)


@cache
def day_intensity(seasonality: float = SEASONALITY) -> np.ndarray:
    """Relative purchase intensity of each London day from FIRST_DAY to the window's end.

    Monthly seasonality everywhere, calendar events (calendar_events) in the window; both
    scaled by `seasonality` (0 = flat).
    """
    days = np.arange(FIRST_DAY, END_DAY)
    m = SEASON[month_index(days * DAY) % 12]
    for ev in calendar_events().itertuples():
        on = (days >= day_number(ev.first_day)) & (days <= day_number(ev.last_day))
        m = np.where(on, m * ev.multiplier, m)
    out = 1 + seasonality * (m - 1)
    out.flags.writeable = False
    return out


def _poisson_times(rng, start: np.ndarray, rate_per_month: np.ndarray):
    """Event times of a homogeneous Poisson process per person on [start, END)."""
    span = np.maximum(END_S - start, 0)
    counts = rng.poisson(rate_per_month * span / DAY / MONTH_DAYS)
    person = np.repeat(np.arange(len(start)), counts)
    t = start[person] + rng.random(len(person)) * span[person]
    return person, t.astype(np.int64)


@dataclass
class Calls:
    """Call-centre contacts of a chunk (sorted by person, time)."""

    person: np.ndarray
    t: np.ndarray
    reason: np.ndarray
    outcome: np.ndarray


def simulate_calls(rng: np.random.Generator, p: People) -> Calls:
    """Potential call-centre contacts at each person's rate from sign-up (or the window's start
    for the existing base); trimmed after dropout later."""
    acq = np.maximum(p["acq_t"], START_S)
    person, t = _poisson_times(rng, acq, p["call_rate"])
    t = np.maximum(at_local_time(rng, t, np.full(len(t), 2)), acq[person] + 600)
    person, t = sort_events(person, t)
    reason = rng.choice(len(w.REASON_CODES), len(t), p=w.REASON_P)
    complaint = reason == 0
    u = rng.random(len(t))
    cum = w.OUTCOME_P[np.where(complaint, 0, 1)].cumsum(axis=1)
    # The designed touch-point change: the same draw against the new script's table.
    scripted = (p["region"][person] == w.REGIONS.index(w.TOUCHPOINT_REGION)) \
        & (t >= local_to_utc(np.array([day_number(w.TOUCHPOINT_START) * DAY]))[0])
    new_cum = w.touchpoint_outcome_p()[np.where(complaint, 0, 1)].cumsum(axis=1)
    cum = np.where(scripted[:, None], new_cum, cum)
    outcome = (u[:, None] > cum).sum(axis=1)
    return Calls(person, t, reason, np.minimum(outcome, 2))


def first_complaint(calls: Calls, n: int) -> np.ndarray:
    """Time of each person's first complaint call (int64 max if none)."""
    out = np.full(n, np.iinfo(np.int64).max)
    c = calls.reason == 0
    np.minimum.at(out, calls.person[c], calls.t[c])
    return out


def trim_calls(calls: Calls, dropout_t: np.ndarray) -> Calls:
    """Keep calls made while the person was a customer (plus a grace period)."""
    limit = np.where(dropout_t == np.iinfo(np.int64).max, END_S,
                     np.minimum(dropout_t, END_S - CALL_GRACE_DAYS * DAY) + CALL_GRACE_DAYS * DAY)
    keep = calls.t < limit[calls.person]
    return Calls(calls.person[keep], calls.t[keep], calls.reason[keep], calls.outcome[keep])


def purchase_channel(rng, p_store: np.ndarray) -> np.ndarray:
    """Store (0) or web (1) by the person's preference; people without a card buy online."""
    return np.where(rng.random(len(p_store)) < p_store, STORE, WEB)


@dataclass
class Purchases:
    """Purchases of CRM people (sorted by person, time); campaign = -1 for organic ones."""

    person: np.ndarray
    t: np.ndarray
    channel: np.ndarray
    campaign: np.ndarray


def simulate_purchases(rng: np.random.Generator, p: People, complaint_t: np.ndarray,
                       seasonality: float = SEASONALITY) -> tuple[Purchases, np.ndarray]:
    """Buy-till-you-die (BG/NBD): from sign-up, Poisson purchases at the person's rate, timed by
    the day intensity (seasonality, shocks, Easter); right after each *repeat* purchase the
    person leaves with their dropout probability (x3 after a complaint). The first purchase never
    ends a life. The existing base's history before the window is simulated but not returned
    (p['prior_purchases'] counts it). Returns window purchases and dropout instants.
    """
    n = len(p)
    acq = p["acq_t"]
    intensity = day_intensity(seasonality)
    peak = intensity.max()
    person, t = _poisson_times(rng, acq, p["rate"] * peak)
    day = to_local(t) // DAY - FIRST_DAY
    keep = rng.random(len(t)) * peak < intensity[day]
    person, t = person[keep], t[keep]
    channel = purchase_channel(rng, p["p_store"][person])
    t = np.maximum(at_local_time(rng, t, channel), acq[person] + 1800)
    # Many people buy something when they sign up.
    acq_ch = p["acq_channel"]
    signup = np.flatnonzero(rng.random(n) < SIGNUP_PURCHASE_P[acq_ch])
    s_channel = np.where((acq_ch[signup] == 0) & p["has_card"][signup], STORE, WEB)
    s_t = acq[signup] + rng.integers(120, 1500, len(signup))
    person = np.concatenate([person, signup])
    t = np.concatenate([t, s_t])
    channel = np.concatenate([channel, s_channel])
    keep = t < END_S
    person, t, channel = sort_events(person[keep], t[keep], channel[keep])
    starts = group_starts(person, n)
    first = np.zeros(len(t), dtype=bool)
    first[starts[:-1][starts[:-1] < starts[1:]]] = True
    prob = p["dropout_prob"][person]
    prob = np.minimum(1.0, prob * np.where(t > complaint_t[person],
                                           w.COMPLAINT_DROPOUT_MULTIPLIER, 1.0))
    leave = (rng.random(len(t)) < prob) & ~first
    # A person is alive at an event if no earlier event of theirs triggered leaving.
    before = np.cumsum(leave) - leave
    alive = (before - before[starts[person]]) == 0
    dropout_t = np.full(n, np.iinfo(np.int64).max)
    last = alive & leave
    dropout_t[person[last]] = t[last]
    p["prior_purchases"] = np.bincount(person[alive & (t < START_S)], minlength=n)
    keep = alive & (t >= START_S)
    return Purchases(person[keep], t[keep], channel[keep],
                     np.full(keep.sum(), -1)), dropout_t


def calendar_month(t: np.ndarray) -> np.ndarray:
    """Calendar month (1-12, London time) of instants."""
    return (month_index(to_local(t)) + START_DATE.month - 1) % 12 + 1


def window_season(start_day: int, seasonality: float = SEASONALITY) -> float:
    """Expected organic purchases in a campaign window per unit of monthly rate."""
    days = start_day + np.arange(w.CAMPAIGN_WINDOW_DAYS) - FIRST_DAY
    return float(day_intensity(seasonality)[days].sum() / MONTH_DAYS)


def purchases_between(pur: Purchases, who: np.ndarray, start_s: int, end_s: int) -> tuple:
    """Index range [lo, hi) of each person's purchases in [start_s, end_s) (sorted events)."""
    key = pur.person.astype(np.int64) * 2**32 + (pur.t - START_S)
    base = np.asarray(who, dtype=np.int64) * 2**32
    return (np.searchsorted(key, base + (start_s - START_S)),
            np.searchsorted(key, base + (end_s - START_S)))


def last_purchase_before(parts: list[Purchases], n: int, t_s: int) -> np.ndarray:
    """Instant of each person's last purchase before t_s across sorted purchase sets (-1: none).

    This is what the organisation sees at t_s (its own till and web records), never the truth.
    """
    last = np.full(n, -1, dtype=np.int64)
    for pur in parts:
        before = pur.t < t_s
        np.maximum.at(last, pur.person[before], pur.t[before])
    return last


def campaign_window(c: w.Campaign) -> tuple[int, int, int]:
    """(start day, start instant, end instant) of a campaign's response window (London days)."""
    start_day = day_number(c.start)
    start_s = int(local_to_utc(np.array([start_day * DAY]))[0])
    return start_day, start_s, start_s + w.CAMPAIGN_WINDOW_DAYS * DAY


def campaign_audience(rng: np.random.Generator, p: People, c: w.Campaign, on_file: dict,
                      start_s: int) -> tuple[np.ndarray, np.ndarray]:
    """Contacted people and their control flag, chosen from what is known at the start.

    Eligible: signed up before the start, consented to the channel with an address or number
    on file, not do-not-contact. Whether someone has already left is unknown to the
    organisation, so people who left are contacted as often as anyone.
    """
    eligible = (p["acq_t"] < start_s) & p[f"{c.channel}_opt_in"] & on_file[c.channel] \
        & ~p["do_not_contact"]
    targeted = np.flatnonzero(eligible & (rng.random(len(p)) < c.target_share))
    return targeted, rng.random(len(targeted)) < c.control_share


def run_campaigns(rng: np.random.Generator, p: People, organic: Purchases,
                  dropout_t: np.ndarray, campaigns: list[w.Campaign], on_file: dict,
                  seasonality: float = SEASONALITY):
    """Select, split and treat each campaign's audience, in time order.

    Potential outcomes per contacted person: y0 = an organic purchase in the window; y1 = the
    purchase if contacted. A person alive at the start with designed uplift u who would not
    buy anyway (probability q = exp(-expected organic purchases), exact for a Poisson process)
    buys with probability u / q, so the individual uplift is min(u, q). People who already left
    cannot buy (uplift 0). In the sleeping-dogs campaign, alive lapsed people (no purchase for
    SLEEPING_DOGS_DAYS) leave at the contact with probability s instead: uplift -s (1 - q).
    Only the treatment group's outcomes happen. Returns (contacts, campaign purchases, organic
    purchases, dropout times); the last two change when sleeping dogs leave.
    """
    n = len(p)
    seg, rate, web_share = p["segment"], p["rate"], 1.0 - p["p_store"]
    dropout_t = dropout_t.copy()
    contacts, extra = [], []
    for ci, c in enumerate(campaigns):  # a handful of campaigns; vectorised over people
        start_day, start_s, end_s = campaign_window(c)
        who, control = campaign_audience(rng, p, c, on_file, start_s)
        last = last_purchase_before([organic, *extra], n, start_s)[who]
        recency = np.where(last >= 0, (start_s - last) / DAY, np.inf)
        alive = dropout_t[who] > start_s
        lo, hi = purchases_between(organic, who, start_s, end_s)
        y0 = hi > lo
        q = np.exp(-rate[who] * window_season(start_day, seasonality))
        u = w.designed_uplift(c, seg[who], recency, web_share[who])
        dogs = c.sleeping_dogs & alive & np.isfinite(recency) & (recency > w.SLEEPING_DOGS_DAYS)
        v = rng.random(len(who))
        persuaded = alive & ~dogs & ~y0 & (v * q < u)
        leaves = dogs & (v < w.SLEEPING_DOGS_LEAVE_P)
        contacts.append(pd.DataFrame({
            "campaign": ci, "person": who, "control": control, "alive": alive,
            "recency_days": recency, "web_share": web_share[who], "y0": y0,
            "y1": (y0 & ~leaves) | persuaded, "incremental": ~control & persuaded,
            "true_uplift": np.where(dogs, -w.SLEEPING_DOGS_LEAVE_P * (1 - q),
                                    np.where(alive, np.minimum(u, q), 0.0))}))
        gone = who[~control & leaves]
        if len(gone):
            dropout_t[gone] = start_s
            stay = ~(np.isin(organic.person, gone) & (organic.t >= start_s))
            organic = Purchases(organic.person[stay], organic.t[stay], organic.channel[stay],
                                organic.campaign[stay])
        buyers = who[~control & persuaded]
        # Without an organic purchase in the window nobody can drop out in it.
        day = start_day + rng.integers(0, w.CAMPAIGN_WINDOW_DAYS, len(buyers))
        channel = purchase_channel(rng, p["p_store"][buyers])
        t = np.clip(at_local_time(rng, day * DAY, channel), start_s, end_s - 1)
        extra.append(Purchases(buyers, t, channel, np.full(len(buyers), ci)))
    return pd.concat(contacts, ignore_index=True), extra, organic, dropout_t


def merge_purchases(parts: list[Purchases], n: int) -> Purchases:
    """Combine organic and campaign purchases, sorted by (person, time)."""
    person, t, channel, campaign = (np.concatenate([getattr(x, f) for x in parts])
                                    for f in ("person", "t", "channel", "campaign"))
    person, t, channel, campaign = sort_events(person, t, channel, campaign)
    return Purchases(person, t, channel, campaign)


def assign_tiers(rng: np.random.Generator, pur: Purchases, p: People):
    """Tier of each purchase: customers drift up or down a tier at each purchase.

    The loop runs over the purchase *position* (1st, 2nd, ... purchase of each person), each
    step vectorised over all people, so its length is the longest purchase history, not the
    number of events. Returns tier per purchase and the final tier per person.
    """
    n = len(p)
    seg = p["segment"][pur.person]
    tier0 = p["tier0"]
    starts = group_starts(pur.person, n)
    pos = np.arange(len(pur.t)) - starts[pur.person]
    u = rng.random(len(pur.t))
    step = np.where(u < w.TIER_UP_P[seg], 1, np.where(u > 1 - w.TIER_DOWN_P[seg], -1, 0))
    tier = tier0[pur.person].copy()
    by_pos = np.argsort(pos, kind="stable")
    bounds = np.searchsorted(pos[by_pos], np.arange(pos.max() + 2 if len(pos) else 1))
    for k in range(1, len(bounds) - 1):
        idx = by_pos[bounds[k]:bounds[k + 1]]
        tier[idx] = np.clip(tier[idx - 1] + step[idx], 0, 2)
    final = tier0.copy()
    has = starts[1:] > starts[:-1]
    final[has] = tier[starts[1:][has] - 1]
    return tier, final


def quarter_tiers(pur: Purchases, tier: np.ndarray, p: People,
                  dropout_t: np.ndarray) -> pd.DataFrame:
    """Each person's tier at the end of every quarter of the window in which they were a customer.

    The tier at a quarter's end is the tier of their latest purchase up to then (their starting
    tier before any purchase in the window). A person has a row from the quarter they signed up
    in (or the first quarter) to the quarter they left in (dropout instant), or the last one.
    Returns person (chunk index), quarter (0 = first quarter of the window), tier.
    """
    n = len(p)
    n_q = -(-(END_DAY_DATE.year * 12 + END_DAY_DATE.month
              - START_DAY_DATE.year * 12 - START_DAY_DATE.month + 1) // 3)
    grid = np.full((n, n_q), -1, dtype=np.int64)
    q = month_index(to_local(pur.t)) // 3
    last = np.ones(len(q), dtype=bool)  # last purchase of a person in a quarter (sorted events)
    last[:-1] = (pur.person[1:] != pur.person[:-1]) | (q[1:] != q[:-1])
    grid[pur.person[last], q[last]] = tier[last]
    grid[:, 0] = np.where(grid[:, 0] < 0, p["tier0"], grid[:, 0])
    filled = np.where(grid >= 0, np.arange(n_q)[None, :], 0)
    grid = np.take_along_axis(grid, np.maximum.accumulate(filled, axis=1), axis=1)
    first_q = month_index(to_local(np.maximum(p["acq_t"], START_S))) // 3
    end_q = np.where(dropout_t < END_S, month_index(to_local(np.minimum(dropout_t, END_S - 1))) // 3,
                     n_q - 1)
    quarters = np.arange(n_q)[None, :]
    member = (quarters >= first_q[:, None]) & (quarters <= end_q[:, None])
    person, quarter = np.nonzero(member)
    return pd.DataFrame({"person": person, "quarter": quarter, "tier": grid[person, quarter]})


def quarter_label(q: np.ndarray) -> np.ndarray:
    """'2023Q1' style labels of window quarter indices."""
    year = START_DAY_DATE.year + (START_DAY_DATE.month - 1 + 3 * np.asarray(q)) // 12
    return np.strings.add(np.strings.add(year.astype(str), "Q"),
                          (((START_DAY_DATE.month - 1) // 3 + np.asarray(q)) % 4 + 1).astype(str))


@dataclass
class Lines:
    """Order lines: order index, line number (1-based), product, quantity and price in pence."""

    order: np.ndarray
    line_no: np.ndarray
    product: np.ndarray
    category: np.ndarray
    qty: np.ndarray
    unit_pence: np.ndarray


def further_categories(rng: np.random.Generator, first_cat: np.ndarray, n_lines: np.ndarray,
                       order: np.ndarray, line_no: np.ndarray,
                       month: np.ndarray | None = None) -> np.ndarray:
    """Category of each line (per line; the value on first lines is unused).

    A further line is drawn from the affinity matrix row of the order's first category in its
    month. An order of 3+ lines whose first line belongs to the three-item set takes its 2nd
    and 3rd lines from the set's other two categories with the set's strength.
    """
    cal = np.zeros(len(first_cat), dtype=np.int64) if month is None else np.asarray(month)
    follow = np.stack([w.affinity_matrix(m or None) for m in range(13)]).cumsum(axis=2)
    later = (rng.random(len(order))[:, None] > follow[cal[order], first_cat[order]]).sum(axis=1)
    later = np.minimum(later, len(w.CATEGORIES) - 1)
    members, strength = w.affinity_triple()
    others = np.zeros((len(w.CATEGORIES), 2), dtype=np.int64)  # the set's other two, by member
    for m in members:
        others[m] = members[members != m]
    in_set = np.isin(first_cat, members) & (n_lines >= 3) & (rng.random(len(first_cat)) < strength)
    swap = rng.integers(0, 2, len(first_cat))
    gift = in_set[order] & ((line_no == 2) | (line_no == 3))
    col = (line_no[gift] - 2 + swap[order[gift]]) % 2
    later[gift] = others[first_cat[order[gift]], col]
    return later


def draw_lines(rng: np.random.Generator, seg: np.ndarray, tier: np.ndarray,
               products: pd.DataFrame, month: np.ndarray | None = None) -> Lines:
    """1-4 lines per order with cross-sell affinities between categories.

    The number of lines, the quantities and the first line's category follow the segment
    (world.EXTRA_LINE_PROB, EXTRA_QTY_MEAN, FIRST_CATEGORY_P); further lines follow the affinity
    matrix row of the first category in the order's calendar month (`month`, 1-12; None: no
    season), or complete the three-item set (further_categories). Most lines come from the
    order's tier.
    """
    n_orders = len(seg)
    n_lines = 1 + rng.binomial(3, w.EXTRA_LINE_PROB[seg])
    order = np.repeat(np.arange(n_orders), n_lines)
    starts = np.concatenate([[0], np.cumsum(n_lines)[:-1]])
    line_no = np.arange(len(order)) - starts[order] + 1
    first_p = w.FIRST_CATEGORY_P[seg].cumsum(axis=1)
    first_cat = np.minimum((rng.random(n_orders)[:, None] > first_p).sum(axis=1),
                           len(w.CATEGORIES) - 1)
    category = np.where(line_no == 1, first_cat[order],
                        further_categories(rng, first_cat, n_lines, order, line_no, month))
    own = rng.random(len(order)) < w.OWN_TIER_SHARE
    line_tier = np.where(own, tier[order], (tier[order] + rng.integers(1, 3, len(order))) % 3)
    key = category * 3 + line_tier
    count = products.groupby(["category_idx", "tier_idx"]).size().to_numpy()
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    product = first[key] + (rng.random(len(order)) * count[key]).astype(np.int64)
    qty = 1 + rng.poisson(w.EXTRA_QTY_MEAN[seg[order]])
    discount = np.where(rng.random(len(order)) < DISCOUNT_P, rng.integers(1, 4, len(order)), 0)
    list_pence = products["list_pence"].to_numpy()[product]
    unit = np.round(list_pence * (1 - 0.1 * discount)).astype(np.int64)
    return Lines(order, line_no, product, category, qty, unit)


def draw_walkins(rng: np.random.Generator, crm_store_t: np.ndarray):
    """Anonymous store receipts (shoppers without a card, not CRM people): times and stores.

    Their number is proportional to the chunk's CRM store receipts and their days are borrowed
    from those receipts, so they follow the same growth and seasonality.
    """
    k = rng.poisson(WALKIN_PER_CRM_RECEIPT * len(crm_store_t)) if len(crm_store_t) else 0
    day = to_local(rng.choice(crm_store_t, k)) // DAY + rng.integers(-3, 4, k)
    day = np.clip(day, START_DAY, END_DAY - 1)
    t = at_local_time(rng, day * DAY, np.zeros(k, dtype=np.int64))
    region_p = np.array([w.REGION_P[s[2]] for s in w.STORES])
    store = rng.choice(len(w.STORES), k, p=region_p / region_p.sum())
    tier = rng.choice(3, k, p=WALKIN_TIER_P)
    return t, store, tier


def draw_returns(rng: np.random.Generator, lines: Lines, order_t: np.ndarray, rate: float,
                 channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lines returned later: (line indices, return instants), returns after the window dropped.

    All returned lines of one order go back together 1-30 days after the purchase, at a time of
    day that suits the channel (store opening hours for receipts).
    """
    returned = np.flatnonzero(rng.random(len(lines.order)) < rate)
    delay = rng.integers(1, 31, len(order_t)) * DAY
    order = lines.order[returned]
    t = at_local_time(rng, order_t + delay, channel)[order]
    keep = t < END_S
    return returned[keep], t[keep]
