"""New-customer value: what the first purchase and the first weeks say about the next 12 months.

A *new customer* signed up on or after the first day of data: their first purchase in the
warehouse is their first purchase ever (the existing base's first visible purchase is not). For
each, the engine computes what the organisation knows `WINDOW_DAYS` after that first purchase:
how they were acquired and their consents (``dim_customer``; not its region, which sums up
the whole history), the first order (channel, basket,
lines, the category of its first line, tiers) and the first weeks (orders, spend, returns,
categories, web share, campaign contacts and responses, call-centre contacts). The *12-month
value* is their net revenue (sales minus returns) from the first purchase to `HORIZON_DAYS`
later, the first weeks included.

A gradient-boosted regressor (scikit-learn's ``HistGradientBoostingRegressor`` with a Poisson
loss: money is skewed and its mean is what a budget needs) learns the value from those features
on the customers acquired before a date, and is judged on those acquired after it whose 12 months
are observed, against the baseline of the mean value of their acquisition channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from ibis.backends import BaseBackend
from scipy.stats import spearmanr
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.inspection import permutation_importance
from sklearn.metrics import make_scorer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

from crm_helpers import periods
from crm_helpers import warehouse as wh
from crm_helpers.information import star

#: Days after the first purchase that the model may look at (the first purchase day is day 0).
WINDOW_DAYS = 30
#: Days of value predicted, from the first purchase.
HORIZON_DAYS = 365
#: Customers younger than this (days since the first purchase) are scored by `score_recent`.
RECENT_DAYS = 90

CATEGORICAL = ["acquisition_channel", "first_channel", "first_category"]
NUMERIC = ["loyalty_card", "email_opt_in", "sms_opt_in", "signup_to_first_days",
           "first_basket", "first_lines", "first_categories", "first_premium_share",
           "first_basic_share", "orders_window", "revenue_window", "returns_window",
           "categories_window", "web_share_window", "campaign_contacts_window",
           "campaign_purchases_window", "service_contacts_window"]
FEATURES = CATEGORICAL + NUMERIC
#: Readable names of the features, for tables and charts.
FEATURE_NAMES = {
    "acquisition_channel": "acquisition channel",
    "first_channel": "channel of the first order", "first_category": "category of the first line",
    "loyalty_card": "loyalty card", "email_opt_in": "e-mail consent", "sms_opt_in": "SMS consent",
    "signup_to_first_days": "days from sign-up to first purchase",
    "first_basket": "first basket (money)", "first_lines": "lines in the first basket",
    "first_categories": "categories in the first basket",
    "first_premium_share": "premium share of the first basket",
    "first_basic_share": "basic share of the first basket",
    "orders_window": f"orders in the first {WINDOW_DAYS} days",
    "revenue_window": f"spend in the first {WINDOW_DAYS} days",
    "returns_window": f"returns in the first {WINDOW_DAYS} days",
    "categories_window": f"categories in the first {WINDOW_DAYS} days",
    "web_share_window": f"web share of orders in the first {WINDOW_DAYS} days",
    "campaign_contacts_window": f"campaign contacts in the first {WINDOW_DAYS} days",
    "campaign_purchases_window": f"campaign purchases in the first {WINDOW_DAYS} days",
    "service_contacts_window": f"call-centre contacts in the first {WINDOW_DAYS} days",
}


def data_start(con: BaseBackend | str | Path | None = None) -> date:
    """The first order day in the warehouse: customers signed up from then on are new."""
    con = wh.as_connection(con)
    return periods.as_date(con.table("fact_order_line").order_date.min().execute())


def _new_customers(con: BaseBackend, lines: ir.Table) -> ir.Table:
    """customer_id, first_purchase and the dim_customer traits of customers signed up since the data start."""
    first = star.first_purchases(lines)
    c = con.table("dim_customer")
    new = c.filter(c.signup_date.cast("date") >= data_start(con))
    return first.join(new, "customer_id").select(
        "customer_id", "first_purchase",
        acquisition_channel=new.acquisition_channel.fill_null(star.UNKNOWN),
        loyalty_card=new.loyalty_card.notnull().cast("int64"),
        email_opt_in=new.email_opt_in.fill_null(False).cast("int64"),
        sms_opt_in=new.sms_opt_in.fill_null(False).cast("int64"),
        signup_to_first_days=ibis.greatest(
            (first.first_purchase - new.signup_date.cast("date")).cast("int64"), 0),
    )


def _in_window(t: ir.Table, day: ir.DateValue, days: int, as_of=None) -> ir.BooleanValue:
    """Rows of `t` (joined to first_purchase) dated in [first_purchase, first_purchase + days),
    and not after `as_of`."""
    inside = (day >= t.first_purchase) & (day < t.first_purchase + ibis.interval(days=days))
    return inside if as_of is None else inside & (day <= periods.as_date(as_of))


def customer_features(con: BaseBackend | str | Path | None = None, as_of=None,
                      window_days: int = WINDOW_DAYS, web_channel: str | None = None) -> ir.Table:
    """The first-impression features of every new customer, as an engine expression.

    One row per new customer (module docstring) who bought by `as_of` (default: all data), with
    customer_id, first_purchase and the columns of :data:`FEATURES`, from what happened up to
    `window_days` after the first purchase and not after `as_of`. `web_channel`: the order
    channel that counts as the web (default: the warehouse's settings).
    """
    con = wh.as_connection(con)
    web = web_channel or wh.settings(con).web_channel
    lines = star.customer_lines(con, as_of)
    base = _new_customers(con, lines)
    j = lines.join(base.select("customer_id", "first_purchase"), "customer_id")
    window = j.filter(_in_window(j, j.order_date, window_days, as_of))
    buys = window.filter(window.is_purchase)
    first = buys.filter(buys.order_date == buys.first_purchase)
    first_line = first.mutate(n=ibis.row_number().over(
        group_by="customer_id", order_by=["order_ts", "order_id", "line_no"]))
    first_line = first_line.filter(first_line.n == 0).select("customer_id", first_category="category")
    first_day = first.group_by("customer_id").aggregate(
        first_channel=first.channel.mode(),
        first_basket=first.line_amount.sum().cast("float64"),
        first_lines=first.count(),
        first_categories=first.category.nunique(),
        first_premium_share=(first.tier == "premium").cast("float64").mean(),
        first_basic_share=(first.tier == "basic").cast("float64").mean(),
    )
    orders = buys.group_by(["customer_id", "order_id"]).aggregate(web=(buys.channel == web).any())
    per_order = orders.group_by("customer_id").aggregate(
        orders_window=orders.count(), web_share_window=orders.web.cast("float64").mean())
    spend = window.group_by("customer_id").aggregate(
        revenue_window=window.line_amount.sum().cast("float64"),
        returns_window=(-window.line_amount.sum(where=~window.is_purchase)).fill_null(0).cast("float64"),
        categories_window=window.category.nunique(where=window.is_purchase),
    )
    out = (base.left_join(first_day, "customer_id").select(base, *[first_day[c] for c in first_day.columns[1:]])
           .left_join(first_line, "customer_id").drop("customer_id_right")
           .left_join(per_order, "customer_id").drop("customer_id_right")
           .left_join(spend, "customer_id").drop("customer_id_right"))
    for name, fact, day in [("campaign_contacts_window", "fact_campaign_contact", "contact_date"),
                            ("campaign_purchases_window", "fact_campaign_response", "response_date"),
                            ("service_contacts_window", "fact_interaction", "interaction_date")]:
        out = out.left_join(_counted(con, base, fact, day, name, window_days, as_of),
                            "customer_id").drop("customer_id_right")
    counts = ["campaign_contacts_window", "campaign_purchases_window", "service_contacts_window"]
    return out.mutate(**{c: out[c].fill_null(0) for c in counts})


def _counted(con: BaseBackend, base: ir.Table, fact: str, day: str, name: str,
             window_days: int, as_of) -> ir.Table:
    """customer_id and the number of rows of `fact` (dated by `day`) in each customer's window;
    for campaign responses, purchases only (a response with an order)."""
    f = con.table(fact)
    if fact == "fact_campaign_response":
        f = f.filter(f.order_id.notnull())
    j = f.join(base.select("customer_id", "first_purchase"), "customer_id")
    j = j.filter(_in_window(j, j[day].cast("date"), window_days, as_of))
    return j.group_by("customer_id").aggregate(**{name: j.count()})


def twelve_month_value(con: BaseBackend | str | Path | None = None,
                       horizon_days: int = HORIZON_DAYS) -> ir.Table:
    """Each new customer's net revenue over `horizon_days` from the first purchase (engine).

    Only customers whose whole horizon lies within the data (first purchase + horizon - 1 on or
    before the last order day) are returned: customer_id, first_purchase, value.
    """
    con = wh.as_connection(con)
    lines = star.customer_lines(con)
    base = _new_customers(con, lines).select("customer_id", "first_purchase")
    last = star.latest_order_date(con)
    base = base.filter(base.first_purchase + ibis.interval(days=horizon_days - 1) <= last)
    j = lines.join(base, "customer_id")
    j = j.filter(_in_window(j, j.order_date, horizon_days))
    value = j.group_by("customer_id").aggregate(value=j.line_amount.sum().cast("float64"))
    return base.left_join(value, "customer_id").select(
        base.customer_id, base.first_purchase, value=value.value.fill_null(0.0))


def training_table(con: BaseBackend | str | Path | None = None, window_days: int = WINDOW_DAYS,
                   horizon_days: int = HORIZON_DAYS) -> pd.DataFrame:
    """Features and observed 12-month value of every new customer whose horizon is observed
    (pandas, one row per customer, sorted by customer_id)."""
    con = wh.as_connection(con)
    feats = customer_features(con, window_days=window_days)
    value = twelve_month_value(con, horizon_days).select("customer_id", "value")
    out = feats.join(value, "customer_id").execute()
    out["first_purchase"] = pd.to_datetime(out["first_purchase"])
    return out.sort_values("customer_id", ignore_index=True)


def cohort_split(table: pd.DataFrame, split=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Customers acquired before `split` (training) and from `split` on (test).

    Default `split`: the first day of the month that halves the customers by acquisition date.
    Returns (train, test, split).
    """
    first = pd.to_datetime(table["first_purchase"])
    if split is None:
        split = first.quantile(0.5).to_period("M").to_timestamp()
    split = pd.Timestamp(split)
    return table[first < split], table[first >= split], split


@dataclass
class NewCustomerModel:
    """A fitted new-customer value model: the pipeline and the windows it was trained with."""

    pipeline: Pipeline
    window_days: int = WINDOW_DAYS
    horizon_days: int = HORIZON_DAYS
    features: list[str] = field(default_factory=lambda: list(FEATURES))

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Predicted value over the horizon for rows holding the model's feature columns."""
        with threadpool_limits(1):
            return self.pipeline.predict(_prepared(features, self.features))


def _prepared(features: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = features[columns].copy()
    for c in columns:
        if c in CATEGORICAL:
            out[c] = out[c].astype("object").fillna(star.UNKNOWN).astype(str)
        else:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    return out


def fit(train: pd.DataFrame, window_days: int = WINDOW_DAYS, horizon_days: int = HORIZON_DAYS,
        max_iter: int = 300, random_state: int = 0) -> NewCustomerModel:
    """A gradient-boosted regressor (Poisson loss) of `value` on :data:`FEATURES`.

    Categorical features are ordinal-encoded (an unseen level is treated as missing) and used as
    categories by the booster; negative values (more returned than bought) count as 0.
    `max_iter` boosting rounds at most, with early stopping on a 15% validation share.
    """
    encoder = ColumnTransformer(
        [("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                       encoded_missing_value=np.nan), CATEGORICAL)],
        remainder="passthrough", verbose_feature_names_out=False).set_output(transform="pandas")
    booster = HistGradientBoostingRegressor(
        loss="poisson", learning_rate=0.05, max_iter=max_iter, max_leaf_nodes=15,
        min_samples_leaf=20, l2_regularization=1.0, categorical_features=CATEGORICAL,
        early_stopping=True, validation_fraction=0.15, n_iter_no_change=20,
        random_state=random_state)
    pipeline = Pipeline([("encode", encoder), ("boost", booster)])
    with threadpool_limits(1):  # small data: threads cost more than they save on a shared machine
        pipeline.fit(_prepared(train, FEATURES), train["value"].clip(lower=0))
    return NewCustomerModel(pipeline, window_days, horizon_days)


def channel_baseline(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """The baseline: each test customer's predicted value is the mean value of the training
    customers of their acquisition channel (the overall mean for an unseen channel)."""
    means = train.groupby("acquisition_channel")["value"].mean()
    return test["acquisition_channel"].map(means).fillna(train["value"].mean()).to_numpy()


def evaluate(test: pd.DataFrame, predictions: dict[str, np.ndarray]) -> pd.DataFrame:
    """How well each set of predictions ranks and sizes the test customers' actual value.

    One row per model: spearman (rank correlation with the actual value), mae, total_ratio
    (predicted / actual total) and top20_value_share (share of the actual value held by the 20%
    of customers the model ranks highest).
    """
    actual = test["value"].to_numpy()
    rows = {}
    for name, pred in predictions.items():
        top = np.argsort(-pred, kind="stable")[: int(np.ceil(0.2 * len(pred)))]
        rows[name] = {"spearman": float(spearmanr(pred, actual).statistic),
                      "mae": float(np.abs(pred - actual).mean()),
                      "total_ratio": float(pred.sum() / actual.sum()),
                      "top20_value_share": float(actual[top].sum() / actual.sum())}
    return pd.DataFrame(rows).T.rename_axis("model")


def importance(model: NewCustomerModel, test: pd.DataFrame, n_repeats: int = 5,
               random_state: int = 0) -> pd.DataFrame:
    """Permutation importance on the test cohort: how much the rank correlation with the actual
    value falls when one feature is shuffled (mean and standard deviation over `n_repeats`),
    largest first, with the feature's readable name."""
    scorer = make_scorer(lambda y, p: spearmanr(y, p).statistic)
    with threadpool_limits(1):
        result = permutation_importance(model.pipeline, _prepared(test, model.features), test["value"],
                                        scoring=scorer, n_repeats=n_repeats, random_state=random_state)
    out = pd.DataFrame({"feature": model.features, "importance": result.importances_mean,
                        "std": result.importances_std})
    out["name"] = out["feature"].map(FEATURE_NAMES)
    return out.sort_values("importance", ascending=False, ignore_index=True)


def value_by(table: pd.DataFrame, column: str, top_share: float = 0.2) -> pd.DataFrame:
    """Customers, mean 12-month value and the share of them in the top `top_share` of all
    customers by value, per level of `column`, highest mean first."""
    threshold = table["value"].quantile(1 - top_share)
    g = table.assign(top=table["value"] > threshold).groupby(column, observed=True)
    out = g.agg(customers=("value", "size"), mean_value=("value", "mean"), top_share=("top", "mean"))
    return out.sort_values("mean_value", ascending=False)


def score_recent(con: BaseBackend | str | Path | None, as_of, model: NewCustomerModel) -> pd.DataFrame:
    """Predicted 12-month value of the new customers whose first purchase is less than
    :data:`RECENT_DAYS` days before `as_of` (inclusive of `as_of`).

    Features use only what the warehouse holds up to `as_of` (for a customer younger than the
    model's window, the days seen so far). Returns customer_id and clv (in the warehouse's
    currency), sorted by customer_id.
    """
    con = wh.as_connection(con)
    as_of = periods.as_date(as_of)
    feats = customer_features(con, as_of=as_of, window_days=model.window_days)
    recent = feats.filter(feats.first_purchase > as_of - timedelta(days=RECENT_DAYS)).execute()
    recent = recent.sort_values("customer_id", ignore_index=True)
    clv = model.predict(recent) if len(recent) else np.array([], dtype="float64")
    return pd.DataFrame({"customer_id": recent["customer_id"].astype("int64"), "clv": clv})


def lift_by_decile(test: pd.DataFrame, predictions: dict[str, np.ndarray], deciles: int = 10) -> pd.DataFrame:
    """Mean actual 12-month value of the test customers per decile of each model's prediction
    (decile 1 = the customers the model values highest; ties broken by order): columns model,
    decile, mean_value."""
    frames = []
    for name, pred in predictions.items():
        rank = pd.Series(-pred).rank(method="first").to_numpy()
        decile = pd.qcut(rank, deciles, labels=False) + 1
        means = pd.Series(test["value"].to_numpy()).groupby(decile).mean()
        frames.append(pd.DataFrame({"model": name, "decile": means.index, "mean_value": means.to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def _ratio_text(high: float, low: float) -> str:
    return f"{high / low:.1f} times" if low > 0 else "more than"


def impressions_sentence(by_category: pd.DataFrame, by_channel: pd.DataFrame, money) -> str:
    """Which first line and which acquisition channel mark a valuable customer, in words.

    by_category / by_channel: :func:`value_by` tables (highest mean first); money: a formatter
    of amounts (``display.fmt(v, "money")``).
    """
    best, worst = by_category.index[0], by_category.index[-1]
    top, bottom = by_channel.index[0], by_channel.index[-1]
    cat, ch = by_category["mean_value"], by_channel["mean_value"]
    return (f"Customers whose first basket starts with **{best}** are worth {money(cat[best])} on average "
            f"over their first year, {_ratio_text(cat[best], cat[worst])} those starting with {worst} "
            f"({money(cat[worst])}), and {by_category.loc[best, 'top_share']:.0%} of them end up in the top "
            f"20% by value. By acquisition channel the spread is "
            f"{'narrower' if ch[top] / max(ch[bottom], 1e-9) < cat[best] / max(cat[worst], 1e-9) else 'wider'}: "
            f"**{top}** brings customers worth {money(ch[top])}, **{bottom}** {money(ch[bottom])}.")


def model_sentence(evaluation: pd.DataFrame, model: str, baseline: str) -> str:
    """The model against the baseline on the test cohorts, in words (:func:`evaluate`'s table)."""
    m, b = evaluation.loc[model], evaluation.loc[baseline]
    better = m["spearman"] > b["spearman"]
    return (f"On the later cohorts the model ranks customers by their actual 12-month value with a rank "
            f"correlation of **{m['spearman']:.2f}**, against {b['spearman']:.2f} for the mean of their "
            f"acquisition channel ({'better' if better else 'no better'}); the 20% it ranks highest hold "
            f"{m['top20_value_share']:.0%} of the cohort's value (the baseline's: {b['top20_value_share']:.0%}), "
            f"and its total is {m['total_ratio']:.0%} of the actual.")


def importance_sentence(imp: pd.DataFrame, top: int = 3) -> str:
    """The features whose shuffling costs the most rank correlation, in words (:func:`importance`)."""
    lead = imp.head(top)
    names = [f"{r.name} ({r.importance:+.2f})" for r in lead.itertuples()]
    useless = int((imp["importance"] <= 0).sum())
    return (f"The first impressions that mark a valuable customer are, in order, {', '.join(names[:-1])} and "
            f"{names[-1]} (the fall in rank correlation when the feature is shuffled); "
            f"{useless} of the {len(imp)} features add nothing measurable.")


def plot_lift(lift: pd.DataFrame, average: float, ax=None):
    """Bars of the mean actual value per decile of prediction, one colour per model
    (:func:`lift_by_decile`); the title says how much the model's top decile is worth against
    the `average` customer."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from crm_helpers import plots

    ax = ax or plt.subplots(figsize=(9, 4))[1]
    sns.barplot(data=lift, x="decile", y="mean_value", hue="model", ax=ax)
    best = lift[lift["decile"] == 1].set_index("model")["mean_value"]
    leader = best.idxmax()
    return plots.finish(ax, f"{leader}: its top decile of new customers is worth {best[leader] / average:.1f} times "
                            "the average one", x="decile of predicted value (1 = highest)",
                        y="mean actual 12-month value", yunit="money")
