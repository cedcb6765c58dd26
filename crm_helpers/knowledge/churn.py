"""Churn (attrition) risk: who of today's customers will not buy again in the coming window.

**Definition.** At a cut-off day, the customers *at risk* are those with at least one purchase on
or before it. A customer **churns** when they make no purchase in the ``window_days`` days after
the cut-off (cut-off excluded, cut-off + window included). Returns are not purchases.

**Features** describe each customer as the organisation saw them at the cut-off, computed in the
engine (Ibis) from rows dated on or before it only: purchases and returns by order day, call-centre
contacts by contact day, campaign contacts by the day the campaign was sent (a campaign decided
later cannot enter), campaign responses by response day; from ``dim_customer`` only what was fixed
at sign-up (sign-up day, acquisition channel), since consent and home region are today's values.
:func:`latest_inputs` reports the last day each input table contributes, so a notebook can assert
that nothing after the cut-off was read.

**Model.** A gradient-boosted classifier (scikit-learn's HistGradientBoostingClassifier) whose
probabilities are calibrated by cross-validation (CalibratedClassifierCV, isotonic), trained on a
customer split with a seed. It is compared with an RFM-only logistic regression (recency,
frequency, monetary) and with buy-till-you-die: 1 − P(alive) of a BG/NBD model fitted on the
purchases up to the cut-off (:mod:`crm_helpers.knowledge.clv`).
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from ibis.backends import BaseBackend
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from crm_helpers import warehouse as wh
from crm_helpers.information import star
from crm_helpers.knowledge import clv

#: Days after the cut-off in which a customer who buys nothing has churned.
WINDOW_DAYS = 365
#: Length of the "recent" and the "earlier" period of the trend features.
TREND_DAYS = 180
#: Threads of the boosting (OpenMP): one customer per row is a small table, for which one thread
#: beats OpenMP's start-up and, on a shared machine, its contention (ten times faster here).
THREADS = 1
#: Share of customers held out to test the models.
TEST_SHARE = 0.3
#: The RFM-only baseline's inputs.
RFM_FEATURES = ["recency_days", "orders", "order_value"]
#: Columns pivoted by value (one column per value found in the data, e.g. ``contacts:COMPLAINT``).
PIVOT_PREFIXES = {"tier_share:": "share of lines in tier {}", "channel_share:": "share of orders via {}",
                  "contacts:": "{} contacts", "outcome:": "contacts ending {}",
                  "responses:": "campaign responses of type {}"}
#: The inputs of :func:`inputs` as a reader names them.
INPUT_NAMES = {"lines": "order lines", "contacts": "call-centre contacts",
               "campaign_contacts": "campaign contacts (day sent)", "responses": "campaign responses"}
#: How each feature reads in a sentence.
FEATURE_NAMES = {
    "recency_days": "days since the last purchase",
    "orders": "orders",
    "purchase_days": "days with a purchase",
    "order_value": "average order value",
    "revenue": "net revenue",
    "tenure_days": "days since sign-up",
    "history_days": "days since the first purchase",
    "existing_base": "signed up before the data start",
    "lines_per_order": "lines per order",
    "items_per_order": "items per order",
    "return_lines": "returned lines",
    "return_share": "share of sales returned",
    "mean_gap_days": "average days between purchase days",
    "overdue_ratio": "days since the last purchase relative to the usual gap",
    "orders_recent": f"orders in the last {TREND_DAYS} days",
    "orders_earlier": f"orders in the {TREND_DAYS} days before those",
    "order_trend": "change in orders, recent against earlier",
    "order_value_trend": "recent against earlier average order value",
    "contacts": "call-centre contacts",
    "days_since_contact": "days since the last call-centre contact",
    "campaign_contacts": "campaign contacts",
    "responses": "campaign responses",
    "days_since_response": "days since the last campaign response",
    "acquisition_channel": "acquisition channel",
}


def _day(value) -> dt.date:
    return pd.Timestamp(value).date()


def default_cut_off(con: BaseBackend | str | Path | None = None, window_days: int = WINDOW_DAYS) -> dt.date:
    """The latest cut-off whose whole label window lies in the data: the last order day − window."""
    return star.latest_order_date(wh.as_connection(con)) - dt.timedelta(days=window_days)


def inputs(con: BaseBackend | str | Path | None, cut_off) -> dict[str, ir.Table]:
    """Every dated input of the features, filtered to rows dated on or before ``cut_off``.

    Keys: ``lines`` (identified customers' order lines by order day), ``contacts`` (call-centre
    contacts, when the warehouse has them), ``campaign_contacts`` (by the day sent) and
    ``responses`` (campaign responses). Each table has a ``day`` column: the date it is filtered on.
    """
    con = wh.as_connection(con)
    cut = ibis.date(_day(cut_off))
    lines = star.customer_lines(con, _day(cut_off))
    out = {"lines": lines.mutate(day=lines.order_date)}
    tables = set(con.list_tables())
    dated = {"contacts": ("fact_interaction", "interaction_date"),
             "campaign_contacts": ("fact_campaign_contact", "contact_date"),
             "responses": ("fact_campaign_response", "response_date")}
    for key, (name, column) in dated.items():
        if name in tables:
            t = con.table(name)
            t = t.filter(t.customer_id.notnull()).mutate(day=t[column].cast("date"))
            out[key] = t.filter(t.day <= cut)
    return out


def latest_inputs(con: BaseBackend | str | Path | None, cut_off) -> pd.Series:
    """The last day each input of :func:`features` contributes (the leakage guard: all ≤ cut-off)."""
    days = {key: t.day.max().execute() for key, t in inputs(con, cut_off).items()}
    return pd.Series({k: None if pd.isna(v) else _day(v) for k, v in days.items()}, name="latest_day",
                     dtype=object).rename_axis("input")


def _customers(lines: ir.Table, con: BaseBackend, cut: ir.DateValue) -> ir.Table:
    """One row per customer with a purchase by the cut-off: RFM, basket, returns, trend, tenure."""
    buys = lines.filter(lines.is_purchase)
    orders = buys.group_by(["customer_id", "order_id"]).aggregate(
        day=buys.order_date.min(), lines=buys.count(), items=buys.quantity.sum(),
        amount=buys.line_amount.sum())  # decimal: sums in any order give the same features
    recent = orders.day > cut - ibis.interval(days=TREND_DAYS)
    earlier = ~recent & (orders.day > cut - ibis.interval(days=2 * TREND_DAYS))
    per = orders.group_by("customer_id").aggregate(
        orders=orders.count(), purchase_days=orders.day.nunique(),
        first_purchase=orders.day.min(), last_purchase=orders.day.max(),
        gross_sales=orders.amount.sum().cast("float64"), lines=orders.lines.sum(), items=orders.items.sum(),
        orders_recent=recent.cast("int64").sum(), orders_earlier=earlier.cast("int64").sum(),
        value_recent=orders.amount.mean(where=recent), value_earlier=orders.amount.mean(where=earlier))
    money = lines.group_by("customer_id").aggregate(
        revenue=lines.line_amount.sum().cast("float64"),
        return_lines=(~lines.is_purchase).cast("int64").sum())
    signup = con.table("dim_customer").select("customer_id", "signup_date", "acquisition_channel")
    facts = con.table("fact_order_line")
    data_start = facts.filter(facts.order_date <= cut).order_date.min().cast("date").as_scalar()
    j = per.left_join(money, "customer_id").left_join(signup, "customer_id")
    # A customer who bought before their recorded sign-up (records merged later) was one from then.
    signed = ibis.least(j.signup_date.cast("date"), j.first_purchase).fill_null(j.first_purchase)
    gaps = (j.last_purchase.delta(j.first_purchase, unit="day").cast("float64")
            / (j.purchase_days - 1).nullif(0))
    recency = cut.delta(j.last_purchase, unit="day")
    return j.select(
        "customer_id",
        recency_days=recency,
        orders=j.orders,
        purchase_days=j.purchase_days,
        order_value=j.gross_sales / j.orders,
        revenue=j.revenue,
        tenure_days=cut.delta(signed, unit="day"),
        history_days=cut.delta(j.first_purchase, unit="day"),
        existing_base=(signed < data_start).cast("int64"),
        lines_per_order=j.lines / j.orders,
        items_per_order=j.items.cast("float64") / j.orders,
        return_lines=j.return_lines,
        return_share=(j.gross_sales - j.revenue) / j.gross_sales.nullif(0),
        mean_gap_days=gaps,
        overdue_ratio=recency.cast("float64") / gaps,
        orders_recent=j.orders_recent,
        orders_earlier=j.orders_earlier,
        order_trend=j.orders_recent - j.orders_earlier,
        order_value_trend=j.value_recent / j.value_earlier.nullif(0),
        acquisition_channel=j.acquisition_channel,
    )


def _pivot(t: ir.Table, column: str, prefix: str, share: bool = False) -> pd.DataFrame:
    """Counts (or, with ``share``, shares) of rows per customer and value of ``column``, one column
    per value found (``<prefix><value>``): counted in the engine, widened in pandas."""
    counts = t.group_by(["customer_id", column]).aggregate(n=t.count()).execute()
    wide = counts.pivot(index="customer_id", columns=column, values="n").fillna(0)
    if share:
        wide = wide.div(wide.sum(axis=1), axis=0)
    wide.columns = [f"{prefix}{c}" for c in wide.columns]
    return wide


def features(con: BaseBackend | str | Path | None, cut_off) -> pd.DataFrame:
    """Churn features of every customer with a purchase on or before ``cut_off`` (index customer_id).

    Recency, frequency, monetary, tenure, basket size, returns, tier and channel mix, trend
    (recent against earlier orders and order value), call-centre contacts by reason and outcome,
    campaign contacts and responses, each from rows dated on or before the cut-off (module
    docstring). Counts of events a customer never had are 0; a ratio that cannot be computed
    (the gap between purchases of a one-time buyer) is missing, which the model handles.
    """
    con = wh.as_connection(con)
    cut = ibis.date(_day(cut_off))
    ins = inputs(con, cut_off)
    lines = ins["lines"]
    out = _customers(lines, con, cut).execute().set_index("customer_id")
    buys = lines.filter(lines.is_purchase)
    out = out.join(_pivot(buys, "tier", "tier_share:", share=True))
    orders = buys.select("customer_id", "order_id", "channel").distinct()
    out = out.join(_pivot(orders, "channel", "channel_share:", share=True))
    if "contacts" in ins:
        calls = ins["contacts"]
        last = calls.group_by("customer_id").aggregate(contacts=calls.count(), last_contact=calls.day.max())
        last = last.mutate(days_since_contact=cut.delta(last.last_contact, unit="day")).drop("last_contact")
        out = out.join(last.execute().set_index("customer_id"))
        out = out.join(_pivot(calls, "reason_code", "contacts:")).join(_pivot(calls, "outcome", "outcome:"))
    if "campaign_contacts" in ins:
        sent = ins["campaign_contacts"]
        out = out.join(sent.group_by("customer_id").aggregate(campaign_contacts=sent.count())
                       .execute().set_index("customer_id"))
    if "responses" in ins:
        resp = ins["responses"]
        last = resp.group_by("customer_id").aggregate(responses=resp.count(), last_response=resp.day.max())
        last = last.mutate(days_since_response=cut.delta(last.last_response, unit="day")).drop("last_response")
        out = out.join(last.execute().set_index("customer_id"))
        out = out.join(_pivot(resp, "response_type", "responses:"))
    counts = [c for c in out.columns if ":" in c or c in ("contacts", "campaign_contacts", "responses")]
    out[counts] = out[counts].fillna(0)
    out["acquisition_channel"] = out["acquisition_channel"].astype("category")
    floats = out.select_dtypes("float").columns
    out[floats] = out[floats].round(9)  # the engine's parallel float sums differ in the last digits
    return out.sort_index()


def labels(con: BaseBackend | str | Path | None, cut_off, window_days: int = WINDOW_DAYS) -> pd.Series:
    """``churned`` per customer with a purchase on or before ``cut_off``: True when they make no
    purchase in the ``window_days`` days after it (index customer_id). The window must end within
    the data (else ``ValueError``: an unfinished window would count late buyers as churned)."""
    con = wh.as_connection(con)
    cut = _day(cut_off)
    end = cut + dt.timedelta(days=window_days)
    last = star.latest_order_date(con)
    if end > last:
        raise ValueError(f"the label window ends on {end}, after the last order day {last}: "
                         "choose an earlier cut-off or a shorter window")
    lines = star.customer_lines(con, end)
    buys = lines.filter(lines.is_purchase)
    per = buys.group_by("customer_id").aggregate(
        before=(buys.order_date <= cut).any(), after=(buys.order_date > cut).any())
    per = per.filter(per.before).execute().set_index("customer_id")
    return (~per["after"].astype(bool)).rename("churned").sort_index()


def window_coverage(con: BaseBackend | str | Path | None, cut_off, window_days: int = WINDOW_DAYS) -> pd.Series:
    """Purchase lines per calendar month of the label window (index: month as ``YYYY-MM``).

    A month with none (or few) means an export is missing: its buyers would count as churned.
    """
    con = wh.as_connection(con)
    start, end = _day(cut_off) + dt.timedelta(days=1), _day(cut_off) + dt.timedelta(days=window_days)
    lines = star.customer_lines(con, end)
    buys = lines.filter(lines.is_purchase & (lines.order_date >= start))
    per = buys.group_by(month=buys.order_date.truncate("M")).aggregate(lines=buys.count()).execute()
    months = pd.period_range(start, end, freq="M")
    got = per.set_index(pd.PeriodIndex(pd.to_datetime(per["month"]), freq="M"))["lines"]
    return got.reindex(months, fill_value=0).set_axis(months.astype(str)).rename_axis("month")


def feature_unit(feature: str) -> str:
    """The display unit of a feature: days, money, a rate (shares) or a number."""
    if feature.endswith("_days"):
        return "days"
    if feature in ("order_value", "revenue"):
        return "money"
    if "share" in feature:
        return "rate"
    return "number"


def profile(features: pd.DataFrame, labels: pd.Series, columns: list[str]) -> pd.DataFrame:
    """Mean of each of ``columns`` among customers who stayed and who churned, with their count
    (index: ``stayed``, ``churned``)."""
    group = labels.reindex(features.index).map({False: "stayed", True: "churned"}).rename("customers who")
    out = features[columns].groupby(group).mean()
    out.insert(0, "customers", group.value_counts())
    return out.reindex(["stayed", "churned"])


def split(labels: pd.Series, test_share: float = TEST_SHARE, seed: int = 0) -> tuple[pd.Index, pd.Index]:
    """Customers for training and for testing (stratified by the label, seeded)."""
    train, test = train_test_split(labels.index, test_size=test_share, random_state=seed,
                                   stratify=labels.to_numpy())
    return pd.Index(train, name=labels.index.name).sort_values(), pd.Index(test, name=labels.index.name).sort_values()


def fit(features: pd.DataFrame, labels: pd.Series, seed: int = 0, folds: int = 5) -> CalibratedClassifierCV:
    """A gradient-boosted classifier with calibrated churn probabilities, fitted on ``features``
    (the customers to train on) and their ``labels``. ``folds``: the calibration's folds."""
    gbm = HistGradientBoostingClassifier(learning_rate=0.1, max_iter=100, max_leaf_nodes=15,
                                         min_samples_leaf=40, l2_regularization=1.0,
                                         early_stopping=False, random_state=seed)
    # ensemble=False: the calibrator learns from out-of-fold scores, then one model fitted on all
    # customers scores (five times faster to score than averaging the five fold models).
    model = CalibratedClassifierCV(gbm, method="isotonic", ensemble=False,
                                   cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    with threadpool_limits(THREADS):
        return model.fit(features, labels.reindex(features.index).astype(int))


def fit_rfm_baseline(features: pd.DataFrame, labels: pd.Series):
    """The RFM-only baseline: logistic regression on log(1 + recency, frequency, monetary)."""
    model = make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression())
    return model.fit(features[RFM_FEATURES], labels.reindex(features.index).astype(int))


def score(model, features: pd.DataFrame) -> pd.Series:
    """``churn_probability`` of each customer in ``features`` (index customer_id)."""
    columns = getattr(model, "feature_names_in_", features.columns)
    with threadpool_limits(THREADS):
        prob = model.predict_proba(features[list(columns)])[:, 1]
    return pd.Series(prob, index=features.index, name="churn_probability")


def btyd_churn(con: BaseBackend | str | Path | None, cut_off, window_days: int = WINDOW_DAYS,
               seed: int = 0) -> pd.Series:
    """Buy-till-you-die churn score: 1 − P(alive) at the cut-off from a BG/NBD model fitted on the
    purchases up to it (:mod:`crm_helpers.knowledge.clv`), per customer (index customer_id)."""
    con = wh.as_connection(con)
    days = clv.purchase_days(con)
    cut = pd.Timestamp(_day(cut_off))
    summary = clv.rfm_split(days, cut, cut + pd.Timedelta(days=window_days),
                            data_start=pd.to_datetime(days["order_date"]).min())
    with warnings.catch_warnings():  # customers who first bought on the cut-off day are expected
        warnings.filterwarnings("ignore", "T=0 is uninformative", UserWarning)
        pred = clv.predictions(clv.fit_bgnbd(summary, random_seed=seed), summary)
    return pd.Series(1 - pred["p_alive"].to_numpy(), index=pd.Index(pred["customer_id"], name="customer_id"),
                     name="churn_probability").sort_index()


def gains(labels: pd.Series, score: pd.Series, deciles: int = 10) -> pd.DataFrame:
    """Lift and gains by decile of ``score`` (decile 1 = the highest scores).

    Per decile: customers, churners, churn_rate, lift (the decile's churn rate over the overall
    one), and cumulatively from decile 1: share of customers and share of churners caught (gains).
    """
    y = labels.reindex(score.index).astype(bool)
    rank = score.rank(method="first", ascending=False)
    decile = pd.Series(np.ceil(rank * deciles / len(score)).astype(int), index=score.index, name="decile")
    out = y.groupby(decile).agg(customers="size", churners="sum")
    out["churn_rate"] = out["churners"] / out["customers"]
    out["lift"] = out["churn_rate"] / y.mean()
    out["customer_share"] = out["customers"].cumsum() / out["customers"].sum()
    out["gains"] = out["churners"].cumsum() / out["churners"].sum()
    return out


def reliability(labels: pd.Series, probability: pd.Series, bins: int = 10) -> pd.DataFrame:
    """Predicted against observed churn in ``bins`` groups of equal size by predicted probability:
    customers, mean predicted probability and observed churn rate per group."""
    y = labels.reindex(probability.index).astype(float)
    group = pd.qcut(probability.rank(method="first"), bins, labels=False) + 1
    out = pd.DataFrame({"predicted": probability, "observed": y}).groupby(group.rename("group")).agg(
        customers=("observed", "size"), predicted=("predicted", "mean"), observed=("observed", "mean"))
    return out


def evaluate(labels: pd.Series, probability: pd.Series, deciles: int = 10) -> dict:
    """How well ``probability`` predicts ``labels`` on the same customers.

    auc (ROC AUC), top_decile_lift, gains_top_decile (share of churners in the top decile), brier
    (Brier score), calibration_error (mean absolute gap between predicted and observed churn over
    the reliability groups, weighted by customers), churn_rate and customers.
    """
    y = labels.reindex(probability.index).astype(int)
    table = gains(labels, probability, deciles)
    rel = reliability(labels, probability, deciles)
    gap = (rel["predicted"] - rel["observed"]).abs()
    return {"customers": len(y), "churn_rate": float(y.mean()),
            "auc": float(roc_auc_score(y, probability)),
            "top_decile_lift": float(table["lift"].iloc[0]),
            "gains_top_decile": float(table["gains"].iloc[0]),
            "brier": float(brier_score_loss(y, probability)),
            "calibration_error": float((gap * rel["customers"]).sum() / rel["customers"].sum())}


def compare(labels: pd.Series, scores: dict[str, pd.Series]) -> pd.DataFrame:
    """:func:`evaluate` of several scores of the same customers, one row per model (name as index)."""
    return pd.DataFrame({name: evaluate(labels, s) for name, s in scores.items()}).T.rename_axis("model")


def importance(model, features: pd.DataFrame, labels: pd.Series, seed: int = 0,
               repeats: int = 5) -> pd.DataFrame:
    """Permutation importance on ``features`` (the test customers): how much the ROC AUC drops
    when one feature is shuffled (auc_drop, its std over ``repeats``), largest first."""
    y = labels.reindex(features.index).astype(int)
    with threadpool_limits(THREADS):
        got = permutation_importance(model, features, y, scoring="roc_auc", n_repeats=repeats,
                                     random_state=seed)
    out = pd.DataFrame({"auc_drop": got.importances_mean, "auc_drop_std": got.importances_std},
                       index=pd.Index(features.columns, name="feature"))
    return out.sort_values("auc_drop", ascending=False)


def feature_name(feature: str) -> str:
    """How a feature reads in a sentence: ``recency_days`` -> ``days since the last purchase``."""
    for prefix, phrase in PIVOT_PREFIXES.items():
        if feature.startswith(prefix):
            return phrase.format(feature[len(prefix):].replace("_", " ").lower())
    return FEATURE_NAMES.get(feature, feature.replace("_", " "))


def churn_by_group(feature: pd.Series, labels: pd.Series, groups: int = 4) -> pd.Series:
    """Observed churn rate by group of a feature, groups in rising order of the feature.

    Few distinct values (counts such as complaints): one group per value, the largest merged into
    "k or more" so each has customers; otherwise ``groups`` quantile groups; a category: one group
    per value. Missing values are left out. Index: a readable group label.
    """
    y = labels.reindex(feature.index).astype(float)
    x = feature.dropna()
    y = y.loc[x.index]
    if isinstance(x.dtype, pd.CategoricalDtype) or x.dtype == object:
        return y.groupby(x.astype(str)).mean().sort_values()
    values = np.sort(x.unique())
    if len(values) <= 6 and np.allclose(values, np.round(values)):
        top = max(v for v in values if (x >= v).mean() >= 0.02)  # the last group holds >= 2%
        key = x.clip(upper=top)
        labels_ = {v: (f"{v:g} or more" if v == top and v != values[-1] else f"{v:g}") for v in values if v <= top}
        rate = y.groupby(key).mean()
        return rate.rename(index=labels_)
    bins = pd.qcut(x, groups, duplicates="drop")
    rate = y.groupby(bins, observed=True).mean()
    unit = "quarter" if len(rate) == 4 else "group"
    names = [f"group {i + 1}" for i in range(len(rate))]
    names[0], names[-1] = f"lowest {unit}", f"highest {unit}"
    return rate.set_axis(names)


def _who(group: str) -> str:
    """A group of :func:`churn_by_group` in a sentence: ``in the lowest quarter``, ``with 2 or more``."""
    return f"in the {group}" if group.startswith(("lowest", "highest", "group")) else f"with {group}"


def importance_in_words(importance: pd.DataFrame, features: pd.DataFrame, labels: pd.Series,
                        top: int = 5, min_gap: float = 0.02) -> list[str]:
    """One sentence per most important feature, its direction read from the data.

    For each of the ``top`` features by permutation importance (:func:`importance`) with a
    positive AUC drop: the churn rate by group of the feature (:func:`churn_by_group`) decides the
    direction, comparing the lowest and the highest group; a gap under ``min_gap`` reads "on its
    own, it barely moves the churn rate" (the model may use it with other features).
    """
    from crm_helpers import display

    out = []
    for feature, row in importance.head(top).iterrows():
        if row["auc_drop"] <= 0:
            continue
        rate = churn_by_group(features[feature], labels)
        name = feature_name(feature)
        drop = display.fmt(row["auc_drop"], display.NUMBER, 3)
        first, last = rate.index[0], rate.index[-1]
        low, high = display.fmt(rate.iloc[0], "rate", 0), display.fmt(rate.iloc[-1], "rate", 0)
        if isinstance(features[feature].dtype, pd.CategoricalDtype):
            text = (f"{name.capitalize()}: customers acquired via {last} churn most ({high}), those via "
                    f"{first} least ({low})")
        elif abs(rate.iloc[-1] - rate.iloc[0]) < min_gap:
            text = (f"{name.capitalize()}: on its own it barely moves the churn rate ({low} {_who(first)}, "
                    f"{high} {_who(last)}); the model uses it together with other features")
        else:
            word = "higher" if rate.iloc[-1] > rate.iloc[0] else "lower"
            text = (f"The more {name}, the {word} the risk: {low} of customers {_who(first)} churned, "
                    f"against {high} {_who(last)}")
        out.append(f"{text} (AUC drop when shuffled: {drop}).")
    return out
