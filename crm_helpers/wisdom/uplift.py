"""Uplift: who buys *because* they were contacted, learnt from past campaigns.

**History.** :func:`campaign_history` has one row per contacted customer per past campaign whose
response window (``dim_campaign`` start to end date) has closed: the arm (treatment or the random
control), whether they bought in the window (a tracked purchase response or an identified order
in it; both groups' purchases are tracked, which is what makes the control a control), the
revenue and margin of their orders in the window, and features as they stood the day before the
campaign started, computed in the engine for all campaigns at once (:func:`customer_features`:
recency, frequency, spend, margin, orders in the last year, web share of orders, tenure, earlier
campaign contacts). ``customer_features(con, as_of)`` gives the same features for scoring today.

**Learners.** Per channel with history, a T-learner (one outcome model per arm, uplift = the
difference) and an X-learner (Künzel et al. 2019: each arm's outcome model imputes the other
arm's outcome, two effect models are fitted on the imputed effects and blended with the
propensity, here the known treatment share of the campaigns), all on scikit-learn's
HistGradientBoosting with a seed. Campaigns differ in their control share and in their season, so
rows are weighted by the inverse of their campaign's arm share: both arms then describe the same
mix of campaigns. The baseline is a response model, P(buy | contacted), which ranks who buys, not
who buys because of the contact. A channel without history (``call``) borrows another channel's
estimate times a factor (``Settings.assumed_uplift``) until a measured campaign calibrates it
(:func:`calibration`, from ``campaign_results`` × ``campaign_plan``: measured over planned uplift,
shrunk towards the assumption by the measurement's precision, so a wide interval barely moves it).

**Evaluation** on held-out customers: Qini curve (incremental buyers, as a share of the
customers, when the top share is contacted: R_t(k)/N_t − R_c(k)/N_c), uplift curve (the
difference in response rates among the top k, times k/N), AUUC (area under the uplift curve) and
the Qini coefficient (area between the Qini curve and the random-targeting diagonal).

**Offer types.** ``dim_campaign.offer_type`` (declared in ``sources.yml``; the sample's are
``discount``, ``category`` and ``reactivation``) says what kind of offer a campaign made. Within a
channel whose history names at least two types, every learner takes the type as a categorical
feature (HistGradientBoosting's native categories), so it can learn that the reactivation SMS
lost lapsed customers while a discount SMS won some. :func:`predict` then answers for one
``offer_type``; without one (or for a type the channel never ran) it gives the channel's pooled
mix: the types' estimates weighted by their share of the channel's history. A retailer whose
campaign file has no offer type gets NULL there and the model of the channel alone.

**Libraries.** causalml 0.18 installs cleanly on the stack but brings 18 packages (xgboost,
lightgbm, shap, an NVIDIA NCCL wheel, ...) for meta-learners that are a few lines on
scikit-learn; scikit-uplift 0.5.1 installs cleanly (one package) but its last release was in
2022 and its curves take no sample weights, which the mix of control shares needs. Neither adds
enough, so both the learners and the curves are here, with hand-computed tests.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from ibis.backends import BaseBackend
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from crm_helpers import config
from crm_helpers import warehouse as wh
from crm_helpers.information import star

#: Model inputs (customer features as of the day before the campaign starts).
FEATURES = ["recency_days", "orders", "orders_365d", "spend", "order_value", "margin_share",
            "web_share", "tenure_days", "campaign_contacts"]
#: Share of customers held out for evaluation.
TEST_SHARE = 0.3
#: Boosting threads: a customer table is small; one thread avoids OpenMP contention.
THREADS = 1
#: Boosting settings: the uplift is a few points, so trees are shallow, leaves large, learning slow.
BOOSTING = dict(max_iter=150, learning_rate=0.05, max_leaf_nodes=8, min_samples_leaf=200,
                l2_regularization=1.0, early_stopping=False)


# ---------------------------------------------------------------------------------------------
# History and features (engine)
# ---------------------------------------------------------------------------------------------

def _orders(con: BaseBackend, web_channel: str) -> ir.Table:
    """Identified customers' purchase orders: customer_id, order_id, day, amount, margin, web."""
    lines = star.customer_lines(con)
    buys = lines.filter(lines.is_purchase)
    return buys.group_by(["customer_id", "order_id"]).aggregate(
        day=buys.order_date.min(), amount=buys.line_amount.sum().cast("float64"),
        margin=(buys.line_amount - buys.cost_amount).sum().cast("float64"),
        web=(buys.channel == web_channel).any())


def _with_features(con: BaseBackend, who: ir.Table, web_channel: str) -> ir.Table:
    """``who`` (customer_id, as_of and any other columns) with each customer's features from data
    dated before ``as_of``: one pass over the orders for every (customer, as_of) pair at once."""
    pairs = who.select("customer_id", "as_of").distinct()
    orders = _orders(con, web_channel)
    j = pairs.left_join(orders, [pairs.customer_id == orders.customer_id, orders.day < pairs.as_of])
    year = j.day >= j.as_of - ibis.interval(days=365)
    per = j.group_by(["customer_id", "as_of"]).aggregate(
        orders=j.order_id.count(), orders_365d=j.order_id.count(where=year),
        last_day=j.day.max(), spend=j.amount.sum().fill_null(0), margin=j.margin.sum().fill_null(0),
        web_orders=j.web.cast("int64").sum().fill_null(0))
    sent = con.table("fact_campaign_contact")
    sent = sent.select("customer_id", sent_day=sent.contact_date.cast("date")).distinct()
    c = pairs.left_join(sent, [pairs.customer_id == sent.customer_id, sent.sent_day < pairs.as_of])
    contacts = c.group_by(["customer_id", "as_of"]).aggregate(campaign_contacts=c.sent_day.count())
    customers = con.table("dim_customer")
    signup = customers.select("customer_id", signup=customers.signup_date.cast("date"))
    f = per.join(contacts, ["customer_id", "as_of"]).left_join(signup, "customer_id")
    f = f.select(
        "customer_id", "as_of",
        recency_days=f.as_of.delta(f.last_day, unit="day").cast("float64"),
        orders=f.orders,
        orders_365d=f.orders_365d,
        spend=f.spend,
        order_value=f.spend / f.orders.nullif(0),
        margin_share=f.margin / f.spend.nullif(0),
        web_share=f.web_orders.cast("float64") / f.orders.nullif(0),
        tenure_days=f.as_of.delta(f.signup, unit="day").cast("float64"),
        campaign_contacts=f.campaign_contacts,
    )
    return who.join(f, ["customer_id", "as_of"])


def _web_channel(con: BaseBackend, web_channel: str | None) -> str:
    return web_channel or wh.settings(con).web_channel


def customer_features(con: BaseBackend | str | Path | None, as_of, customers=None,
                      web_channel: str | None = None) -> pd.DataFrame:
    """The model's features (:data:`FEATURES`) of every customer in ``dim_customer`` (or of
    ``customers``) from the data dated before ``as_of`` (index customer_id). A customer who never
    bought has no recency, order value or web share (missing; the boosting handles it)."""
    con = wh.as_connection(con)
    who = con.table("dim_customer").select("customer_id")
    if customers is not None:
        who = who.filter(who.customer_id.isin([int(c) for c in customers]))
    who = who.mutate(as_of=ibis.date(pd.Timestamp(as_of).date()))
    out = _with_features(con, who, _web_channel(con, web_channel)).execute()
    return _rounded(out.drop(columns="as_of").set_index("customer_id").sort_index())


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """Floats to 9 decimals: the engine's parallel float sums differ in the last digits, which
    would move the trees' split points between runs."""
    floats = frame.select_dtypes("float").columns
    return frame.assign(**{c: frame[c].round(9) for c in floats})


def campaign_history(con: BaseBackend | str | Path | None, campaigns=None,
                     web_channel: str | None = None) -> pd.DataFrame:
    """One row per contacted customer per past campaign whose response window has closed.

    Columns: customer_id, campaign_id, channel, offer, offer_type (None when the campaign file
    has none), start_date, treated (bool), treatment_share
    (the campaign's share of contacts in the treatment arm: the known propensity), bought (a
    purchase response or an identified order in the window, start to end date), revenue and
    margin of the customer's orders in the window (the purchase responses' value when the orders
    are not identified), then :data:`FEATURES` as of the campaign start. ``campaigns``: ids to
    keep (default all). A customer contacted twice in one campaign (records merged later) counts
    as treated if any contact was.
    """
    con = wh.as_connection(con)
    web = _web_channel(con, web_channel)
    camp = con.table("dim_campaign")
    camp = camp.filter(camp.end_date.cast("date") <= star.latest_order_date(con))
    if campaigns is not None:
        camp = camp.filter(camp.campaign_id.isin(list(campaigns)))
    offer_type = camp.offer_type if "offer_type" in camp.columns else ibis.null("string")
    camp = camp.select("campaign_id", "offer", offer_type=offer_type.cast("string"),
                       as_of=camp.start_date.cast("date"), end_day=camp.end_date.cast("date"))
    sent = con.table("fact_campaign_contact")
    sent = sent.filter(sent.customer_id.notnull()).join(camp, "campaign_id")
    who = sent.group_by(["campaign_id", "customer_id"]).aggregate(
        channel=sent.channel.max(), offer=sent.offer.max(), offer_type=sent.offer_type.max(),
        as_of=sent.as_of.max(),
        end_day=sent.end_day.max(), treated=(sent.treatment_group == "treatment").any())
    resp = con.table("fact_campaign_response")
    resp = resp.filter((resp.response_type == "purchase") & resp.customer_id.notnull())
    resp = resp.join(camp, "campaign_id")
    resp = resp.filter(resp.response_date.cast("date").between(resp.as_of, resp.end_day))
    resp = resp.group_by(["campaign_id", "customer_id"]).aggregate(
        responses=resp.count(), response_value=resp.response_value.sum().cast("float64"))
    orders = _orders(con, web)
    o = who.join(orders, [who.customer_id == orders.customer_id, orders.day.between(who.as_of, who.end_day)])
    o = o.group_by(["campaign_id", "customer_id"]).aggregate(
        window_orders=o.order_id.count(), window_revenue=o.amount.sum(), window_margin=o.margin.sum())
    j = who.left_join(resp, ["campaign_id", "customer_id"]).left_join(o, ["campaign_id", "customer_id"])
    outcome = j.select(
        "campaign_id", "customer_id",
        bought=(j.responses.fill_null(0) + j.window_orders.fill_null(0)) > 0,
        revenue=j.window_revenue.fill_null(j.response_value).fill_null(0),
        margin=j.window_margin.fill_null(0))
    base = who.select("campaign_id", "customer_id", "channel", "offer", "offer_type", "treated", "as_of")
    feats = _with_features(con, base, web).join(outcome, ["campaign_id", "customer_id"])
    out = feats.execute().rename(columns={"as_of": "start_date"})
    out["treatment_share"] = out.groupby("campaign_id")["treated"].transform("mean")
    cols = ["customer_id", "campaign_id", "channel", "offer", "offer_type", "start_date", "treated", "treatment_share",
            "bought", "revenue", "margin", *FEATURES]
    return _rounded(out[cols].sort_values(["campaign_id", "customer_id"], ignore_index=True))


# ---------------------------------------------------------------------------------------------
# Meta-learners (scikit-learn)
# ---------------------------------------------------------------------------------------------

@dataclass
class ChannelModel:
    """One channel's fitted learners: outcome models per arm (mu0, mu1), the X-learner's effect
    models (tau0, tau1), the response model and the channel's treatment share (propensity);
    ``offer_types``: the offer types the learners take as a feature (empty: the channel alone),
    ``offer_mix``: each type's share of the channel's history (the pooled estimate's weights)."""

    mu0: HistGradientBoostingClassifier
    mu1: HistGradientBoostingClassifier
    tau0: HistGradientBoostingRegressor
    tau1: HistGradientBoostingRegressor
    response: HistGradientBoostingClassifier
    propensity: float
    rows: int
    offer_types: tuple[str, ...] = ()
    offer_mix: dict[str, float] = field(default_factory=dict)


@dataclass
class UpliftModel:
    """Per-channel learners fitted by :func:`fit`; ``method`` is the default of :func:`predict`."""

    channels: dict[str, ChannelModel]
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    method: str = "x"


def arm_weights(treated: pd.Series, treatment_share: pd.Series) -> np.ndarray:
    """Inverse arm-share weights: 1 / share for the treated, 1 / (1 − share) for controls, so
    both arms weigh every campaign by its contacts (campaigns with a 20% and a 50% control are
    then mixed alike in both arms)."""
    t = treated.to_numpy(dtype=bool)
    e = treatment_share.to_numpy(dtype=float)
    return np.where(t, 1.0 / e, 1.0 / (1.0 - e))


def _classifier(seed: int, **settings) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(random_state=seed, categorical_features="from_dtype",
                                          **{**BOOSTING, **settings})


def _regressor(seed: int, **settings) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(random_state=seed, categorical_features="from_dtype",
                                         **{**BOOSTING, **settings})


def offer_types_of(history: pd.DataFrame) -> dict[str, float]:
    """The offer types named in ``history`` rows with their share of the named rows (sorted by
    type); empty when the column is absent or fewer than two types occur (one type says nothing
    a learner could use)."""
    if "offer_type" not in history:
        return {}
    named = history["offer_type"].dropna().astype(str)
    mix = named.value_counts(normalize=True).sort_index()
    return {str(k): float(v) for k, v in mix.items()} if len(mix) > 1 else {}


def _inputs(x: pd.DataFrame, offer_types, offer_type) -> pd.DataFrame:
    """The learners' inputs: ``x`` plus the offer type as a categorical column (one type for all
    rows, or a row-wise Series), when the channel's learners use it."""
    if not offer_types:
        return x
    values = offer_type if isinstance(offer_type, pd.Series) else [offer_type] * len(x)
    return x.assign(offer_type=pd.Categorical(np.asarray(values, dtype=object), categories=list(offer_types)))


def _p(model, x: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(x)[:, 1]


def fit_channel(history: pd.DataFrame, features=FEATURES, seed: int = 0, **settings) -> ChannelModel:
    """T- and X-learner and response model on one channel's history rows (see the module)."""
    h = history[(history["treatment_share"] > 0) & (history["treatment_share"] < 1)]
    mix = offer_types_of(h)
    types = tuple(mix)
    x = _inputs(h[list(features)], types, h["offer_type"] if types else None)
    y, t = h["bought"].to_numpy(dtype=int), h["treated"].to_numpy(dtype=bool)
    w = arm_weights(h["treated"], h["treatment_share"])
    with threadpool_limits(THREADS):
        mu1 = _classifier(seed, **settings).fit(x[t], y[t], sample_weight=w[t])
        mu0 = _classifier(seed, **settings).fit(x[~t], y[~t], sample_weight=w[~t])
        d1 = y[t] - _p(mu0, x[t])
        d0 = _p(mu1, x[~t]) - y[~t]
        tau1 = _regressor(seed, **settings).fit(x[t], d1, sample_weight=w[t])
        tau0 = _regressor(seed, **settings).fit(x[~t], d0, sample_weight=w[~t])
        response = _classifier(seed, **settings).fit(x[t], y[t])
    return ChannelModel(mu0, mu1, tau0, tau1, response, float(t.mean()), len(h), types, mix)


def fit(history: pd.DataFrame, features=FEATURES, seed: int = 0, method: str = "x",
        progress: bool = False, **settings) -> UpliftModel:
    """Fit :func:`fit_channel` for every channel in ``history`` (:func:`campaign_history` rows).

    ``settings`` override :data:`BOOSTING` (e.g. ``max_iter`` for a fast run); ``method`` ("x" or
    "t") is what :func:`predict` uses by default.
    """
    from tqdm.auto import tqdm

    channels = sorted(history["channel"].unique())
    fitted = {ch: fit_channel(history[history["channel"] == ch], features, seed, **settings)
              for ch in tqdm(channels, desc="uplift models", disable=not progress)}
    return UpliftModel(fitted, list(features), method)


def _raw(m: ChannelModel, x: pd.DataFrame, method: str) -> np.ndarray:
    with threadpool_limits(THREADS):
        if method == "t":
            return _p(m.mu1, x) - _p(m.mu0, x)
        if method == "x":
            g = m.propensity  # Künzel et al.: weight tau0 by e(x), tau1 by 1 − e(x)
            return g * m.tau0.predict(x) + (1 - g) * m.tau1.predict(x)
        if method == "response":
            return _p(m.response, x)
    raise ValueError(f"method must be 't', 'x' or 'response', not {method!r}")


def _estimate(m: ChannelModel, x: pd.DataFrame, method: str, offer_type) -> np.ndarray:
    """One channel's estimate for ``offer_type`` (a type, a row-wise Series of types, or None:
    the pooled mix of the channel's types; an unseen type counts as None)."""
    if not m.offer_types:
        return _raw(m, x, method)
    if isinstance(offer_type, pd.Series):
        kinds = offer_type.fillna("").astype(str).to_numpy()
        out = np.empty(len(x))
        for kind in np.unique(kinds):
            at = kinds == kind
            out[at] = _estimate(m, x[at], method, kind or None)
        return out
    if offer_type in m.offer_types:
        return _raw(m, _inputs(x, m.offer_types, offer_type), method)
    return sum(share * _raw(m, _inputs(x, m.offer_types, kind), method) for kind, share in m.offer_mix.items())


def predict(model: UpliftModel, features: pd.DataFrame, channel: str, calibration: dict | None = None,
            assumed_uplift: dict | None = None, method: str | None = None,
            offer_type: str | pd.Series | None = None) -> pd.Series:
    """Estimated uplift (rise in the chance of buying in a campaign window) per customer.

    ``features``: :func:`customer_features` (index customer_id). A channel with history uses its
    own learners; one without borrows ``assumed_uplift[channel] = (other channel, factor)``
    (default: the default ``Settings.assumed_uplift``). Either way, ``calibration[channel]`` (from
    :func:`calibration`: measured over planned uplift) multiplies the result once that channel has
    been measured (a borrowing channel measured itself takes its own factor only, not also the
    source's). ``offer_type``: the kind of offer (``dim_campaign.offer_type``, e.g.
    ``"reactivation"``), or a Series of them aligned with ``features``; None, or a type the
    channel's history never ran, gives the channel's pooled mix. ``method="response"`` returns
    P(buy | contacted) instead (not calibrated).
    """
    method = method or model.method
    assumed = config.Settings().assumed_uplift if assumed_uplift is None else assumed_uplift
    x = features[model.features]
    if channel in model.channels:
        value = _estimate(model.channels[channel], x, method, offer_type)
        if method != "response":
            value = value * (calibration or {}).get(channel, 1.0)
    elif channel in assumed:
        # Once the borrowing channel is measured, its own factor was measured against plans made
        # from the source's uncalibrated estimates: the source's factor must not apply twice.
        source, factor = assumed[channel]
        own = (calibration or {}).get(channel)
        value = predict(model, features, source, calibration if own is None else None, {}, method,
                        offer_type).to_numpy()
        if method != "response":
            value = value * factor * (1.0 if own is None else own)
    else:
        raise KeyError(f"no history and no assumed uplift for channel {channel!r}")
    return pd.Series(value, index=features.index, name="p_response" if method == "response" else "uplift")


#: Prior spread of a channel's calibration factor around 1 (the assumption): a measured factor of
#: 0.5 or 1.5 is one prior standard deviation away, i.e. plausible before anything is measured.
PRIOR_SD = 0.5


def shrink_factor(raw: float, se: float, prior_sd: float = PRIOR_SD, alpha: float = 0.05) -> dict[str, float]:
    """Normal-normal shrinkage of a measured factor towards 1 (the assumption).

    ``raw``: measured / planned uplift; ``se``: its sampling standard error; ``prior_sd``: the
    spread of true factors around 1 believed before measuring. The posterior mean is
    1 + w (raw − 1) with w = prior_sd² / (prior_sd² + se²) (a precise measurement, small se,
    moves it almost all the way; a wide one barely), its standard deviation √w · se, and the
    interval mean ± z(1 − alpha/2) sd. Returns factor, low, high, weight.
    """
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / 2))
    if not np.isfinite(prior_sd):
        w = 1.0
    elif prior_sd <= 0:
        w = 0.0
    else:
        w = prior_sd ** 2 / (prior_sd ** 2 + se ** 2)
    factor, sd = 1.0 + w * (raw - 1.0), float(np.sqrt(w) * se)
    return {"factor": factor, "low": factor - z * sd, "high": factor + z * sd, "weight": w}


def calibration_table(con: BaseBackend | str | Path | None, prior_sd: float = PRIOR_SD,
                      alpha: float = 0.05) -> pd.DataFrame:
    """Measured over planned uplift per channel, shrunk towards the assumption by its precision.

    For every measured planned campaign (``campaign_results`` joined to ``campaign_plan``; its
    latest measurement, whole-campaign rows per channel: segment ``all``), the raw factor is the
    measured uplift over the treated customers' mean planned uplift; its standard error is the
    measured interval's half-width over z(1 − alpha/2) (``alpha``: the level the results were
    measured at), divided by the planned uplift. A channel's campaigns are pooled by precision,
    then :func:`shrink_factor` pulls the factor towards 1 with ``prior_sd`` (``inf``: the raw
    ratio). One row per measured channel (index channel): campaigns, n_treatment, measured,
    planned, raw_factor, raw_low, raw_high, weight, factor, factor_low, factor_high; empty when
    nothing is measured. A channel without a row keeps its assumption.
    """
    from scipy.stats import norm

    cols = ["campaigns", "n_treatment", "measured", "planned", "raw_factor", "raw_low", "raw_high",
            "weight", "factor", "factor_low", "factor_high"]
    empty = pd.DataFrame(columns=cols, index=pd.Index([], name="channel"), dtype=float)
    con = wh.as_connection(con)
    if not {"campaign_results", "campaign_plan"} <= set(con.list_tables()):
        return empty
    res = con.table("campaign_results")
    res = res.filter((res.segment == "all") & (res.channel != "all"))
    latest = res.group_by("campaign_id").aggregate(last=res.measured_on.max())
    res = res.join(latest, [res.campaign_id == latest.campaign_id, res.measured_on == latest.last])
    plan = con.table("campaign_plan")
    plan = plan.filter(plan.arm == "treatment")
    planned = plan.group_by(["campaign_id", "channel"]).aggregate(planned=plan.uplift.mean())
    rows = res.join(planned, ["campaign_id", "channel"]).select(
        "campaign_id", "channel", "uplift", "uplift_low", "uplift_high", "planned", "n_treatment").execute()
    rows = rows[rows["planned"].abs() > 0]
    if rows.empty:
        return empty
    z = float(norm.ppf(1 - alpha / 2))
    rows["raw"] = rows["uplift"] / rows["planned"]
    rows["se"] = (rows["uplift_high"] - rows["uplift_low"]) / (2 * z) / rows["planned"].abs()
    out = {}
    for channel, g in rows.groupby("channel", sort=True):
        precision = 1 / g["se"].clip(lower=1e-12) ** 2
        raw = float((g["raw"] * precision).sum() / precision.sum())
        se = float(np.sqrt(1 / precision.sum()))
        shrunk = shrink_factor(raw, se, prior_sd, alpha)
        out[str(channel)] = {
            "campaigns": g["campaign_id"].nunique(), "n_treatment": int(g["n_treatment"].sum()),
            "measured": float((g["uplift"] * precision).sum() / precision.sum()),
            "planned": float((g["planned"] * precision).sum() / precision.sum()),
            "raw_factor": raw, "raw_low": raw - z * se, "raw_high": raw + z * se, "weight": shrunk["weight"],
            "factor": shrunk["factor"], "factor_low": shrunk["low"], "factor_high": shrunk["high"]}
    return pd.DataFrame.from_dict(out, orient="index")[cols].rename_axis("channel")


def calibration(con: BaseBackend | str | Path | None, prior_sd: float = PRIOR_SD,
                alpha: float = 0.05) -> dict[str, float]:
    """Calibration factors per measured channel for :func:`predict`: :func:`calibration_table`'s
    shrunk ``factor`` (measured / planned uplift pulled towards 1 by its precision). ``{}`` when
    nothing is measured; a channel not in it keeps its estimate or its assumed uplift."""
    return {str(k): float(v) for k, v in calibration_table(con, prior_sd, alpha)["factor"].items()}


# ---------------------------------------------------------------------------------------------
# Evaluation: Qini and uplift curves
# ---------------------------------------------------------------------------------------------

def uplift_curves(bought, treated, score, weight=None) -> pd.DataFrame:
    """Qini and uplift curves of ``score`` (highest first), one point per distinct score.

    Columns: share (of customers targeted, weighted), qini (R_t(k)/N_t − R_c(k)/N_c: incremental
    buyers as a share of the customers when the top k are contacted, N = whole arms) and uplift
    ((r_t(k) − r_c(k)) × k/N, response rates among the top k; 0 while an arm is empty in it). The
    first row is (0, 0, 0); the last has share 1 and the overall uplift. ``weight``: row weights,
    e.g. :func:`arm_weights` when campaigns with different control shares are pooled.
    """
    y = np.asarray(bought, dtype=float)
    t = np.asarray(treated, dtype=bool)
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=float)
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    s, y, t, w = np.asarray(score, dtype=float)[order], y[order], t[order], w[order]
    nt, nc = np.cumsum(w * t), np.cumsum(w * ~t)
    yt, yc = np.cumsum(w * y * t), np.cumsum(w * y * ~t)
    last = np.r_[s[1:] != s[:-1], True]  # ties enter together
    nt, nc, yt, yc = nt[last], nc[last], yt[last], yc[last]
    n = nt + nc
    rate_t = np.divide(yt, nt, out=np.zeros_like(yt), where=nt > 0)
    rate_c = np.divide(yc, nc, out=np.zeros_like(yc), where=nc > 0)
    return pd.DataFrame({"share": np.r_[0.0, n / n[-1]],
                         "qini": np.r_[0.0, yt / nt[-1] - yc / nc[-1]],
                         "uplift": np.r_[0.0, (rate_t - rate_c) * n / n[-1]]})


def auuc(curves: pd.DataFrame) -> float:
    """Area under the uplift curve (trapezoids over the share targeted)."""
    return float(np.trapezoid(curves["uplift"], curves["share"]))


def qini_coefficient(curves: pd.DataFrame) -> float:
    """Area between the Qini curve and the random-targeting diagonal (0 = no better than random;
    negative = worse): trapezoids over the share targeted."""
    diagonal = curves["share"] * curves["qini"].iloc[-1]
    return float(np.trapezoid(curves["qini"] - diagonal, curves["share"]))


def split_customers(history: pd.DataFrame, test_share: float = TEST_SHARE,
                    seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) rows of ``history``, split by customer (all of a customer's campaigns on one
    side), seeded."""
    ids = np.sort(history["customer_id"].unique())
    rng = np.random.default_rng(seed)
    test = set(rng.choice(ids, size=int(round(test_share * len(ids))), replace=False).tolist())
    held = history["customer_id"].isin(test)
    return history[~held], history[held]


def score_rows(model: UpliftModel, rows: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``rows`` (history rows) with each model's score by its channel and its campaign's offer
    type: uplift_x, uplift_t, p_response and a seeded random score."""
    out = rows.copy()
    for name, method in (("uplift_x", "x"), ("uplift_t", "t"), ("p_response", "response")):
        out[name] = np.nan
        for ch, part in rows.groupby("channel"):
            if ch in model.channels:
                kinds = part["offer_type"] if "offer_type" in part else None
                out.loc[part.index, name] = predict(model, part, ch, method=method, offer_type=kinds).to_numpy()
    out["random"] = np.random.default_rng(seed).random(len(out))
    return out


#: Scores compared by :func:`evaluate`, as a reader names them.
SCORES = {"uplift_x": "uplift model (X-learner)", "uplift_t": "uplift model (T-learner)",
          "p_response": "response model", "random": "random targeting"}


def evaluate(scored: pd.DataFrame, by: str | None = "channel") -> pd.DataFrame:
    """Qini coefficient and AUUC of every score in :data:`SCORES` on scored held-out rows
    (:func:`score_rows`), overall (``all``) and per ``by`` group; arm-weighted (see
    :func:`arm_weights`). Index (group, model); columns qini, auuc, rows."""
    groups = [("all", scored)] + (list(scored.groupby(by)) if by else [])
    out = []
    for key, part in groups:
        w = arm_weights(part["treated"], part["treatment_share"])
        for col, name in SCORES.items():
            c = uplift_curves(part["bought"], part["treated"], part[col], w)
            out.append({"group": key, "model": name, "qini": qini_coefficient(c), "auuc": auuc(c),
                        "rows": len(part)})
    return pd.DataFrame(out).set_index(["group", "model"])


def curves_by_model(scored: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Arm-weighted :func:`uplift_curves` of each score in :data:`SCORES`, by reader's name."""
    w = arm_weights(scored["treated"], scored["treatment_share"])
    return {name: uplift_curves(scored["bought"], scored["treated"], scored[col], w)
            for col, name in SCORES.items()}


def qini_title(curves: dict[str, pd.DataFrame], share: float = 0.3) -> str:
    """The Qini chart's finding: incremental buyers when the best ``share`` is contacted, by the
    first score and by the response model (when both are there)."""
    at = {name: float(np.interp(share, c["share"], c["qini"])) for name, c in curves.items()}
    first = next(iter(curves))
    text = f"Contacting the best {share:.0%}: {first} {at[first]:.1%} incremental buyers"
    response = SCORES["p_response"]
    if response in at and response != first:
        text += f", response model {at[response]:.1%}"
    return text + " (share of customers)"


def qini_plot(curves: dict[str, pd.DataFrame], title: str | None = None, ax=None):
    """Qini curves (incremental buyers, % of customers, against the share contacted) of several
    scores, with the random-targeting diagonal; legend outside. Returns ``ax``."""
    import matplotlib.pyplot as plt

    from crm_helpers import plots

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.8))
    for i, (name, c) in enumerate(curves.items()):
        if name == SCORES["random"]:
            continue
        ax.plot(c["share"], c["qini"], color=f"C{i}", label=name)
    last = next(iter(curves.values()))
    ax.plot([0, 1], [0, last["qini"].iloc[-1]], color=plots.PREVIOUS_COLOR, ls="--", label="random targeting")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlim(0, 1)
    if title is None:
        title = qini_title(curves)
    return plots.finish(ax, title, x="customers contacted, best first", y="incremental buyers",
                        xunit="rate", yunit="rate", truncated=False)


def uplift_curve_plot(curves: dict[str, pd.DataFrame],
                      title: str = "Uplift curves: incremental buyers among the top k", ax=None):
    """Uplift curves ((r_t − r_c) × k/N against the share contacted) of several scores."""
    import matplotlib.pyplot as plt

    from crm_helpers import plots

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.8))
    for i, (name, c) in enumerate(curves.items()):
        dashed = name == SCORES["random"]
        ax.plot(c["share"], c["uplift"], color=f"C{i}", label=name, ls="--" if dashed else "-")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlim(0, 1)
    return plots.finish(ax, title, x="customers contacted, best first", y="incremental buyers",
                        xunit="rate", yunit="rate", truncated=False)


# ---------------------------------------------------------------------------------------------
# Segments and sleeping dogs
# ---------------------------------------------------------------------------------------------

def current_segments(con: BaseBackend | str | Path | None) -> pd.Series | None:
    """Each scored customer's segment from ``customer_scores`` (latest as_of), or None if absent."""
    con = wh.as_connection(con)
    if "customer_scores" not in con.list_tables():
        return None
    s = con.table("customer_scores")
    s = s.filter(s.as_of == s.as_of.max()).select("customer_id", "segment").execute()
    return s.set_index("customer_id")["segment"].sort_index()


#: The one group :func:`segment_uplift` shows when no segments are known.
ALL_CUSTOMERS = "all customers"


def segment_uplift(scored: pd.DataFrame, segment: pd.Series | None, score: str = "uplift_x",
                   by: str | None = "channel") -> pd.DataFrame:
    """Mean estimated uplift (``score``) per segment (and per ``by``), with the customers behind it.

    ``scored``: rows with customer_id and the score (:func:`score_rows` of history rows, or a
    frame of today's predictions); ``segment``: customer_id → segment name (``customer_scores``
    via :func:`current_segments`, or, on the sample, the true segment; None: one group
    :data:`ALL_CUSTOMERS`). Rows whose customer has no segment are left out. Columns: (by),
    segment, uplift, rows; highest uplift first per group.
    """
    named = ALL_CUSTOMERS if segment is None else scored["customer_id"].map(segment)
    rows = scored.assign(segment=named).dropna(subset=["segment"])
    keys = [by, "segment"] if by else ["segment"]
    out = rows.groupby(keys)[score].agg(uplift="mean", rows="size").reset_index()
    return out.sort_values([*([by] if by else []), "uplift"], ascending=[*([True] if by else []), False],
                           ignore_index=True)


def sleeping_dogs(uplift: pd.Series, p_response: pd.Series, contacts: int) -> dict[str, int]:
    """How targeting by response treats customers with negative estimated uplift.

    ``uplift`` and ``p_response``: one channel's estimates for the same customers; ``contacts``:
    the campaign size. Returns negative (customers with uplift < 0), contacted_by_response (of
    them, how many the top ``contacts`` by response probability would reach) and
    contacted_by_uplift (by estimated uplift: 0 unless fewer than ``contacts`` are positive).
    """
    negative = uplift < 0
    by_response = p_response.sort_values(ascending=False, kind="stable").index[:contacts]
    by_uplift = uplift.sort_values(ascending=False, kind="stable").index[:contacts]
    return {"negative": int(negative.sum()), "contacted_by_response": int(negative[by_response].sum()),
            "contacted_by_uplift": int(negative[by_uplift].sum())}


def as_of_default(con: BaseBackend | str | Path | None) -> dt.date:
    """The day after the last order: today's features use every order."""
    return star.latest_order_date(wh.as_connection(con)) + dt.timedelta(days=1)
