"""Up-sell: which customers are about to move up the tier ladder, and what to offer them.

Tiers are ordered by ``Settings.tier_ladder`` (lowest first). A customer's *tier level* is the
position on the ladder of their order lines, averaged; their *main tier* the level most of
their lines in a period are at. Features as of a cut-off, computed in the engine per customer:
orders, spend, recency, the mean tier level over the whole history and over the last quarter,
and the share of lines above the main tier. The label is observed: the customer's main tier in
the next quarter is higher than their main tier up to the cut-off. A logistic regression
learns it on one quarter and scores the next; customers already at the top cannot move up and
are left out.
"""

from __future__ import annotations

from pathlib import Path

import ibis
import numpy as np
import pandas as pd
from ibis.backends import BaseBackend
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from crm_helpers import warehouse as wh
from crm_helpers.information import star

FEATURES = ["log_orders", "log_spend", "recency_days", "level_all", "level_recent",
            "level_trend", "share_above"]
RECENT_DAYS = 91
QUARTER_MONTHS = 3


def _levels(lines, ladder) -> ibis.Value:
    """Each line's position on the tier ladder (0 = lowest; NULL for an unknown tier)."""
    return lines.tier.cases(*[(t, i) for i, t in enumerate(ladder)], else_=None)


def main_tiers(con: BaseBackend | str | Path | None, start, end, ladder) -> pd.Series:
    """Each customer's main tier level between `start` (exclusive; None: from the beginning)
    and `end` (inclusive): the level most of their purchase lines are at (ties: the lower)."""
    lines = star.customer_lines(wh.as_connection(con), end)
    lines = lines.filter(lines.is_purchase)
    if start is not None:
        lines = lines.filter(lines.order_date > pd.Timestamp(start).date())
    lines = lines.mutate(level=_levels(lines, ladder)).filter(lambda t: t.level.notnull())
    counts = lines.group_by(["customer_id", "level"]).aggregate(n=lines.count()).execute()
    counts = counts.sort_values(["customer_id", "n", "level"], ascending=[True, False, True])
    return counts.drop_duplicates("customer_id").set_index("customer_id")["level"].astype(int)


def tier_features(con: BaseBackend | str | Path | None, as_of, ladder) -> pd.DataFrame:
    """Per customer with a purchase up to `as_of`: the FEATURES and ``main_tier`` (a level),
    aggregated in the engine (see module docstring)."""
    con = wh.as_connection(con)
    as_of = pd.Timestamp(as_of)
    lines = star.customer_lines(con, as_of)
    lines = lines.filter(lines.is_purchase)
    lines = lines.mutate(level=_levels(lines, ladder).cast("float64"))
    recent = lines.order_date > (as_of - pd.Timedelta(days=RECENT_DAYS)).date()
    per = lines.group_by("customer_id").aggregate(
        orders=lines.order_id.nunique(), spend=lines.line_amount.sum().cast("float64"),
        last=lines.order_date.max(), level_all=lines.level.mean(),
        level_recent=lines.level.mean(where=recent), lines=lines.count()).execute()
    per = per.set_index("customer_id").sort_index()
    main = main_tiers(con, None, as_of, ladder).reindex(per.index)
    above = lines.mutate(level=lines.level.cast("int64"))
    highs = above.group_by(["customer_id", "level"]).aggregate(n=above.count()).execute()
    highs = highs.merge(main.rename("main").reset_index(), on="customer_id")
    share_above = highs[highs["level"] > highs["main"]].groupby("customer_id")["n"].sum()
    out = pd.DataFrame(index=per.index)
    out["log_orders"] = np.log(per["orders"])
    out["log_spend"] = np.log1p(per["spend"].clip(lower=0))
    out["recency_days"] = (as_of - pd.to_datetime(per["last"])).dt.days
    out["level_all"] = per["level_all"]
    out["level_recent"] = per["level_recent"].fillna(per["level_all"])
    out["level_trend"] = out["level_recent"] - out["level_all"]
    out["share_above"] = share_above.reindex(per.index).fillna(0) / per["lines"]
    out["main_tier"] = main
    return out.dropna()


def moved_up(con: BaseBackend | str | Path | None, features: pd.DataFrame, as_of, ladder,
             months: int = QUARTER_MONTHS) -> pd.Series:
    """Observed label: the main tier in the `months` after `as_of` is above the main tier up to
    it (customers of `features` who bought in that span; the others are left out)."""
    end = pd.Timestamp(as_of) + pd.DateOffset(months=months)
    later = main_tiers(con, as_of, end, ladder)
    both = features[["main_tier"]].join(later.rename("later"), how="inner")
    return (both["later"] > both["main_tier"]).rename("moved_up")


def can_move_up(features: pd.DataFrame, ladder) -> pd.DataFrame:
    """The customers not yet at the top of the ladder."""
    return features[features["main_tier"] < len(ladder) - 1]


def fit_upsell(features: pd.DataFrame, labels: pd.Series, seed: int = 0):
    """A logistic regression of `labels` on the FEATURES (standardised, classes balanced)."""
    x = features.loc[labels.index, FEATURES]
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced",
                                                               random_state=seed, max_iter=1000))
    return model.fit(x, labels.astype(int))


def upsell_scores(model, features: pd.DataFrame) -> pd.Series:
    """The model's probability that each customer of `features` moves up (``upsell_score``)."""
    return pd.Series(model.predict_proba(features[FEATURES])[:, 1], index=features.index,
                     name="upsell_score")


def auc(scores: pd.Series, labels: pd.Series) -> float:
    """Area under the ROC curve of `scores` against boolean `labels` (common customers)."""
    both = pd.concat([scores, labels], axis=1, join="inner").dropna()
    return float(roc_auc_score(both.iloc[:, 1].astype(bool), both.iloc[:, 0]))


def next_tier_offers(con: BaseBackend | str | Path | None, candidates: pd.Index, as_of, ladder,
                     features: pd.DataFrame) -> pd.DataFrame:
    """For each candidate customer, the next tier up from their main tier in their most-bought
    category: that category's best-selling product of the next tier (up to `as_of`).

    Returns customer_id, sku (the offer), item (the product name of their own most-bought
    product in that category and tier, the one the offer moves up from) and score (the
    ``upsell_score`` of `features` when it has one).
    """
    con = wh.as_connection(con)
    lines = star.customer_lines(con, as_of)
    lines = lines.filter(lines.is_purchase)
    bought = lines.group_by(["customer_id", "category", "tier", "sku", "product_name"]) \
        .aggregate(n=lines.count()).execute()
    bought = bought[bought["customer_id"].isin(candidates)]
    level = {t: i for i, t in enumerate(ladder)}
    bought["level"] = bought["tier"].map(level)
    bought = bought.merge(features["main_tier"].rename("main").reset_index(), on="customer_id")
    own = bought[bought["level"] == bought["main"]]
    category = own.groupby(["customer_id", "category"])["n"].sum().reset_index() \
        .sort_values(["customer_id", "n", "category"], ascending=[True, False, True]) \
        .drop_duplicates("customer_id")
    item = own.sort_values(["customer_id", "n", "sku"], ascending=[True, False, True]) \
        .merge(category[["customer_id", "category"]], on=["customer_id", "category"]) \
        .drop_duplicates("customer_id")[["customer_id", "category", "main", "product_name"]]
    sales = lines.group_by(["category", "tier", "sku"]).aggregate(n=lines.count()).execute()
    sales["level"] = sales["tier"].map(level)
    best = sales.sort_values(["category", "level", "n", "sku"], ascending=[True, True, False, True]) \
        .drop_duplicates(["category", "level"])
    item["next"] = item["main"] + 1
    out = item.merge(best[["category", "level", "sku"]], left_on=["category", "next"],
                     right_on=["category", "level"])
    out["score"] = out["customer_id"].map(features["upsell_score"]) if "upsell_score" in features else np.nan
    return out.rename(columns={"product_name": "item"})[["customer_id", "sku", "item", "score"]] \
        .sort_values("customer_id", ignore_index=True)


def quarter_model(con: BaseBackend | str | Path | None, as_of, ladder, seed: int = 0):
    """Learn on the quarter before `as_of`, score as of `as_of`.

    The model is fitted on features as of a quarter earlier and the moves observed up to
    `as_of`; it then scores every customer who can move up as of `as_of`. Returns (model,
    scored: the features with ``upsell_score``, observed: the moves seen in the quarter after
    `as_of`, empty when the data end there).
    """
    con = wh.as_connection(con)
    as_of = pd.Timestamp(as_of)
    earlier = as_of - pd.DateOffset(months=QUARTER_MONTHS)
    train = can_move_up(tier_features(con, earlier, ladder), ladder)
    model = fit_upsell(train, moved_up(con, train, earlier, ladder), seed)
    scored = can_move_up(tier_features(con, as_of, ladder), ladder)
    scored = scored.assign(upsell_score=upsell_scores(model, scored))
    return model, scored, moved_up(con, scored, as_of, ladder)


def designed_above(con: BaseBackend | str | Path | None, scored: pd.DataFrame, as_of, ladder,
                   truth_dir: Path | None = None) -> pd.Series:
    """Truth check: is the customer's designed tier at the end of the quarter after `as_of`
    (truth/tiers.csv) above the main tier they bought at up to `as_of`? For customers of
    `scored` whose person has a tier then."""
    from crm_helpers import truth

    tiers = truth.read_truth("tiers", truth_dir)
    quarter = str(pd.Period(pd.Timestamp(as_of) + pd.DateOffset(months=QUARTER_MONTHS), "Q"))
    level = tiers[tiers["quarter"] == quarter].set_index("person_id")["tier"] \
        .map({t: i for i, t in enumerate(ladder)})
    persons = truth.customer_persons(wh.as_connection(con), truth_dir).reindex(scored.index)
    designed = pd.Series(persons.map(level).to_numpy(), index=scored.index).dropna()
    return (designed > scored.loc[designed.index, "main_tier"]).rename("designed_above")
