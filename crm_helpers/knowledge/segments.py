"""Behavioural segments: k-means on what customers buy, how often, how and where.

Each customer with enough purchases is described by the log of their purchase rate, their mean
lines per order, their web share, their basic and premium tier shares and their category mix
(reduced to a few principal components, so eight noisy shares do not outvote the rest). Shares
are shrunk toward the overall mix by a couple of pseudo-orders, so a customer with two orders
is not described as "100% web". Standardised, these go to k-means; clusters are numbered by
falling purchase rate (cluster 1 buys most often).

The richer segmentation of notebook 04 (:func:`assign_segments`) adds RFM and tenure to those
inputs (log spend, log days since the last purchase, log days since the first), chooses the
number of segments from evidence (:func:`k_evidence`, :func:`choose_k`: silhouette, a Gaussian
mixture's BIC, stability across seeds), profiles each segment (:func:`segment_profile`: size,
shares of revenue and margin, KPIs, channel, tier and category) and names it from that profile
by one rule (:func:`segment_names`), never by cluster number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from ibis.backends import BaseBackend
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from crm_helpers import warehouse as wh
from crm_helpers.information import rfm, star

#: Customers with fewer purchases (orders) than this are not segmented: one order shows no habit.
MIN_ORDERS = 2
#: The segment shown for a customer with fewer orders than MIN_ORDERS (customer_scores, reports).
UNSEGMENTED = "One order so far"
#: Pseudo-orders (or lines) of the overall mix added to every customer's shares.
SHRINKAGE = 2.0
#: Principal components kept of the standardised category shares.
CATEGORY_COMPONENTS = 3
FEATURES = ["log_rate", "lines_per_order", "web_share", "basic_share", "premium_share"]


def customer_mix(con: BaseBackend | str | Path | None = None, end=None) -> pd.DataFrame:
    """Per identified customer: orders, first and last purchase day, lines, web orders (the
    settings' web channel), and line counts by tier and by category (columns ``tier:<name>``,
    ``category:<name>``), from the warehouse's purchase lines up to `end` (Ibis; the
    customer-level result in pandas)."""
    con = wh.as_connection(con)
    lines = star.customer_lines(con, end)
    buys = lines.filter(lines.is_purchase)
    orders = buys.group_by(["customer_id", "order_id"]).aggregate(
        order_date=buys.order_date.min(), lines=buys.count(),
        web=(buys.channel == wh.settings(con).web_channel).max().cast("int64"))
    per_customer = orders.group_by("customer_id").aggregate(
        orders=orders.count(), first_purchase=orders.order_date.min(),
        last_purchase=orders.order_date.max(), lines=orders.lines.sum(),
        web_orders=orders.web.sum()).execute().set_index("customer_id")
    for dim in ("tier", "category"):
        counts = buys.group_by(["customer_id", dim]).aggregate(n=buys.count()).execute()
        wide = counts.pivot(index="customer_id", columns=dim, values="n").fillna(0)
        wide.columns = [f"{dim}:{c}" for c in wide.columns]
        per_customer = per_customer.join(wide)
    return per_customer.fillna(0).sort_index()


def _shrunk(counts: pd.DataFrame, total: pd.Series) -> pd.DataFrame:
    """Shares of each column in `total`, shrunk toward the overall share by SHRINKAGE units."""
    overall = counts.sum() / total.sum()
    return (counts + SHRINKAGE * overall).div(total + SHRINKAGE, axis=0)


def segment_features(mix: pd.DataFrame, end=None, min_orders: int = MIN_ORDERS) -> pd.DataFrame:
    """Clustering features of customers with at least `min_orders` orders (see module docstring).

    mix: customer_mix(); end: the day the rates are measured to (default: the last purchase
    day in `mix`). Category shares come back as ``category:<name>`` columns.
    """
    mix = mix[mix["orders"] >= min_orders]
    end = pd.Timestamp(end) if end is not None else pd.to_datetime(mix["last_purchase"]).max()
    months = ((end - pd.to_datetime(mix["first_purchase"])).dt.days + 30) / 30.4375
    out = pd.DataFrame({"orders": mix["orders"], "log_rate": np.log(mix["orders"] / months),
                        "lines_per_order": mix["lines"] / mix["orders"]}, index=mix.index)
    out["web_share"] = _shrunk(mix[["web_orders"]], mix["orders"])["web_orders"]
    tiers = _shrunk(mix.filter(like="tier:"), mix["lines"])
    out["basic_share"] = tiers.get("tier:basic", 0.0)
    out["premium_share"] = tiers.get("tier:premium", 0.0)
    return out.join(_shrunk(mix.filter(like="category:"), mix["lines"]))


def cluster_customers(features: pd.DataFrame, k: int = 4, seed: int = 0) -> pd.Series:
    """k-means cluster (1..k, 1 = highest mean purchase rate) of each customer in `features`."""
    categories = features.filter(like="category:")
    parts = [StandardScaler().fit_transform(features[FEATURES])]
    if categories.shape[1]:
        scaled = StandardScaler().fit_transform(categories)
        n = min(CATEGORY_COMPONENTS, categories.shape[1])
        parts.append(PCA(n, random_state=seed).fit_transform(scaled))
    labels = KMeans(k, n_init=10, random_state=seed).fit_predict(np.hstack(parts))
    rank = pd.Series(features["log_rate"].to_numpy()).groupby(labels).mean() \
        .rank(ascending=False, method="first").astype(int)
    return pd.Series(rank.loc[labels].to_numpy(), index=features.index, name="cluster")


# --------------------------------------------------------------------------------------------
# Notebook 04: richer inputs, the number of segments from evidence, profiles and names
# --------------------------------------------------------------------------------------------

#: What the segments are fitted on: RFM (purchase rate, days since the last purchase, spend),
#: tenure, basket size, channel and tier mix (the category mix joins as principal components).
SEGMENT_INPUTS = [*FEATURES, "log_spend", "log_recency", "log_tenure"]
#: The number of segments when none is asked for: what :func:`choose_k` picks on the sample world
#: (notebook 04 shows the evidence).
DEFAULT_K = 4
#: Numbers of segments compared, and how many seeds measure stability.
CANDIDATE_K = tuple(range(2, 9))
STABILITY_SEEDS = 5
#: The choice rule: the largest k whose silhouette is within this share of the best one ...
SILHOUETTE_TOLERANCE = 0.03
#: ... whose k-means labels barely depend on the seed (mean pairwise adjusted Rand index) ...
MIN_STABILITY = 0.85
#: Customers the silhouette is measured on (a sample: the score is quadratic in customers).
SILHOUETTE_SAMPLE = 5_000
#: Naming: a segment's median purchase rate against the median customer's, from the top.
FREQUENCY_NAMES = ((4.0, "Elite"), (1.5, "Loyal"), (0.7, "Regular"), (0.0, "Occasional"))
#: An "elite" is small: a segment above this share of customers buying that often is "Frequent".
ELITE_MAX_SHARE = 0.10
#: A segment is named after a channel whose share of its orders is at least this (else "mixed").
CHANNEL_MAJORITY = 0.6


def customer_features(con: BaseBackend | str | Path | None = None, as_of=None,
                      min_orders: int = MIN_ORDERS) -> pd.DataFrame:
    """Segmentation inputs and profile measures of every segmentable customer as of `as_of`.

    The columns of :func:`segment_features` (purchases up to `as_of`, default the last order day)
    plus log_spend (log of 1 + net spend), log_recency (log of 1 + days since the last purchase),
    log_tenure (log of 1 + days since the first), and, for the profiles, total_spend, margin,
    recency_days, tenure_days, purchase_rate (orders per month) and aov (sales per order), from
    :func:`crm_helpers.information.rfm.customer_summary` (engine; one row per customer here).
    """
    con = wh.as_connection(con)
    end = rfm.observation_end(con, as_of)
    features = segment_features(customer_mix(con, end), end=end, min_orders=min_orders)
    summary = rfm.customer_summary(con, end).select(
        "customer_id", "recency_days", "T", "gross_sales", "total_spend", "margin", "orders").to_pandas()
    s = summary.set_index("customer_id").reindex(features.index)
    return features.assign(
        log_spend=np.log1p(s["total_spend"].clip(lower=0)), log_recency=np.log1p(s["recency_days"]),
        log_tenure=np.log1p(s["T"]), total_spend=s["total_spend"], margin=s["margin"],
        recency_days=s["recency_days"], tenure_days=s["T"], purchase_rate=np.exp(features["log_rate"]),
        aov=s["gross_sales"] / s["orders"])


def _preprocess(features: pd.DataFrame, seed: int = 0) -> ColumnTransformer:
    """Standardise :data:`SEGMENT_INPUTS`; standardise the category shares and keep their first
    :data:`CATEGORY_COMPONENTS` principal components."""
    categories = list(features.filter(like="category:").columns)
    parts = [("behaviour", StandardScaler(), SEGMENT_INPUTS)]
    if categories:
        n = min(CATEGORY_COMPONENTS, len(categories))
        parts.append(("categories", make_pipeline(StandardScaler(), PCA(n, random_state=seed)), categories))
    return ColumnTransformer(parts)


def _estimator(method: str, k: int, seed: int):
    if method == "kmeans":
        return KMeans(k, n_init=10, random_state=seed)
    if method == "gmm":
        return GaussianMixture(k, covariance_type="tied", n_init=3, random_state=seed)
    raise ValueError(f"method must be 'kmeans' or 'gmm', not {method!r}")


def segment_model(features: pd.DataFrame, k: int = DEFAULT_K, seed: int = 0, method: str = "kmeans") -> Pipeline:
    """A fitted scikit-learn pipeline: :func:`_preprocess` then k-means (``method="kmeans"``) or a
    Gaussian mixture with one shared covariance (``"gmm"``). ``.predict(features)`` gives each
    customer's cluster (0..k-1) for these or other customers' features (another date)."""
    with threadpool_limits(1):  # small data: threads only fight over the cores
        return make_pipeline(_preprocess(features, seed), _estimator(method, k, seed)).fit(features)


def k_evidence(features: pd.DataFrame, ks=CANDIDATE_K, seeds: int = STABILITY_SEEDS, seed: int = 0,
               progress: bool = True) -> pd.DataFrame:
    """The evidence for the number of segments, one row per k in `ks` (index ``k``).

    silhouette: of the k-means clusters (on up to :data:`SILHOUETTE_SAMPLE` customers; higher is
    better separated); bic: the Bayesian information criterion of a Gaussian mixture (shared
    covariance) with k components (lower is better); stability: the mean adjusted Rand index
    between the k-means clusterings of `seeds` seeds (1 = the seed does not matter);
    gmm_agreement: adjusted Rand index between k-means and the mixture.
    """
    from tqdm.auto import tqdm

    x = _preprocess(features, seed).fit_transform(features)
    rows = []
    with threadpool_limits(1):
        for k in tqdm(ks, desc="k", disable=not progress):
            runs = [KMeans(k, n_init=10, random_state=seed + s).fit_predict(x) for s in range(seeds)]
            mixture = GaussianMixture(k, covariance_type="tied", random_state=seed).fit(x)
            pairs = [adjusted_rand_score(a, b) for i, a in enumerate(runs) for b in runs[i + 1:]]
            rows.append({"k": k, "silhouette": silhouette_score(x, runs[0], sample_size=min(SILHOUETTE_SAMPLE, len(x)),
                                                                random_state=seed),
                         "bic": mixture.bic(x), "stability": float(np.mean(pairs)) if pairs else 1.0,
                         "gmm_agreement": adjusted_rand_score(runs[0], mixture.predict(x))})
    return pd.DataFrame(rows).set_index("k")


def choose_k(evidence: pd.DataFrame, tolerance: float = SILHOUETTE_TOLERANCE,
             min_stability: float = MIN_STABILITY) -> int:
    """The number of segments the evidence of :func:`k_evidence` supports.

    The largest k whose silhouette is within `tolerance` (a share) of the best, whose clustering
    is stable across seeds (stability >= `min_stability`) and whose mixture's BIC is lower than
    with one segment fewer. Silhouette alone favours a few broad clusters and ignores a small
    segment; BIC alone keeps falling as segments are added; stability rules out a split that
    depends on the seed. If no k passes, the best silhouette's k.
    """
    best = evidence["silhouette"].max()
    bic_falls = evidence["bic"] < evidence["bic"].shift(1).fillna(np.inf)
    ok = evidence[(evidence["silhouette"] >= best * (1 - tolerance)) & (evidence["stability"] >= min_stability)
                  & bic_falls]
    return int(ok.index.max()) if len(ok) else int(evidence["silhouette"].idxmax())


def segment_profile(features: pd.DataFrame, clusters: pd.Series) -> pd.DataFrame:
    """Each cluster side by side (one row each, by falling median purchase rate).

    customers, customer_share, revenue_share and margin_share (of the segmented customers' net
    spend and margin), purchase_rate (median orders per month), rate_index (that rate over the
    median customer's), aov (median sales per order), lines_per_order (mean), recency_days and
    tenure_days (medians), margin_rate (margin / net spend), web_share (mean share of orders on
    the web channel), basic_share and premium_share (mean tier shares of lines), top_category
    (the category whose share most exceeds its share in the whole base) and its category_lift.
    """
    g = features.groupby(clusters)
    categories = features.filter(like="category:")
    lift = categories.groupby(clusters).mean() / categories.mean()
    out = pd.DataFrame({
        "customers": g.size(),
        "revenue_share": g["total_spend"].sum() / features["total_spend"].sum(),
        "margin_share": g["margin"].sum() / features["margin"].sum(),
        "purchase_rate": g["purchase_rate"].median(),
        "aov": g["aov"].median(),
        "lines_per_order": g["lines_per_order"].mean(),
        "recency_days": g["recency_days"].median(),
        "tenure_days": g["tenure_days"].median(),
        "margin_rate": g["margin"].sum() / g["total_spend"].sum(),
        "web_share": g["web_share"].mean(),
        "basic_share": g["basic_share"].mean(),
        "premium_share": g["premium_share"].mean(),
    })
    out.insert(1, "customer_share", out["customers"] / out["customers"].sum())
    out["rate_index"] = out["purchase_rate"] / features["purchase_rate"].median()
    if categories.shape[1]:
        out["top_category"] = lift.idxmax(axis=1).str.removeprefix("category:")
        out["category_lift"] = lift.max(axis=1)
    return out.sort_values("purchase_rate", ascending=False)


def segment_names(profile: pd.DataFrame, web_channel: str = "web", store_channel: str = "store") -> pd.Series:
    """A plain-language name for each row of :func:`segment_profile`, by one rule.

    The frequency word comes from rate_index (:data:`FREQUENCY_NAMES`: Elite, Loyal, Regular,
    Occasional; an "Elite" holding more than :data:`ELITE_MAX_SHARE` of the customers is
    "Frequent"), then in brackets the channel holding at least :data:`CHANNEL_MAJORITY` of the
    orders (`web_channel` or `store_channel`, else "mixed") and the top category:
    "Elite (store, electronics)". Names that still collide get a number.
    """
    names = []
    for _, row in profile.iterrows():
        word = next(name for floor, name in FREQUENCY_NAMES if row["rate_index"] >= floor)
        if word == FREQUENCY_NAMES[0][1] and row["customer_share"] > ELITE_MAX_SHARE:
            word = "Frequent"
        channel = (web_channel if row["web_share"] >= CHANNEL_MAJORITY
                   else store_channel if row["web_share"] <= 1 - CHANNEL_MAJORITY else "mixed")
        traits = [channel] + ([str(row["top_category"]).lower()] if "top_category" in row else [])
        names.append(f"{word} ({', '.join(traits)})")
    named = pd.Series(names, index=profile.index, name="segment")
    repeat = named.groupby(named).cumcount()
    return named.where(repeat == 0, named + " " + (repeat + 1).astype(str))


def is_elite(segment: pd.Series | pd.Index) -> np.ndarray:
    """Whether each segment name is an elite one (as :func:`segment_names` names it)."""
    return pd.Series(segment).astype(str).str.startswith(FREQUENCY_NAMES[0][1]).to_numpy()


def fit_segments(con: BaseBackend | str | Path | None = None, as_of=None, k: int | None = None, seed: int = 0,
                 features: pd.DataFrame | None = None, method: str = "kmeans") -> tuple[Pipeline, pd.Series, pd.DataFrame]:
    """Fit the segments as of `as_of`: the fitted :func:`segment_model`, each customer's segment name
    (a Series indexed by customer_id) and the :func:`segment_profile` indexed by name.

    `k`: number of segments (default :data:`DEFAULT_K`); `features`: :func:`customer_features`
    when already computed (else read from the warehouse); `method`: ``kmeans`` or ``gmm``
    (:func:`segment_model`).
    """
    features = customer_features(con, as_of) if features is None else features
    model = segment_model(features, k or DEFAULT_K, seed, method)
    clusters = pd.Series(model.predict(features), index=features.index)
    profile = segment_profile(features, clusters)
    settings = wh.settings(con)
    names = segment_names(profile, settings.web_channel, settings.store_channel)
    profile = profile.set_index(names.to_numpy()).rename_axis("segment")
    model.segment_names_ = names  # cluster number -> name, so predict() can be named too
    return model, clusters.map(names).rename("segment"), profile


def predict_segments(model: Pipeline, features: pd.DataFrame) -> pd.Series:
    """The segment names a :func:`fit_segments` model gives other customers' (or dates') features."""
    return pd.Series(model.predict(features), index=features.index).map(model.segment_names_).rename("segment")


def assign_segments(con: BaseBackend | str | Path | None = None, as_of=None, k: int | None = None,
                    seed: int = 0) -> pd.DataFrame:
    """Each segmentable customer's segment as of `as_of` (purchases up to that day; default the
    last order day): columns customer_id and segment (the plain-language name, see
    :func:`segment_names`). `k`: number of segments (default :data:`DEFAULT_K`); `seed`: k-means'.
    """
    _, segment, _ = fit_segments(con, as_of, k, seed)
    return segment.rename_axis("customer_id").reset_index()


#: A typical product holds at least this share of its segment's purchase lines.
MIN_PRODUCT_SHARE = 0.01


def typical_products(con: BaseBackend | str | Path | None, segment: pd.Series, as_of=None, n: int = 3) -> pd.DataFrame:
    """Each segment's `n` most typical products: those whose share of the segment's purchase lines
    (up to `as_of`) most exceeds their share of all segmented customers' lines (``lift``), among
    products holding at least :data:`MIN_PRODUCT_SHARE` of the segment's lines.

    `segment`: customer_id -> segment name (:func:`fit_segments`), joined to the lines in the
    engine. Returns segment, product_name, category, tier, share, lift (segments in `segment`'s
    order of first appearance unless it is categorical).
    """
    import ibis

    con = wh.as_connection(con)
    lines = star.customer_lines(con, rfm.observation_end(con, as_of))
    buys = lines.filter(lines.is_purchase)
    labels = ibis.memtable(segment.rename("segment").rename_axis("customer_id").reset_index()
                           .astype({"segment": str}))
    joined = buys.join(labels, "customer_id")
    counts = joined.group_by(["segment", "product_name", "category", "tier"]).aggregate(lines=joined.count()).to_pandas()
    counts["share"] = counts["lines"] / counts.groupby("segment")["lines"].transform("sum")
    overall = counts.groupby("product_name")["lines"].sum() / counts["lines"].sum()
    counts["lift"] = counts["share"] / counts["product_name"].map(overall)
    typical = counts[counts["share"] >= MIN_PRODUCT_SHARE].sort_values(["segment", "lift"], ascending=[True, False])
    return typical.groupby("segment").head(n)[["segment", "product_name", "category", "tier", "share", "lift"]] \
        .reset_index(drop=True)
