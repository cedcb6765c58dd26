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


def campaign_window(c: w.Campaign) -> tuple[int, int, int]:
    """(start day, start instant, end instant) of a campaign's response window (London days)."""
    start_day = day_number(c.start)
    start_s = int(local_to_utc(np.array([start_day * DAY]))[0])
    return start_day, start_s, start_s + w.CAMPAIGN_WINDOW_DAYS * DAY


def run_campaigns(rng: np.random.Generator, p: People, organic: Purchases,
                  dropout_t: np.ndarray, campaigns: list[w.Campaign], on_file: dict):
    """Select, split and treat each campaign's audience; returns contacts and extra purchases.

    Eligible: signed up before the start, still a customer at the start, consented to the
    channel (with an address or number on file) and not do-not-contact. A random share is
    targeted, 20% of it held out as control.
    The campaign raises the chance of buying in the window by the segment's uplift u: a treated
    person who would not have bought (probability q = exp(-expected organic purchases), exact
    for a Poisson process) buys with probability u / q. Then P(buy | treated) - P(buy | control)
    = min(u, q) and the share of treated people with an incremental purchase is the same.
    contacts['effect'] holds min(u, q), the person's exact expected uplift.
    """
    n = len(p)
    seg = p["segment"]
    acq = p["acq_t"]
    dnc = p["do_not_contact"]
    rate = p["rate"]
    contacts, extra = [], []
    for ci, c in enumerate(campaigns):  # a handful of campaigns; vectorised over people
        start_day, start_s, end_s = campaign_window(c)
        consent = p[f"{c.channel}_opt_in"] & on_file[c.channel]
        eligible = (acq < start_s) & (dropout_t > start_s) & consent & ~dnc
        targeted = np.flatnonzero(eligible & (rng.random(n) < c.target_share))
        control = rng.random(len(targeted)) < w.CONTROL_SHARE
        lo, hi = purchases_between(organic, targeted, start_s, end_s)
        q = np.exp(-rate[targeted] * window_season(start_day))
        u = c.uplift[seg[targeted]]
        incremental = ~control & (hi == lo) & (rng.random(len(targeted)) * q < u)
        contacts.append(pd.DataFrame({"campaign": ci, "person": targeted, "control": control,
                                      "incremental": incremental,
                                      "effect": np.minimum(u, q)}))
        who = targeted[incremental]
        # Without an organic purchase in the window nobody can drop out in it.
        day = start_day + rng.integers(0, w.CAMPAIGN_WINDOW_DAYS, len(who))
        channel = purchase_channel(rng, p["p_store"][who])
        t = np.clip(at_local_time(rng, day * DAY, channel), start_s, end_s - 1)
        extra.append(Purchases(who, t, channel, np.full(len(who), ci)))
    return pd.concat(contacts, ignore_index=True), extra


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


def draw_lines(rng: np.random.Generator, seg: np.ndarray, tier: np.ndarray,
               products: pd.DataFrame) -> Lines:
    """1-4 lines per order with cross-sell affinities between categories.

    The number of lines, the quantities and the first line's category follow the segment
    (world.EXTRA_LINE_PROB, EXTRA_QTY_MEAN, FIRST_CATEGORY_P); further lines follow the affinity
    matrix row of the first category. Most lines come from the order's tier.
    """
    n_orders = len(seg)
    n_lines = 1 + rng.binomial(3, w.EXTRA_LINE_PROB[seg])
    order = np.repeat(np.arange(n_orders), n_lines)
    starts = np.concatenate([[0], np.cumsum(n_lines)[:-1]])
    line_no = np.arange(len(order)) - starts[order] + 1
    first_p = w.FIRST_CATEGORY_P[seg].cumsum(axis=1)
    first_cat = np.minimum((rng.random(n_orders)[:, None] > first_p).sum(axis=1),
                           len(w.CATEGORIES) - 1)
    follow = w.affinity_matrix().cumsum(axis=1)[first_cat[order]]
    later = (rng.random(len(order))[:, None] > follow).sum(axis=1)
    later = np.minimum(later, len(w.CATEGORIES) - 1)
    category = np.where(line_no == 1, first_cat[order], later)
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
