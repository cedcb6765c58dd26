"""Behaviour of one chunk of people: calls, purchases (buy-till-you-die), campaigns, baskets.

Everything is vectorised over events with numpy; events of a chunk are kept sorted by
(person, time) so per-person quantities come from group offsets instead of Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import world as w
from .clock import (DAY, END_DAY, END_S, MONTH_DAYS, START_DAY, START_S, day_number,
                    local_to_utc, month_index, to_local)
from .people import People, at_local_time

STORE, WEB = 0, 1
SIGNUP_PURCHASE_P = np.array([0.8, 0.7, 0.0])  # by acquisition channel: buy when signing up
# Monthly seasonality (Jan..Dec), mean 1: quiet after Christmas, busy in Nov/Dec.
SEASON = np.array([0.85, 0.8, 0.9, 0.95, 0.95, 0.95, 1.0, 0.95, 0.95, 1.0, 1.3, 1.4])
SEASON = SEASON / SEASON.mean()
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
    """Potential call-centre contacts at each person's rate; trimmed after dropout later."""
    acq = p["acq_t"]
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


def simulate_purchases(rng: np.random.Generator, p: People,
                       complaint_t: np.ndarray) -> tuple[Purchases, np.ndarray]:
    """Buy-till-you-die: Poisson purchases while alive, leaving after a purchase with the
    segment's dropout probability (x3 after a complaint). Returns purchases and dropout times.
    """
    n = len(p)
    acq = p["acq_t"]
    rate = p["rate"]
    person, t = _poisson_times(rng, acq, rate * SEASON.max())
    keep = rng.random(len(t)) < SEASON[month_index(to_local(t)) % 12] / SEASON.max()
    person, t = person[keep], t[keep]
    p_store = p["p_store"]
    channel = purchase_channel(rng, p_store[person])
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
    # Dropout: a person is alive at an event if no earlier event triggered leaving.
    prob = p["dropout_prob"][person]
    prob = np.minimum(1.0, prob * np.where(t > complaint_t[person],
                                           w.COMPLAINT_DROPOUT_MULTIPLIER, 1.0))
    leave = rng.random(len(t)) < prob
    starts = group_starts(person, n)
    before = np.cumsum(leave) - leave
    alive = (before - before[starts[person]]) == 0
    dropout_t = np.full(n, np.iinfo(np.int64).max)
    last = alive & leave
    dropout_t[person[last]] = t[last]
    keep = alive
    return Purchases(person[keep], t[keep], channel[keep],
                     np.full(keep.sum(), -1)), dropout_t


def window_season(start_day: int) -> float:
    """Expected organic purchases in a campaign window per unit of monthly rate."""
    days = start_day + np.arange(w.CAMPAIGN_WINDOW_DAYS)
    return float(SEASON[month_index(days * DAY) % 12].sum() / MONTH_DAYS)


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

    The first line's category follows overall popularity; further lines follow the affinity
    matrix row of the first category. Most lines come from the order's tier.
    """
    n_orders = len(seg)
    n_lines = 1 + rng.binomial(3, w.EXTRA_LINE_PROB[seg])
    order = np.repeat(np.arange(n_orders), n_lines)
    starts = np.concatenate([[0], np.cumsum(n_lines)[:-1]])
    line_no = np.arange(len(order)) - starts[order] + 1
    popularity = np.array([c[2] for c in w.CATEGORIES])
    first_cat = rng.choice(len(w.CATEGORIES), n_orders, p=popularity / popularity.sum())
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
