"""Behavioural segments: k-means on what customers buy, how often, how and where.

Each customer with enough purchases is described by the log of their purchase rate, their mean
lines per order, their web share, their basic and premium tier shares and their category mix
(reduced to a few principal components, so eight noisy shares do not outvote the rest). Shares
are shrunk toward the overall mix by a couple of pseudo-orders, so a customer with two orders
is not described as "100% web". Standardised, these go to k-means; clusters are numbered by
falling purchase rate (cluster 1 buys most often).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from ibis.backends import BaseBackend
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from crm_helpers import warehouse as wh
from crm_helpers.information import star

#: Customers with fewer purchases (orders) than this are not segmented: one order shows no habit.
MIN_ORDERS = 2
#: Pseudo-orders (or lines) of the overall mix added to every customer's shares.
SHRINKAGE = 2.0
#: Principal components kept of the standardised category shares.
CATEGORY_COMPONENTS = 3
FEATURES = ["log_rate", "lines_per_order", "web_share", "basic_share", "premium_share"]


def customer_mix(con: BaseBackend | str | Path | None = None, end=None) -> pd.DataFrame:
    """Per identified customer: orders, first and last purchase day, lines, web orders, and line
    counts by tier and by category (columns ``tier:<name>``, ``category:<name>``), from the
    warehouse's purchase lines up to `end` (Ibis; the customer-level result in pandas)."""
    lines = star.customer_lines(wh.as_connection(con), end)
    buys = lines.filter(lines.is_purchase)
    orders = buys.group_by(["customer_id", "order_id"]).aggregate(
        order_date=buys.order_date.min(), lines=buys.count(),
        web=(buys.channel == "web").max().cast("int64"))
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
