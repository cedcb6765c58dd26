"""Next best product: what each customer is likely to buy next, and why.

Three candidate sources, each a score per customer and product:

- **popularity** (the baseline): products by the number of customers who bought them in the last
  months before the cut-off, the same list for everyone;
- **rules**: association rules between products (``rules.py``) applied to the customer's history:
  a product scores the highest confidence of a rule whose antecedent the customer has bought;
- **similar customers**: item-to-item collaborative filtering, the cosine similarity of products'
  buyer vectors (a scipy sparse customer x product matrix); a product scores the sum of its
  similarities to what the customer bought, weighted by how often.

The *hybrid* adds the three on comparable scales. Products of a durable category (``Settings
.durable_categories``) that the customer already owns are not offered again. The customer x
product counts come from the engine (one row per customer and product); the scoring is sparse
linear algebra on that customer-level table.

Evaluation holds out time: everything is fitted on purchases up to a cut-off, and the top-k
products are compared with what each customer bought in the following months (hit rate, recall
and mean average precision at k).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ibis.backends import BaseBackend
from scipy import sparse

from crm_helpers import config
from crm_helpers import warehouse as wh
from crm_helpers.information import star
from crm_helpers.knowledge import rules as rules_

#: Months of purchases before the cut-off that define "popular".
POPULAR_MONTHS = 3
#: Months after the cut-off whose purchases a recommendation is judged on.
HORIZON_MONTHS = 3
KS = (1, 3, 5)
#: Weights of the three sources in the hybrid score (each scaled to 0-1 per customer first).
HYBRID_WEIGHTS = {"similar": 1.0, "rules": 0.25, "popularity": 0.05}
REASONS = {"rules": "bought with {item} (rule, confidence {confidence:.0%})",
           "similar": "customers who buy {item} also buy it (similar customers)",
           "popularity": "among the most popular products",
           "upsell": "next tier of {item} (up-sell)"}
#: A rule is given as the reason of an offer when its confidence reaches this (else the
#: similar customers are: the hybrid's ranking leans on them).
RULE_REASON_CONFIDENCE = 0.10
TABLE = "next_best_offer"
COLUMNS = ["customer_id", "as_of", "rank", "product", "category", "score", "reason"]


@dataclass
class History:
    """Customers' purchases up to a cut-off as a sparse customer x product matrix of line counts."""

    counts: sparse.csr_matrix
    customers: pd.Index
    products: pd.DataFrame  # sku, product_name, category, tier (row order = matrix columns)
    as_of: pd.Timestamp


def catalogue(con: BaseBackend | str | Path | None = None) -> pd.DataFrame:
    """The products (sku, product_name, category, tier) in SKU order, from ``dim_product``."""
    con = wh.as_connection(con)
    return con.table("dim_product").select("sku", "product_name", "category", "tier") \
        .order_by("sku").execute()


def history(con: BaseBackend | str | Path | None = None, as_of=None) -> History:
    """Each identified customer's purchase lines per product up to `as_of` (default: the last
    order day), counted in the engine; customers without a purchase are left out."""
    con = wh.as_connection(con)
    as_of = pd.Timestamp(as_of or star.latest_order_date(con))
    lines = star.customer_lines(con, as_of)
    buys = lines.filter(lines.is_purchase)
    pairs = buys.group_by(["customer_id", "sku"]).aggregate(n=buys.count()).execute()
    products = catalogue(con)
    customers = pd.Index(np.sort(pairs["customer_id"].unique()), name="customer_id")
    rows = customers.get_indexer(pairs["customer_id"])
    cols = pd.Index(products["sku"]).get_indexer(pairs["sku"])
    known = cols >= 0
    counts = sparse.csr_matrix((pairs["n"].to_numpy(float)[known], (rows[known], cols[known])),
                               shape=(len(customers), len(products)))
    return History(counts, customers, products, as_of)


def future_purchases(con: BaseBackend | str | Path | None, start, months: int = HORIZON_MONTHS) -> pd.DataFrame:
    """Distinct (customer_id, sku) bought after `start` and up to `months` months later."""
    con = wh.as_connection(con)
    first = pd.Timestamp(start) + pd.Timedelta(days=1)
    last = pd.Timestamp(start) + pd.DateOffset(months=months)
    lines = star.customer_lines(con, last)
    buys = lines.filter(lines.is_purchase & (lines.order_date >= first.date()))
    return buys.select("customer_id", "sku").distinct().execute()


# --- candidate sources -------------------------------------------------------------------------

def popularity_scores(con: BaseBackend | str | Path | None, hist: History,
                      months: int = POPULAR_MONTHS) -> np.ndarray:
    """Buyers of each product in the `months` before the cut-off (one row, every customer's)."""
    con = wh.as_connection(con)
    start = hist.as_of - pd.DateOffset(months=months)
    lines = star.customer_lines(con, hist.as_of)
    recent = lines.filter(lines.is_purchase & (lines.order_date > start.date()))
    buyers = recent.group_by("sku").aggregate(buyers=recent.customer_id.nunique()).execute()
    return buyers.set_index("sku")["buyers"].reindex(hist.products["sku"]).fillna(0).to_numpy(float)


def item_similarity(hist: History) -> np.ndarray:
    """Cosine similarity of products' buyer vectors (products x products, diagonal kept: a
    product is most similar to itself, so a habit scores)."""
    from sklearn.preprocessing import normalize  # 1 s to import: not for readers of the offers table

    owned = (hist.counts > 0).astype(float)
    cols = normalize(owned.T.tocsr(), norm="l2", axis=1)
    return (cols @ cols.T).toarray()


def similar_scores(hist: History, similarity: np.ndarray | None = None) -> np.ndarray:
    """Item-to-item collaborative score: the customer's product counts (log-damped) times the
    similarity matrix (customers x products)."""
    similarity = item_similarity(hist) if similarity is None else similarity
    weights = hist.counts.copy()
    weights.data = np.log1p(weights.data)
    return np.asarray(weights @ similarity)


def product_rules(con: BaseBackend | str | Path | None, hist: History,
                  min_support: float = 0.0005) -> pd.DataFrame:
    """Two-item product rules mined on the baskets up to the cut-off (rules.py), as a frame of
    antecedent, consequent, confidence, lift."""
    items = rules_.basket_items(con, "product", end=hist.as_of)
    sets, baskets = rules_.itemset_counts(items, min_support=min_support, max_size=2)
    mined = rules_.mine_rules(sets, baskets)
    mined = mined[mined["size"] == 2]
    return pd.DataFrame({"antecedent": mined["antecedents"].map(lambda s: next(iter(s))),
                         "consequent": mined["consequents"].map(lambda s: next(iter(s))),
                         "confidence": mined["confidence"], "lift": mined["lift"]})


def rule_matrix(product_rules_: pd.DataFrame, hist: History) -> np.ndarray:
    """Confidence of antecedent -> consequent as a products x products matrix (0: no rule)."""
    skus = pd.Index(hist.products["sku"])
    out = np.zeros((len(skus), len(skus)))
    a, c = skus.get_indexer(product_rules_["antecedent"]), skus.get_indexer(product_rules_["consequent"])
    keep = (a >= 0) & (c >= 0)
    out[a[keep], c[keep]] = product_rules_["confidence"].to_numpy()[keep]
    return out


def rule_scores(hist: History, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per customer and product, the highest confidence of a rule from a product they own, and
    which owned product it came from (column index; -1 when no rule fires)."""
    owned = (hist.counts > 0).tocsc()
    best = np.zeros((owned.shape[0], confidence.shape[1]))
    source = np.full(best.shape, -1)
    for j in range(owned.shape[1]):  # one vectorised pass per product (a catalogue, not customers)
        rows = owned.indices[owned.indptr[j]:owned.indptr[j + 1]]
        better = confidence[j][None, :] > best[rows]
        best[rows] = np.where(better, confidence[j][None, :], best[rows])
        source[rows] = np.where(better, j, source[rows])
    return best, source


def durable_mask(hist: History, durable_categories) -> np.ndarray:
    """True where the customer already owns a product of a durable category (not offered again)."""
    durable = hist.products["category"].isin(list(durable_categories)).to_numpy()
    owned = (hist.counts > 0).toarray()
    return owned & durable[None, :]


def _scaled(scores: np.ndarray) -> np.ndarray:
    """Each customer's scores divided by their maximum (0-1; rows of zeros stay zero)."""
    top = scores.max(axis=1, keepdims=True)
    return np.divide(scores, top, out=np.zeros_like(scores), where=top > 0)


@dataclass
class Scores:
    """Every source's scores for the customers of a History (customers x products)."""

    popularity: np.ndarray
    rules: np.ndarray
    rule_source: np.ndarray
    similar: np.ndarray
    excluded: np.ndarray
    similarity: np.ndarray  # products x products (item_similarity)

    def hybrid(self, weights: dict | None = None) -> np.ndarray:
        """The weighted sum of the sources, each scaled to 0-1 per customer."""
        w = weights or HYBRID_WEIGHTS
        pop = np.broadcast_to(self.popularity / max(self.popularity.max(), 1), self.similar.shape)
        return (w["similar"] * _scaled(self.similar) + w["rules"] * _scaled(self.rules)
                + w["popularity"] * pop)

    def of(self, method: str) -> np.ndarray:
        """The scores of one method (popularity, rules, similar or hybrid), durable owned
        products set to minus infinity."""
        raw = self.hybrid() if method == "hybrid" else getattr(self, method)
        out = np.broadcast_to(raw, self.similar.shape).astype(float).copy()
        if method == "rules":  # customers no rule reaches fall back on popularity
            out = out + 1e-9 * self.popularity / max(self.popularity.max(), 1)
        out[self.excluded] = -np.inf
        return out


def score_all(con: BaseBackend | str | Path | None, hist: History,
              settings: config.Settings | None = None) -> Scores:
    """The candidate sources' scores for every customer of `hist` (see module docstring)."""
    settings = settings or wh.settings(con)
    confidence = rule_matrix(product_rules(con, hist), hist)
    rules_score, source = rule_scores(hist, confidence)
    similarity = item_similarity(hist)
    return Scores(popularity=popularity_scores(con, hist), rules=rules_score, rule_source=source,
                  similar=similar_scores(hist, similarity),
                  excluded=durable_mask(hist, settings.durable_categories), similarity=similarity)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k highest scores, best first (ties: catalogue order)."""
    part = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return part


# --- evaluation --------------------------------------------------------------------------------

def evaluate(top: dict[str, np.ndarray], hist: History, future: pd.DataFrame,
             ks=KS) -> pd.DataFrame:
    """Hit rate, recall and mean average precision at each k of each method's top products.

    top: method -> (customers x max k) column indices, rows in hist.customers order; future:
    (customer_id, sku) bought after the cut-off. Judged on customers of hist who bought in the
    horizon. Returns one row per method and k: customers, hit_rate (share with at least one
    recommended product bought), recall (share of their bought products recommended, averaged)
    and map (mean average precision at k).
    """
    skus = pd.Index(hist.products["sku"])
    future = future[future["customer_id"].isin(hist.customers)]
    rows = hist.customers.get_indexer(future["customer_id"])
    cols = skus.get_indexer(future["sku"])
    keep = cols >= 0
    truth = sparse.csr_matrix((np.ones(keep.sum()), (rows[keep], cols[keep])),
                              shape=(len(hist.customers), len(skus))).toarray() > 0
    judged = truth.any(axis=1)
    bought = truth[judged].sum(axis=1)
    out = []
    for method, idx in top.items():
        hits = np.take_along_axis(truth[judged], idx[judged], axis=1)
        for k in ks:
            h = hits[:, :k]
            precision_at = np.cumsum(h, axis=1) / np.arange(1, k + 1)
            ap = (precision_at * h).sum(axis=1) / np.minimum(bought, k)
            out.append({"method": method, "k": k, "customers": int(judged.sum()),
                        "hit_rate": float(h.any(axis=1).mean()),
                        "recall": float((h.sum(axis=1) / bought).mean()), "map": float(ap.mean())})
    return pd.DataFrame(out)


def time_split(con: BaseBackend | str | Path | None, cutoff, settings: config.Settings | None = None,
               methods=("popularity", "rules", "similar", "hybrid"), horizon: int = HORIZON_MONTHS,
               ks=KS) -> pd.DataFrame:
    """Fit every method on purchases up to `cutoff` and judge its top-k on the next `horizon`
    months (see :func:`evaluate`)."""
    con = wh.as_connection(con)
    hist = history(con, cutoff)
    scores = score_all(con, hist, settings)
    top = {m: top_k(scores.of(m), max(ks)) for m in methods}
    return evaluate(top, hist, future_purchases(con, cutoff, horizon), ks)


# --- the offers -------------------------------------------------------------------------------

def offers(hist: History, scores: Scores, k: int = 3, method: str = "hybrid",
           upsell: pd.DataFrame | None = None) -> pd.DataFrame:
    """The top-k products per customer with a reason in words: the table ``next_best_offer``.

    Columns: customer_id, as_of, rank (1 = best), product (SKU), category, score (the method's
    score), reason in words: a rule from a product they bought when one with confidence of at
    least RULE_REASON_CONFIDENCE leads to it, else the similar customers (naming the product
    they bought that is most similar to it), else popularity. With `upsell` (customer_id, sku, item: the product
    it moves up from, score: the up-sell probability; see ``upsell.next_tier_offers``), that
    offer takes rank 1 and its score is the up-sell probability.
    """
    values = scores.of(method)
    idx = top_k(values, k)
    n = len(hist.customers)
    rows = np.repeat(np.arange(n), k)
    cols = idx.ravel()
    names = hist.products["product_name"].to_numpy()
    owned = (hist.counts > 0).tocsr()
    reason = []
    for r, c in zip(rows, cols):
        own = owned.indices[owned.indptr[r]:owned.indptr[r + 1]]
        src = scores.rule_source[r, c]
        if src >= 0 and scores.rules[r, c] >= RULE_REASON_CONFIDENCE:
            reason.append(REASONS["rules"].format(item=names[src], confidence=scores.rules[r, c]))
        elif len(own):
            others = own[own != c] if (own != c).any() else own
            closest = others[scores.similarity[others, c].argmax()]
            reason.append(REASONS["similar"].format(item=names[closest]))
        else:
            reason.append(REASONS["popularity"])
    out = pd.DataFrame({"customer_id": hist.customers.to_numpy()[rows],
                        "as_of": hist.as_of.date(), "rank": np.tile(np.arange(1, k + 1), n),
                        "product": hist.products["sku"].to_numpy()[cols],
                        "category": hist.products["category"].to_numpy()[cols],
                        "score": values[rows, cols], "reason": reason})
    if upsell is not None and len(upsell):
        up = upsell.assign(as_of=hist.as_of.date(), rank=0, product=upsell["sku"],
                           reason=[REASONS["upsell"].format(item=i) for i in upsell["item"]])
        up = up.merge(hist.products[["sku", "category"]], on="sku")
        out = out[~out.set_index(["customer_id", "product"]).index.isin(
            up.set_index(["customer_id", "product"]).index)]
        out = pd.concat([up[COLUMNS], out], ignore_index=True).sort_values(["customer_id", "rank"])
        out["rank"] = out.groupby("customer_id").cumcount() + 1
        out = out[out["rank"] <= k]
    return out[COLUMNS].reset_index(drop=True)


def save_offers(offers_: pd.DataFrame, warehouse: Path | str | None = None, reader=None) -> int:
    """Write the offers to the warehouse table ``next_best_offer``: the rows of the same as_of
    are replaced, in one transaction, so a rerun never duplicates. Returns the rows written.

    reader: a read-only connection this process holds on the same file (a notebook's
    ``per_cell`` connection): DuckDB opens a file with one configuration per process, so it is
    closed for the write and reopened after.
    """
    if reader is not None:
        reader.disconnect()
    try:
        return _write_offers(offers_, warehouse)
    finally:
        if reader is not None:
            reader.reconnect()


def _write_offers(offers_: pd.DataFrame, warehouse: Path | str | None) -> int:
    frame = offers_[COLUMNS].copy()
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    dates = sorted(frame["as_of"].unique())
    con = wh.connect(warehouse)
    raw = con.con
    try:
        with wh.transaction(raw):
            raw.execute(f"""CREATE TABLE IF NOT EXISTS {TABLE} (customer_id BIGINT, as_of DATE,
                            rank INTEGER, product VARCHAR, category VARCHAR, score DOUBLE,
                            reason VARCHAR)""")
            for day in dates:
                raw.execute(f"DELETE FROM {TABLE} WHERE as_of = ?", [day])
            raw.register("_offers", frame)
            raw.execute(f"INSERT INTO {TABLE} SELECT {', '.join(COLUMNS)} FROM _offers")
            raw.unregister("_offers")
    finally:
        con.disconnect()
    return len(frame)


METHOD_NAMES = {"popularity": "Popularity (baseline)", "rules": "Association rules",
                "similar": "Similar customers (item-to-item)", "hybrid": "Hybrid"}


def plot_evaluation(evaluation: pd.DataFrame, title: str, metric: str = "hit_rate", ax=None):
    """Bars of one metric (hit_rate, recall or map) at each k, one colour per method."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from crm_helpers import plots

    data = evaluation.assign(method=evaluation["method"].map(METHOD_NAMES).fillna(evaluation["method"]),
                             k=evaluation["k"].map(lambda k: f"top {k}"))
    ax = ax or plt.subplots(figsize=(8, 4.5))[1]
    sns.barplot(data=data, x="k", y=metric, hue="method", ax=ax)
    names = {"hit_rate": "hit rate", "recall": "recall", "map": "mean average precision"}
    return plots.finish(ax, title, x="products offered", y=names[metric], yunit="rate")


def evaluation_table(evaluation: pd.DataFrame) -> pd.DataFrame:
    """The evaluation one row per method, metrics at each k side by side (``hit_rate@3``...)."""
    wide = evaluation.pivot(index="method", columns="k", values=["hit_rate", "recall", "map"])
    wide.columns = [f"{m}@{k}" for m, k in wide.columns]
    order = [m for m in METHOD_NAMES if m in wide.index]
    return wide.loc[order].rename(index=METHOD_NAMES).rename_axis("method")
