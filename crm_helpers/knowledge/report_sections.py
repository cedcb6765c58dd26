"""The periodic report's knowledge sections: the customer base's scores and the cross-sell offers.

Two small warehouse tables written by the knowledge notebooks are read as they stand, with light
queries and no model fitting (the report must stay fast):

- ``customer_scores`` (notebook 05, :mod:`crm_helpers.knowledge.scores`): segment sizes and their
  lifetime value, the migration between the previous scoring and this one, the base's churn risk
  and the customers with the most value at risk (``clv`` x ``churn_probability``);
- ``next_best_offer`` (notebook 06, :mod:`crm_helpers.knowledge.next_best`): per category, the
  customers offered one of its products, the sum of the offers' scores and the top product.

Each reads the latest ``as_of`` on or before the period's last day. When the table is missing or
has no such date, the section is ``None`` and :func:`missing_words` says how to produce it.
Customers appear by their pseudonymous ``customer_id`` only: no personal field is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from crm_helpers import display
from crm_helpers import warehouse as wh
from crm_helpers.knowledge import next_best, scores

SCORES_TABLE, OFFERS_TABLE = scores.TABLE, next_best.TABLE
#: How many at-risk customers the report lists.
TOP_AT_RISK = 10
#: The segment label of a customer scored on one date only (in the migration table) or without a segment.
NOT_SCORED = "(not scored)"
NO_SEGMENT = "(no segment)"
#: Which notebook writes each table, for the sentence shown when it is missing.
PRODUCED_BY = {scores.TABLE: ("notebook 05 (notebooks/05_value_and_risk.ipynb)", "customer scores"),
               next_best.TABLE: ("notebook 06 (notebooks/06_next_best_offer.ipynb)", "next best offers")}


def scoring_dates(con, table: str, day) -> list[date]:
    """The ``as_of`` dates of ``table`` on or before ``day``, latest first (empty when the table is missing)."""
    con = wh.as_connection(con)
    if table not in con.list_tables():
        return []
    t = con.table(table)
    dates = t.filter(t.as_of <= pd.Timestamp(day).date()).select("as_of").distinct().order_by(
        t.as_of.desc()).to_pandas()["as_of"]
    return [pd.Timestamp(d).date() for d in dates]


def missing_words(table: str, day) -> str:
    """One sentence for a section whose table is missing or has nothing up to ``day``, with how to produce it."""
    notebook, what = PRODUCED_BY[table]
    return (f"No {what} dated on or before {display.fmt(day, display.DATE)} in the warehouse (table "
            f"`{table}`): run {notebook} on this warehouse to write them, then run the report again.")


# --- customer base: segments, churn risk and lifetime value -------------------------------------

@dataclass
class CustomerBase:
    """The customer-base section: see :func:`customer_base`."""

    as_of: date
    previous_as_of: date | None
    segments: pd.DataFrame          # index segment: customers, share, clv, clv_per_customer
    migration: pd.DataFrame | None  # counts: previous segment (rows) x current segment (columns)
    risk: pd.Series                 # customers, mean_churn_probability, expected_lost, total_clv, clv_at_risk
    at_risk: pd.DataFrame           # customer_id, segment, clv, churn_probability, clv_at_risk


def segment_sizes(t) -> pd.DataFrame:
    """Customers, share of customers, total CLV and CLV per customer by segment (largest CLV first)."""
    t = t.mutate(segment=t.segment.fill_null(NO_SEGMENT))
    out = t.group_by("segment").aggregate(customers=t.customer_id.count(), clv=t.clv.sum()).to_pandas()
    out["share"] = out["customers"] / out["customers"].sum()
    out["clv_per_customer"] = out["clv"] / out["customers"]
    out = out.sort_values(["clv", "segment"], ascending=[False, True]).set_index("segment")
    return out[["customers", "share", "clv", "clv_per_customer"]].astype({"customers": "int64"})


def segment_migration(before, after) -> pd.DataFrame:
    """Customers by segment in one scoring (rows) and the next (columns), from two ``customer_scores`` slices.

    A customer in only one of the two scorings is counted under :data:`NOT_SCORED` on the other side.
    """
    b = before.select("customer_id", before_segment=before.segment.fill_null(NO_SEGMENT))
    a = after.select(after_id=after.customer_id, after_segment=after.segment.fill_null(NO_SEGMENT))
    both = b.outer_join(a, b.customer_id == a.after_id)
    pairs = both.group_by(before=both.before_segment.fill_null(NOT_SCORED),
                          after=both.after_segment.fill_null(NOT_SCORED)).aggregate(customers=both.count())
    matrix = pairs.to_pandas().pivot(index="before", columns="after", values="customers").fillna(0).astype("int64")
    order = lambda labels: sorted(labels, key=lambda s: (s == NOT_SCORED, s))  # noqa: E731
    return matrix.loc[order(matrix.index), order(matrix.columns)].rename_axis(index="previous segment",
                                                                               columns="segment")


def base_risk(t) -> pd.Series:
    """The base's churn risk and value: customers, mean churn probability, expected customers lost
    (the sum of churn probabilities), total CLV and CLV at risk (the sum of CLV x churn probability)."""
    row = t.aggregate(customers=t.customer_id.count(), mean_churn_probability=t.churn_probability.mean(),
                      expected_lost=t.churn_probability.sum(), total_clv=t.clv.sum(),
                      clv_at_risk=(t.clv * t.churn_probability).sum()).to_pandas().iloc[0]
    return row.astype("float64")


def top_at_risk(t, n: int = TOP_AT_RISK) -> pd.DataFrame:
    """The ``n`` customers with the largest CLV x churn probability, by pseudonymous ``customer_id`` only."""
    risk = t.filter(t.clv.notnull() & t.churn_probability.notnull())
    risk = risk.select("customer_id", segment=risk.segment.fill_null(NO_SEGMENT), clv=risk.clv,
                       churn_probability=risk.churn_probability,
                       clv_at_risk=risk.clv * risk.churn_probability)
    return risk.order_by([risk.clv_at_risk.desc(), risk.customer_id]).limit(n).to_pandas()


def customer_base(con, day, n: int = TOP_AT_RISK) -> CustomerBase | None:
    """The customer-base section from ``customer_scores`` as of the latest ``as_of`` on or before ``day``
    (and the migration from the scoring before it, when there is one); ``None`` when there is no such scoring."""
    con = wh.as_connection(con)
    dates = scoring_dates(con, scores.TABLE, day)
    if not dates:
        return None
    t = con.table(scores.TABLE)
    now = t.filter(t.as_of == dates[0])
    migration = segment_migration(t.filter(t.as_of == dates[1]), now) if len(dates) > 1 else None
    return CustomerBase(dates[0], dates[1] if len(dates) > 1 else None, segment_sizes(now), migration,
                        base_risk(now), top_at_risk(now, n))


def base_words(base: CustomerBase) -> str:
    """The customer-base section's sentences, each number from the data."""
    r = base.risk
    words = (f"Scores as of {display.fmt(base.as_of, display.DATE)}: {display.count_of(int(r.customers), 'customer')}, "
             f"mean churn probability {display.fmt(r.mean_churn_probability, display.RATE)}, so about "
             f"{display.count_of(round(r.expected_lost), 'customer')} expected to be lost; their lifetime value is "
             f"{display.fmt(r.total_clv, display.MONEY)}, of which {display.fmt(r.clv_at_risk, display.MONEY)} "
             f"({display.fmt(r.clv_at_risk / r.total_clv if r.total_clv else None, display.RATE)}) is at risk "
             f"(CLV x churn probability).")
    if base.migration is None:
        return words + " Only one scoring exists up to the period's end, so there is no segment migration to show yet."
    stayed = sum(base.migration.at[s, s] for s in base.migration.index
                 if s in base.migration.columns and s != NOT_SCORED)
    scored_twice = base.migration.drop(index=NOT_SCORED, columns=NOT_SCORED, errors="ignore").to_numpy().sum()
    return words + (f" Between the scorings of {display.fmt(base.previous_as_of, display.DATE)} and "
                    f"{display.fmt(base.as_of, display.DATE)}, {display.fmt(stayed / scored_twice if scored_twice else None, display.RATE)} "
                    f"of the {display.count_of(int(scored_twice), 'customer')} scored both times kept their segment.")


# --- cross-sell opportunities by category -------------------------------------------------------

@dataclass
class CrossSell:
    """The cross-sell section: see :func:`cross_sell`."""

    as_of: date
    categories: pd.DataFrame  # index category: customers, offers, score_sum, top_product, top_product_name


def cross_sell(con, day) -> CrossSell | None:
    """Per category, from ``next_best_offer`` as of the latest ``as_of`` on or before ``day``: the
    customers offered one of its products, the offers, the sum of their scores and the top product
    (largest sum of scores; its name from ``dim_product`` when there). Categories by sum of scores,
    largest first; ``None`` when there are no offers up to ``day``.

    The score is the offer's ranking score (``next_best.offers``: the hybrid of scaled rule,
    similar-customer and popularity scores, or an up-sell probability for up-sell offers): it ranks
    offers, it is not a probability of buying, so its sum is not a count of expected takers.
    """
    con = wh.as_connection(con)
    dates = scoring_dates(con, next_best.TABLE, day)
    if not dates:
        return None
    t = con.table(next_best.TABLE)
    t = t.filter(t.as_of == dates[0])
    cats = t.group_by("category").aggregate(customers=t.customer_id.nunique(), offers=t.count(),
                                            score_sum=t.score.sum()).to_pandas()
    by_product = t.group_by(["category", "product"]).aggregate(score=t.score.sum()).to_pandas()
    top = by_product.sort_values(["category", "score", "product"], ascending=[True, False, True]) \
        .drop_duplicates("category").rename(columns={"product": "top_product"})[["category", "top_product"]]
    out = cats.merge(top, on="category")
    if "dim_product" in con.list_tables():
        names = con.table("dim_product").select("sku", "product_name").to_pandas()
        out = out.merge(names.rename(columns={"sku": "top_product", "product_name": "top_product_name"}),
                        on="top_product", how="left")
    else:
        out["top_product_name"] = out["top_product"]
    out = out.sort_values(["score_sum", "category"], ascending=[False, True]).set_index("category")
    return CrossSell(dates[0], out.astype({"customers": "int64", "offers": "int64"}))


def cross_sell_words(sell: CrossSell) -> str:
    """The cross-sell section's sentence, each number from the data."""
    c = sell.categories
    first = c.iloc[0]
    return (f"Offers as of {display.fmt(sell.as_of, display.DATE)}: {display.count_of(int(c.offers.sum()), 'offer')} "
            f"in {display.count_of(len(c), 'category', 'categories')}. The largest opportunity is {c.index[0]} "
            f"({display.count_of(int(first.customers), 'customer')} offered, total score "
            f"{display.fmt(first.score_sum, display.NUMBER, 1)}, led by {first.top_product_name}). The score ranks "
            f"offers (a blend of rule, similar-customer and popularity scores); it is not a probability of "
            f"buying, so its sum is not a number of expected buyers.")
