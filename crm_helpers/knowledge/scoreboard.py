"""The CLV scoreboard: which model of customer value to trust for what, on one time split.

No library compares buy-till-you-die models with machine learning and a plain baseline on the
same customers, so this module does. Every model predicts each customer's spend in the holdout
period from what was known at the end of the calibration period:

- the BTYD models (``clv``): expected purchase days x Gamma-Gamma's expected spend per day;
- a gradient-boosted regressor (scikit-learn) on RFM and behaviour features, trained one
  holdout-length earlier (features at calibration end - holdout, label = the spend of the
  following period) and applied at the calibration end: an honest forecast, never trained on
  the period it predicts;
- an RFM-quintile baseline: the mean next-period spend of the customer's recency x frequency x
  monetary quintile cell in that same earlier split.

They are scored on the holdout's actual spend (:func:`score`): total error, decile error and rank
correlation, in total and by segment. Features are computed in the engine (Ibis); the one row per
customer comes back to pandas for scikit-learn.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
from ibis.backends import BaseBackend
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from crm_helpers import warehouse as wh
from crm_helpers.information import rfm, star
from crm_helpers.knowledge import segments

FEATURES = ["frequency", "recency", "T", "monetary_value", "recency_days", "purchase_days", "orders",
            "gross_sales", "returns", "margin", "days_last_year", "spend_last_year", "web_share",
            "lines_per_order", "signup_days"]
#: The quintile scores of the baseline: recency (fewer days is better), frequency, monetary.
RFM_COLUMNS = {"r": ("recency_days", False), "f": ("purchase_days", True), "m": ("total_spend", True)}
ACTUAL = "actual"
NOT_SEGMENTED = "not segmented (1 order)"


def value_features(con: BaseBackend | str | Path | None, end) -> pd.DataFrame:
    """RFM and behaviour features of every customer with a purchase by ``end`` (index customer_id).

    From ``rfm.customer_summary`` (frequency, recency, T, monetary_value in days, recency_days,
    purchase_days, orders, gross_sales, returns, total_spend, margin), plus purchase days and
    spend in the last 365 days, web share of orders, lines per order and days since signup; all
    computed in the engine up to ``end``.
    """
    con = wh.as_connection(con)
    end = pd.Timestamp(end).date()
    summary = rfm.customer_summary(con, observation_period_end=end)
    lines = star.customer_lines(con, end)
    recent = lines.filter(lines.is_purchase & (lines.order_date > end - timedelta(days=365)))
    last_year = recent.group_by("customer_id").aggregate(
        days_last_year=recent.order_date.nunique(), spend_last_year=recent.line_amount.sum().cast("float64"))
    buys = lines.filter(lines.is_purchase)
    habits = buys.group_by("customer_id").aggregate(
        web_share=(buys.channel == wh.settings(con).web_channel).cast("float64").mean(),
        lines_per_order=buys.count().cast("float64") / buys.order_id.nunique())
    signup = con.table("dim_customer").select("customer_id", "signup_date")
    out = summary.left_join(last_year, "customer_id").left_join(habits, "customer_id") \
        .left_join(signup, "customer_id")
    out = out.select(
        *summary.columns,
        days_last_year=last_year.days_last_year.fill_null(0), spend_last_year=last_year.spend_last_year.fill_null(0.0),
        web_share=habits.web_share, lines_per_order=habits.lines_per_order,
        signup_days=(ibis.literal(end).epoch_days() - signup.signup_date.cast("date").epoch_days()).cast("float64"))
    return out.execute().set_index("customer_id").sort_index()


def fit_gradient_boosting(features: pd.DataFrame, label: pd.Series, seed: int = 0,
                          max_iter: int = 300) -> HistGradientBoostingRegressor:
    """A gradient-boosted regressor (Poisson loss: spend is non-negative and skewed, often zero)
    of ``label`` on the :data:`FEATURES` columns of ``features``; deterministic for a ``seed``."""
    model = HistGradientBoostingRegressor(loss="poisson", learning_rate=0.05, max_iter=max_iter,
                                          early_stopping=False, random_state=seed)
    with threadpool_limits(1):  # OpenMP threads fight over a shared machine's cores: one is faster
        return model.fit(features[FEATURES], label.reindex(features.index).fillna(0))


def rfm_cells(features: pd.DataFrame) -> pd.DataFrame:
    """Recency, frequency and monetary quintiles (1..5, 5 = best) of each customer in ``features``."""
    return pd.DataFrame({score: np.ceil(features[col].rank(pct=True, ascending=up, method="first") * 5).astype(int)
                         for score, (col, up) in RFM_COLUMNS.items()}, index=features.index)


def rfm_quintile_baseline(train_features: pd.DataFrame, train_label: pd.Series,
                          features: pd.DataFrame) -> pd.Series:
    """Each customer's predicted spend: the mean label of their R x F x M quintile cell in the
    training split (a cell nobody filled falls back to the R x F cell, then to the overall mean)."""
    train = rfm_cells(train_features).assign(label=train_label.reindex(train_features.index).fillna(0))
    cells = rfm_cells(features)
    fine = cells.join(train.groupby(["r", "f", "m"])["label"].mean().rename("fine"), on=["r", "f", "m"])
    coarse = cells.join(train.groupby(["r", "f"])["label"].mean().rename("coarse"), on=["r", "f"])
    return fine["fine"].fillna(coarse["coarse"]).fillna(train["label"].mean()).rename("rfm_quintiles")


def segment_labels(con: BaseBackend | str | Path | None, end, k: int = 4, seed: int = 0) -> pd.Series:
    """Each customer's behavioural cluster at ``end`` (``segments.cluster_customers``) as a label,
    ``cluster 1`` (most frequent buyers) .. ``cluster k``; customers with too few orders to be
    clustered read :data:`NOT_SEGMENTED`. Index customer_id (customers with a purchase by ``end``)."""
    mix = segments.customer_mix(con, end)
    cluster = segments.cluster_customers(segments.segment_features(mix, end=end), k=k, seed=seed)
    return ("cluster " + cluster.astype(str)).reindex(mix.index).fillna(NOT_SEGMENTED).rename("segment")


def _decile_error(pred: pd.Series, actual: pd.Series, deciles: int = 10) -> float:
    """Weighted absolute error of the mean per decile of prediction: sum |predicted - actual| over
    deciles / sum of actual (robust to deciles that spend nothing)."""
    bins = min(deciles, max(1, len(pred) // 10))
    decile = pd.qcut(pred.rank(method="first"), bins, labels=False)
    means = pd.DataFrame({"p": pred, "a": actual}).groupby(decile).mean()
    return float((means["p"] - means["a"]).abs().sum() / means["a"].sum())


def score(predictions: pd.DataFrame, models, by: pd.Series | None = None) -> pd.DataFrame:
    """The scoreboard: each model's predicted holdout value against :data:`ACTUAL`.

    predictions: one row per customer (index customer_id) with an ``actual`` column and one
    column per model in ``models``; by: a label per customer (a segment) to score within.
    Returns one row per model (and group, if ``by``): customers, actual, predicted (totals),
    total_error (predicted / actual - 1), decile_error (see ``_decile_error``) and
    rank_correlation (Spearman, of predicted and actual value per customer).
    """
    groups = [("all customers", predictions)] if by is None else [
        (name, part) for name, part in predictions.groupby(by.reindex(predictions.index).rename("segment"))]
    rows = []
    for name, part in groups:
        for model in models:
            rows.append({"segment": name, "model": model, "customers": len(part),
                         "actual": part[ACTUAL].sum(), "predicted": part[model].sum(),
                         "total_error": part[model].sum() / part[ACTUAL].sum() - 1,
                         "decile_error": _decile_error(part[model], part[ACTUAL]),
                         "rank_correlation": part[model].corr(part[ACTUAL], method="spearman")})
    out = pd.DataFrame(rows)
    return out.drop(columns="segment").set_index("model") if by is None else out.set_index(["segment", "model"])


def winners(board: pd.DataFrame) -> pd.Series:
    """The best model by each measure of a :func:`score` table without groups: smallest
    absolute total error, smallest decile error, highest rank correlation."""
    return pd.Series({"total": board["total_error"].abs().idxmin(),
                      "deciles": board["decile_error"].idxmin(),
                      "ranking": board["rank_correlation"].idxmax()})


def verdict(board: pd.DataFrame, by_segment: pd.DataFrame) -> str:
    """Which model to trust for what, in words computed from the scoreboard (overall and by segment)."""
    from crm_helpers import display

    best = winners(board)
    seg_best = by_segment.groupby(level="segment").apply(lambda b: winners(b.droplevel("segment")))
    n = len(seg_best)
    parts = [
        f"For the **total** value of the base, trust **{best['total']}** "
        f"(off by {display.fmt(board.loc[best['total'], 'total_error'], 'rate')}; it is also closest in "
        f"{(seg_best['total'] == best['total']).sum()} of {n} segments).",
        f"For the **value profile** (mean value per decile of prediction), trust **{best['deciles']}** "
        f"(decile error {display.fmt(board.loc[best['deciles'], 'decile_error'], 'rate')}).",
        f"For **ranking** customers (whom to treat first), trust **{best['ranking']}** "
        f"(rank correlation {board.loc[best['ranking'], 'rank_correlation']:.2f}; best in "
        f"{(seg_best['ranking'] == best['ranking']).sum()} of {n} segments).",
    ]
    return " ".join(parts)
