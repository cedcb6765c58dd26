"""Customer migration: how customers move between segments and between product tiers over time.

**Segments.** The segments fitted at one date (:func:`crm_helpers.knowledge.segments.fit_segments`)
are applied to the same customers' behaviour at a later date, so both dates speak of the same
segments; customers not yet segmentable at the first date are ``new``, and those who bought
nothing between the two dates have ``left``.

**Tiers.** The tier a customer buys in (the product tiers, ordered by mean list price) is read
quarter by quarter. Most of a customer's lines come from their own tier but not all (a gift, a
one-off splurge), so one quarter's lines are a noisy reading of it: counted naively, every stray
line looks like a move. A hidden Markov model, fitted by EM (Baum-Welch) on the customer x
quarter line counts by tier, separates the tier a customer is in (the hidden state, which moves
from quarter to quarter by a transition matrix) from the tiers of the lines they buy (drawn from
the state by an emission matrix). The expected moves between each pair of consecutive quarters
give the quarter-by-quarter transition matrices.

The lines per customer, quarter and tier are a group-by in the engine (Ibis); the customer x
quarter table, the model and the matrices are customer-level (numpy/pandas).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ibis.expr.types as ir
import numpy as np
import pandas as pd
from ibis.backends import BaseBackend
from scipy.special import logsumexp

from crm_helpers import warehouse as wh
from crm_helpers.information import star
from crm_helpers.knowledge import segments as seg

NEW, LEFT = "new", "left"
#: Quarters without a purchase after which a customer counts as having left the tiers.
LAPSE_QUARTERS = 4


# --- segments -----------------------------------------------------------------------------------

def segment_migration(con: BaseBackend | str | Path | None, first, second, k: int | None = None,
                      seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each customer's segment as of `first` and as of `second` (same segments: fitted at `first`).

    Returns (migration, profile): migration has customer_id (index), before and after
    (ordered categoricals: ``new`` then the segments by falling purchase rate; the segments then
    ``left``); profile is the segments' :func:`~crm_helpers.knowledge.segments.segment_profile`
    at `first`. ``before`` is ``new`` for a customer not yet segmentable at `first`; ``after`` is
    ``left`` for one without a purchase after `first` (up to `second`).
    """
    con = wh.as_connection(con)
    model, before, profile = seg.fit_segments(con, first, k, seed)
    later = seg.customer_features(con, second)
    after = seg.predict_segments(model, later)
    days = (pd.Timestamp(second) - pd.Timestamp(first)).days
    after = after.where(later["recency_days"] < days, LEFT)
    names = list(profile.index)
    out = pd.DataFrame({"before": before.reindex(later.index).fillna(NEW), "after": after},
                       index=later.index.rename("customer_id"))
    out["before"] = pd.Categorical(out["before"], [NEW, *names], ordered=True)
    out["after"] = pd.Categorical(out["after"], [*names, LEFT], ordered=True)
    return out, profile


def transition_matrix(before: pd.Series, after: pd.Series, normalize: bool = True) -> pd.DataFrame:
    """Rows: the state before; columns: the state after; cells: customers, or (`normalize`) the
    share of the row's customers (each row sums to 1). Categorical states keep their order."""
    return pd.crosstab(before, after, normalize="index" if normalize else False, dropna=False) \
        .rename_axis(index="before", columns="after")


def moves(migration: pd.DataFrame) -> pd.DataFrame:
    """Who moved up, who moved down, who stayed and who left, per segment before.

    Segments are ranked by purchase rate (the categories' order): moving up means to a more
    frequent segment. One row per segment (``new`` customers left out), counts of customers and
    their shares of the row.
    """
    known = migration[migration["before"] != NEW]
    rank = {name: i for i, name in enumerate(migration["after"].cat.categories)}
    b = known["before"].astype(str).map(rank)
    a = known["after"].astype(str).map(rank)
    left = known["after"] == LEFT
    kind = np.select([left, a < b, a > b], ["left", "moved up", "moved down"], "stayed")
    counts = pd.crosstab(known["before"].astype(str), kind).rename_axis(columns=None).reindex(columns=["stayed", "moved up", "moved down", "left"],
                                                                      fill_value=0)
    counts = counts.reindex([c for c in migration["before"].cat.categories if c != NEW]).fillna(0).astype(int)
    shares = counts.div(counts.sum(axis=1), axis=0).add_suffix(" share")
    return counts.join(shares).rename_axis("segment")


# --- tiers --------------------------------------------------------------------------------------

def quarter_of(day: ir.DateValue) -> ir.StringValue:
    """Engine expression: the quarter label of a date, ``2025Q4``."""
    return day.year().cast("string") + "Q" + day.quarter().cast("string")


def tier_order(con: BaseBackend | str | Path | None = None) -> list[str]:
    """The product tiers, cheapest first (by mean list price of their products)."""
    products = wh.as_connection(con).table("dim_product")
    products = products.filter(products.tier.notnull())
    by_price = products.group_by("tier").aggregate(price=products.list_price.mean()).order_by("price")
    return by_price.tier.to_pandas().tolist()


def tier_lines(con: BaseBackend | str | Path | None = None, end=None) -> pd.DataFrame:
    """Purchase lines per customer, quarter and tier up to `end` (engine group-by): customer_id,
    quarter (``2025Q4``), tier, lines."""
    lines = star.customer_lines(con, end)
    buys = lines.filter(lines.is_purchase & (lines.tier != star.UNKNOWN))
    buys = buys.mutate(quarter=quarter_of(buys.order_date))
    return buys.group_by(["customer_id", "quarter", "tier"]).aggregate(lines=buys.count()) \
        .order_by(["customer_id", "quarter", "tier"]).to_pandas()


@dataclass
class TierModel:
    """A hidden Markov model of the tier each customer is in, quarter by quarter.

    start: the tier mix in a customer's first quarter; transition[s, t]: the chance of moving
    from tier s to tier t from one quarter to the next; emission[s, j]: the share of a tier-s
    customer's lines bought in tier j. posterior: (customers, quarters, tiers) chance of each
    tier in each quarter (NaN outside the customer's first to last purchase quarter); expected:
    (quarter pairs, tiers, tiers) expected moves between consecutive quarters.
    """

    tiers: list[str]
    quarters: list[str]
    customers: pd.Index
    start: np.ndarray
    transition: np.ndarray
    emission: np.ndarray
    posterior: np.ndarray
    expected: np.ndarray
    log_likelihood: float
    iterations: int


def _counts(lines: pd.DataFrame, tiers: list[str]):
    """Customer x quarter x tier line counts, aligned so each customer starts at their first quarter."""
    quarters = sorted(lines["quarter"].unique())
    customers = pd.Index(sorted(lines["customer_id"].unique()), name="customer_id")
    i = customers.get_indexer(lines["customer_id"])
    q = pd.Index(quarters).get_indexer(lines["quarter"])
    s = pd.Index(tiers).get_indexer(lines["tier"])
    keep = s >= 0
    first = np.full(len(customers), len(quarters))
    np.minimum.at(first, i, q)
    last = np.zeros(len(customers), dtype=int)
    np.maximum.at(last, i, q)
    length = last - first + 1
    counts = np.zeros((len(customers), int(length.max()), len(tiers)))
    np.add.at(counts, (i[keep], (q - first[i])[keep], s[keep]), lines["lines"].to_numpy()[keep])
    return quarters, customers, first, length, counts


def _forward_backward(log_e, valid_pair, log_start, log_a):
    """Posteriors of the states (gamma) and of consecutive pairs (xi), and each sequence's log-likelihood."""
    n, t_max, s = log_e.shape
    la = np.empty_like(log_e)
    lb = np.zeros_like(log_e)
    la[:, 0] = log_start + log_e[:, 0]
    for t in range(1, t_max):
        la[:, t] = logsumexp(la[:, t - 1, :, None] + log_a[None], axis=1) + log_e[:, t]
    for t in range(t_max - 2, -1, -1):
        lb[:, t] = logsumexp(log_a[None] + (log_e[:, t + 1] + lb[:, t + 1])[:, None, :], axis=2)
    ll = logsumexp(la[:, -1], axis=1)  # padding after a customer's last quarter emits nothing
    gamma = np.exp(la + lb - ll[:, None, None])
    xi = np.exp(la[:, :-1, :, None] + log_a[None, None] + (log_e[:, 1:] + lb[:, 1:])[:, :, None, :]
                - ll[:, None, None, None]) * valid_pair[:, :, None, None]
    return gamma, xi, ll


def fit_tier_model(lines: pd.DataFrame, tiers: list[str], max_iter: int = 200, tol: float = 1e-6) -> TierModel:
    """Fit the :class:`TierModel` by EM (Baum-Welch) on :func:`tier_lines`.

    Each customer is followed from the quarter of their first purchase to that of their last;
    a quarter without purchases says nothing about the tier (the model carries it). Starts from
    "customers mostly stay, and mostly buy in their own tier"; stops when the log-likelihood
    gains less than `tol` per customer, or after `max_iter` rounds. `tiers`: cheapest first.
    """
    quarters, customers, first, length, counts = _counts(lines, tiers)
    n, t_max, s = counts.shape
    valid = np.arange(t_max)[None, :] < length[:, None]
    valid_pair = valid[:, 1:]
    start = np.bincount(counts[:, 0].argmax(axis=1), minlength=s) + 1.0
    start /= start.sum()
    a = np.full((s, s), 0.1 / max(s - 1, 1)) + np.eye(s) * (0.9 - 0.1 / max(s - 1, 1))
    b = a.copy()
    previous = -np.inf
    for iteration in range(1, max_iter + 1):
        log_e = counts @ np.log(b).T
        gamma, xi, ll = _forward_backward(log_e, valid_pair, np.log(start), np.log(a))
        start = gamma[:, 0].mean(axis=0)
        a = xi.sum(axis=(0, 1)) + 1e-9
        a /= a.sum(axis=1, keepdims=True)
        b = np.einsum("nts,ntj->sj", gamma * valid[:, :, None], counts) + 1e-9
        b /= b.sum(axis=1, keepdims=True)
        total = ll.sum()
        if total - previous < tol * n:
            break
        previous = total
    log_e = counts @ np.log(b).T
    gamma, xi, ll = _forward_backward(log_e, valid_pair, np.log(start), np.log(a))
    posterior = np.full((n, len(quarters), s), np.nan)
    expected = np.zeros((len(quarters) - 1, s, s))
    for t in range(t_max):
        rows = np.nonzero(valid[:, t])[0]
        posterior[rows, first[rows] + t] = gamma[rows, t]
        if t < t_max - 1:
            pairs = np.nonzero(valid_pair[:, t])[0]
            np.add.at(expected, first[pairs] + t, xi[pairs, t])
    return TierModel(list(tiers), quarters, customers, start, a, b, posterior, expected, float(ll.sum()), iteration)


def tier_transitions(model: TierModel) -> pd.DataFrame:
    """The model's quarter-by-quarter transition matrices, long: from_quarter, from_tier, to_tier,
    customers (expected number moving) and share (of the from_tier row), in the shape of
    :func:`crm_helpers.truth.tier_transitions`."""
    rows = []
    for q, matrix in enumerate(model.expected):
        shares = matrix / np.where(matrix.sum(axis=1, keepdims=True) > 0, matrix.sum(axis=1, keepdims=True), 1)
        for i, a in enumerate(model.tiers):
            for j, b in enumerate(model.tiers):
                rows.append((model.quarters[q], a, b, matrix[i, j], shares[i, j]))
    out = pd.DataFrame(rows, columns=["from_quarter", "from_tier", "to_tier", "customers", "share"])
    for col in ("from_tier", "to_tier"):
        out[col] = pd.Categorical(out[col], categories=model.tiers, ordered=True)
    return out


def naive_transitions(lines: pd.DataFrame, tiers: list[str]) -> pd.DataFrame:
    """The tier moves counted naively from :func:`tier_lines`, for comparison with the model: a
    customer's tier in a quarter is the tier of most of its lines, and a move is counted between
    consecutive quarters in which the customer bought. Long, like :func:`tier_transitions`."""
    modal = lines.sort_values(["customer_id", "quarter", "lines", "tier"]) \
        .drop_duplicates(["customer_id", "quarter"], keep="last")
    quarters = sorted(lines["quarter"].unique())
    previous = dict(zip(quarters[1:], quarters[:-1], strict=False))
    later = modal.assign(quarter=modal["quarter"].map(previous)).dropna(subset=["quarter"])
    pairs = modal.merge(later, on=["customer_id", "quarter"], suffixes=("_from", "_to"))
    out = pairs.groupby(["quarter", "tier_from", "tier_to"]).size().rename("customers").reset_index()
    out.columns = ["from_quarter", "from_tier", "to_tier", "customers"]
    out["share"] = out["customers"] / out.groupby(["from_quarter", "from_tier"])["customers"].transform("sum")
    for col in ("from_tier", "to_tier"):
        out[col] = pd.Categorical(out[col], categories=tiers, ordered=True)
    return out


def moving_share(transitions: pd.DataFrame) -> float:
    """The share of customers changing tier from one quarter to the next, all quarters together."""
    moved = transitions["from_tier"].astype(str) != transitions["to_tier"].astype(str)
    return float(transitions.loc[moved, "customers"].sum() / transitions["customers"].sum())


def pooled_matrix(transitions: pd.DataFrame) -> pd.DataFrame:
    """All quarters' moves together: from_tier x to_tier, each row's shares (rows sum to 1)."""
    counts = transitions.pivot_table(index="from_tier", columns="to_tier", values="customers", aggfunc="sum",
                                     observed=False)
    return counts.div(counts.sum(axis=1), axis=0)


def compare_transitions(estimated: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Each quarter pair's largest gap between two sets of transition shares (same tiers): one row
    per from_quarter with max_gap, and the from_tier and to_tier of that cell."""
    key = ["from_quarter", "from_tier", "to_tier"]
    e = estimated.assign(**{c: estimated[c].astype(str) for c in key[1:]}).set_index(key)["share"]
    t = truth.assign(**{c: truth[c].astype(str) for c in key[1:]}).set_index(key)["share"]
    both = pd.concat({"estimated": e, "truth": t}, axis=1).fillna(0)
    both["gap"] = (both["estimated"] - both["truth"]).abs()
    worst = both.reset_index().sort_values("gap", ascending=False).drop_duplicates("from_quarter")
    return worst.rename(columns={"gap": "max_gap"}).set_index("from_quarter").sort_index()[
        ["from_tier", "to_tier", "estimated", "truth", "max_gap"]]


def decoded_tiers(model: TierModel) -> pd.DataFrame:
    """The most likely tier of each customer in each quarter (customers x quarters; NaN outside
    their first to last purchase quarter)."""
    seen = ~np.isnan(model.posterior[:, :, 0])
    best = np.where(seen, np.nan_to_num(model.posterior).argmax(axis=2), -1)
    names = np.array([*model.tiers, None], dtype=object)
    return pd.DataFrame(names[best], index=model.customers, columns=model.quarters)


def tier_moves(model: TierModel, lapse_quarters: int = LAPSE_QUARTERS) -> pd.DataFrame:
    """Per quarter: customers whose most likely tier went up, went down, stayed, and who left.

    A customer *leaves* in the quarter of their last purchase when at least `lapse_quarters`
    quarters without a purchase follow in the data (later quarters cannot tell yet: missing).
    One row per quarter (the quarter moved from).
    """
    decoded = decoded_tiers(model)
    rank = {t: i for i, t in enumerate(model.tiers)}
    level = decoded.apply(lambda col: col.map(rank))
    before, after = level.iloc[:, :-1].to_numpy(), level.iloc[:, 1:].to_numpy()
    both = ~np.isnan(before) & ~np.isnan(after)
    last = decoded.notna().to_numpy()[:, ::-1].argmax(axis=1)
    last = decoded.shape[1] - 1 - last
    out = pd.DataFrame({
        "stayed": (both & (after == before)).sum(axis=0),
        "moved up": (both & (after > before)).sum(axis=0),
        "moved down": (both & (after < before)).sum(axis=0),
    }, index=pd.Index(model.quarters[:-1], name="quarter"))
    left = pd.Series(np.bincount(last, minlength=len(model.quarters)), index=model.quarters).iloc[:-1]
    known = np.arange(len(model.quarters) - 1) <= len(model.quarters) - 1 - lapse_quarters
    out["left"] = left.where(known).to_numpy()
    return out
