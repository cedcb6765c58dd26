"""Association rules: what is bought together, mined in the engine and read by mlxtend.

A basket is an order's purchase lines (returns are not purchases; anonymous walk-in receipts are
baskets too), reduced to its distinct *items*: categories or products. The counts that need the
transactions run in the engine as Ibis expressions: how many baskets hold each item, and each
pair and triple of items (self-joins of the basket lines on the order, kept only when frequent,
the apriori principle: a pair can only be frequent if both its items are). Only the frequent
itemsets (a few hundred rows) come back to pandas, where mlxtend's ``association_rules`` turns
them into rules with support, confidence and lift.

Lift compares a pair with independence, so it mixes affinity with who buys: a segment that buys
long baskets of two categories lifts their pair with no affinity at all. :func:`stratified_lift`
compares within strata (segments, basket sizes) and pools them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis.backends import BaseBackend

with warnings.catch_warnings():  # mlxtend turns every DeprecationWarning on, process-wide, at import
    from mlxtend.frequent_patterns import association_rules

from crm_helpers import warehouse as wh
from crm_helpers.information import star

#: Minimum share of baskets holding an itemset for it to count as frequent.
MIN_SUPPORT = 0.005
#: Largest itemset counted (pairs and triples).
MAX_SIZE = 3
LEVELS = {"category": "category", "product": "sku"}


def basket_items(con: BaseBackend | str | Path | None = None, level: str = "category", start=None,
                 end=None, months=None, identified_only: bool = False) -> ir.Table:
    """Distinct (order_id, item) of purchase lines, an Ibis expression.

    level: ``category`` or ``product`` (the SKU); start / end: first and last order day kept;
    months: calendar months kept (1-12), e.g. a season; identified_only: only orders of known
    customers (for a history per customer). Columns: order_id, customer_id, order_date, item.
    """
    lines = star.order_lines(wh.as_connection(con))
    lines = lines.filter(lines.is_purchase)
    if identified_only:
        lines = lines.filter(lines.customer_id.notnull())
    if start is not None:
        lines = lines.filter(lines.order_date >= pd.Timestamp(start).date())
    if end is not None:
        lines = lines.filter(lines.order_date <= pd.Timestamp(end).date())
    if months is not None:
        lines = lines.filter(lines.order_date.month().isin([int(m) for m in months]))
    return lines.select("order_id", "customer_id", "order_date", item=lines[LEVELS[level]]).distinct()


def itemset_counts(items: ir.Table, min_support: float = MIN_SUPPORT,
                   max_size: int = MAX_SIZE) -> tuple[pd.DataFrame, int]:
    """Frequent itemsets of the baskets in `items` (basket_items), counted in the engine.

    Returns (frame, baskets): frame has ``itemsets`` (frozensets), ``support`` (share of
    baskets) and ``count``, every itemset of 1 to `max_size` items with support at least
    `min_support`, the input mlxtend's ``association_rules`` expects; baskets is their number.
    """
    items = items.select("order_id", "item").distinct()
    baskets = int(items.order_id.nunique().execute())
    floor = max(1, int(-(-min_support * baskets // 1)))  # ceil: at least min_support of baskets
    singles = items.group_by("item").aggregate(count=items.count())
    singles = singles.filter(singles["count"] >= floor)
    frequent = items.semi_join(singles, "item")
    cols = ["i1"]
    level = frequent.select("order_id", i1=frequent.item)
    parts = [singles.rename(i1="item").execute()]
    for size in range(2, max_size + 1):
        nxt = frequent.view()
        col = f"i{size}"
        level = level.join(nxt, [level.order_id == nxt.order_id, level[cols[-1]] < nxt.item]) \
            .select("order_id", *cols, **{col: nxt.item})
        cols.append(col)
        counted = level.group_by(cols).aggregate(count=level.count())
        counted = counted.filter(counted["count"] >= floor)
        frame = counted.execute()
        if frame.empty:
            break
        parts.append(frame)
        # Apriori: a larger set can only be frequent if this one is, so extend only these.
        level = level.semi_join(counted.select(*cols), cols)
    rows = []
    for frame in parts:
        names = [c for c in frame.columns if c.startswith("i")]
        rows.append(pd.DataFrame({"itemsets": [frozenset(r) for r in frame[names].itertuples(index=False)],
                                  "count": frame["count"].astype(int).to_numpy()}))
    out = pd.concat(rows, ignore_index=True)
    out["support"] = out["count"] / baskets
    out["size"] = out["itemsets"].map(len)
    return out.sort_values(["size", "count"], ascending=[True, False], ignore_index=True), baskets


def mine_rules(itemsets: pd.DataFrame, baskets: int, min_confidence: float = 0.0) -> pd.DataFrame:
    """Association rules of frequent itemsets (itemset_counts) by mlxtend, sorted by lift.

    Returns one row per rule: antecedents, consequents (frozensets), support, confidence, lift
    and a readable ``rule`` ("Clothing → Footwear"), with confidence at least `min_confidence`.
    """
    rules = association_rules(itemsets[["support", "itemsets"]], num_itemsets=baskets,
                              metric="confidence", min_threshold=min_confidence)
    rules["rule"] = rules["antecedents"].map(_label) + " → " + rules["consequents"].map(_label)
    rules["size"] = rules["antecedents"].map(len) + rules["consequents"].map(len)
    keep = ["rule", "antecedents", "consequents", "size", "antecedent support", "consequent support",
            "support", "confidence", "lift"]
    return rules[keep].sort_values(["lift", "rule"], ascending=[False, True], ignore_index=True)


def _label(items) -> str:
    return " + ".join(sorted(items))


def pair_lifts(rules: pd.DataFrame) -> pd.DataFrame:
    """One row per unordered pair of the two-item rules: support, lift and both confidences.

    Columns: item_a, item_b (alphabetical), support, lift, confidence_ab (a → b),
    confidence_ba (b → a).
    """
    two = rules[rules["size"] == 2]
    a = two["antecedents"].map(lambda s: next(iter(s)))
    b = two["consequents"].map(lambda s: next(iter(s)))
    frame = pd.DataFrame({"a": a, "b": b, "support": two["support"], "lift": two["lift"],
                          "confidence": two["confidence"]})
    forward = frame[frame["a"] < frame["b"]].rename(columns={"a": "item_a", "b": "item_b",
                                                             "confidence": "confidence_ab"})
    backward = frame[frame["a"] > frame["b"]].rename(columns={"b": "item_a", "a": "item_b",
                                                              "confidence": "confidence_ba"})
    out = forward.merge(backward[["item_a", "item_b", "confidence_ba"]], on=["item_a", "item_b"])
    return out.sort_values("lift", ascending=False, ignore_index=True)


def lift_over_pairs(itemsets: pd.DataFrame, triple) -> float:
    """How much more often the three items come together than their pairs imply:
    P(abc) P(a) P(b) P(c) / (P(ab) P(ac) P(bc)) (1 when the triple adds nothing to its pairs)."""
    support = dict(zip(itemsets["itemsets"], itemsets["support"]))
    a, b, c = sorted(triple)
    singles = support[frozenset([a])] * support[frozenset([b])] * support[frozenset([c])]
    pairs = support[frozenset([a, b])] * support[frozenset([a, c])] * support[frozenset([b, c])]
    return support[frozenset([a, b, c])] * singles / pairs


def stratified_lift(items: ir.Table, strata: ir.Table, pair) -> pd.DataFrame:
    """Lift of one pair of items within each stratum of baskets, and pooled.

    items: basket_items; strata: an Ibis table of order_id and ``stratum`` (a segment, a
    basket size); pair: the two items. Returns one row per stratum (baskets, support of each
    item and of the pair, lift) plus a row ``pooled``: the baskets-weighted mean of the
    within-stratum lifts (the lift the pair would show if every stratum had the same mix).
    """
    a, b = pair
    per_order = items.group_by("order_id").aggregate(
        has_a=(items.item == a).max().cast("int64"), has_b=(items.item == b).max().cast("int64"))
    joined = per_order.join(strata, "order_id")
    counts = joined.group_by("stratum").aggregate(
        baskets=joined.count(), with_a=joined.has_a.sum(), with_b=joined.has_b.sum(),
        with_both=(joined.has_a * joined.has_b).sum()).execute().set_index("stratum").sort_index()
    counts["lift"] = counts["with_both"] * counts["baskets"] / (counts["with_a"] * counts["with_b"])
    valid = counts["lift"].notna() & (counts["with_both"] > 0)
    weights = counts.loc[valid, "baskets"]
    pooled = (counts.loc[valid, "lift"] * weights).sum() / weights.sum()
    counts.loc["pooled", ["baskets", "lift"]] = [counts["baskets"].sum(), pooled]
    return counts


def basket_sizes(items: ir.Table) -> ir.Table:
    """Each basket's number of distinct items as its stratum (order_id, stratum)."""
    return items.group_by("order_id").aggregate(stratum=items.item.nunique())


def customer_strata(items: ir.Table, labels: pd.Series) -> ir.Table:
    """Each identified basket's stratum from a label per customer (e.g. a segment cluster):
    an Ibis table (order_id, stratum) joined in the engine."""
    frame = pd.DataFrame({"customer_id": labels.index.astype("int64"), "stratum": labels.to_numpy()})
    mapped = items.select("order_id", "customer_id").distinct().join(ibis.memtable(frame), "customer_id")
    return mapped.select("order_id", "stratum")




# --- against the design (the sample world's truth) ------------------------------------------

def designed_pairs(affinity: pd.DataFrame) -> pd.DataFrame:
    """The truth's ``category_affinity`` keyed by the sorted pair (item_a, item_b)."""
    a = affinity[["category_a", "category_b"]].min(axis=1)
    b = affinity[["category_a", "category_b"]].max(axis=1)
    return affinity.assign(item_a=a, item_b=b)


def rules_against_design(rules: pd.DataFrame, affinity: pd.DataFrame) -> pd.DataFrame:
    """The two-item rules beside their pair's designed kind, strength and lift."""
    two = rules[rules["size"] == 2].copy()
    pair = [sorted(a | c) for a, c in zip(two["antecedents"], two["consequents"])]
    two["item_a"], two["item_b"] = [p[0] for p in pair], [p[1] for p in pair]
    keep = ["item_a", "item_b", "kind", "strength", "designed_lift"]
    return two.merge(designed_pairs(affinity)[keep], on=["item_a", "item_b"], how="left")


#: Kinds of designed pairs that carry an affinity (in_set pairs only act within the three-item set).
AFFINITY_KINDS = ("strong", "weak", "seasonal")


def designed_among_top(rules: pd.DataFrame, affinity: pd.DataFrame, n: int = 11) -> int:
    """How many of the `n` two-item rules with the highest lift are designed pairs."""
    against = rules_against_design(rules, affinity).sort_values("lift", ascending=False, kind="stable")
    return int(against.head(n)["kind"].isin(AFFINITY_KINDS).sum())



def plot_against_design(against: pd.DataFrame, title: str, ax=None):
    """Each category pair's observed lift (dot, coloured by the kind of pair) beside its designed
    lift (cross), pairs sorted by designed lift."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from crm_helpers import plots

    pairs = against.drop_duplicates(["item_a", "item_b"]).sort_values("designed_lift", ascending=False)
    pairs = pairs.assign(pair=pairs["item_a"] + " – " + pairs["item_b"])
    ax = ax or plt.subplots(figsize=(9, 0.28 * len(pairs) + 1.5))[1]
    ax.scatter(pairs["designed_lift"], pairs["pair"], marker="x", color="0.3", s=40, label="designed lift", zorder=3)
    sns.scatterplot(data=pairs, x="lift", y="pair", hue="kind", s=45, ax=ax, zorder=2)
    ax.axvline(1, color="0.6", lw=1, ls="--")
    ax.set_xlim(0, None)
    return plots.finish(ax, title, x="lift", y="category pair", xunit="number")


def mean_basket_size(items: ir.Table, item=None) -> float:
    """Mean number of distinct items per basket, over every basket or those holding `item`."""
    sizes = basket_sizes(items)
    if item is not None:
        sizes = sizes.semi_join(items.filter(items.item == item), "order_id")
    return float(sizes.stratum.mean().execute())
