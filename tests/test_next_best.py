"""Association rules, next best product and up-sell, checked against the sample world's design.

The designed affinities (truth/category_affinity.csv, affinity_sets.csv) and tiers
(truth/tiers.csv) are what the results are compared with; the engine's itemset counts are
checked against mlxtend's apriori on the one-hot basket matrix (an independent computation).
"""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest
from mlxtend.frequent_patterns import apriori
from scipy.stats import spearmanr

from crm_helpers import config, truth
from crm_helpers import warehouse as wh
from crm_helpers.knowledge import next_best, rules, upsell

LADDER = config.Settings().tier_ladder


def category_rules(warehouse, **kwargs):
    with wh.reading(warehouse) as con:
        sets, baskets = rules.itemset_counts(rules.basket_items(con, **kwargs))
    return sets, baskets, rules.mine_rules(sets, baskets)


def test_engine_counts_equal_apriori_on_the_one_hot_matrix(small_warehouse):
    with wh.reading(small_warehouse) as con:
        items = rules.basket_items(con)
        sets, baskets = rules.itemset_counts(items, min_support=0.01)
        lines = items.execute()  # once: two executions need not return rows in the same order
        onehot = pd.crosstab(lines["order_id"], lines["item"]) > 0
    reference = apriori(onehot, min_support=0.01, use_colnames=True, max_len=3)
    assert baskets == len(onehot)
    ours = dict(zip(sets["itemsets"], sets["support"]))
    theirs = dict(zip(reference["itemsets"], reference["support"]))
    assert ours.keys() == theirs.keys()
    assert max(abs(ours[k] - theirs[k]) for k in ours) < 1e-12


def test_small_world_rules_rank_designed_pairs_first(small_warehouse, small_truth_dir):
    _, _, mined = category_rules(small_warehouse)
    affinity = truth.read_truth("category_affinity", small_truth_dir)
    against = rules.rules_against_design(mined, affinity)
    strong = against.loc[against["kind"] == "strong", "lift"]
    none = against.loc[against["kind"] == "none", "lift"]
    assert strong.min() > none.median()
    assert rules.designed_among_top(mined, affinity) >= 7


def test_save_offers_replaces_the_same_as_of(small_warehouse, tmp_path):
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(small_warehouse, copy)
    offers = pd.DataFrame({"customer_id": [1, 1, 2], "as_of": pd.Timestamp("2025-12-31").date(),
                           "rank": [1, 2, 1], "product": ["A", "B", "A"], "category": "X",
                           "score": [0.9, 0.5, 0.7], "reason": "popular"})
    assert next_best.save_offers(offers, copy) == 3
    assert next_best.save_offers(offers.head(2), copy) == 2
    other = offers.assign(as_of=pd.Timestamp("2025-09-30").date())
    next_best.save_offers(other, copy)
    with duckdb.connect(str(copy), read_only=True) as con:
        counts = dict(con.execute("SELECT as_of::VARCHAR, count(*) FROM next_best_offer GROUP BY 1").fetchall())
    assert counts == {"2025-12-31": 2, "2025-09-30": 3}


def test_durable_products_owned_are_not_offered_again(small_warehouse):
    with wh.reading(small_warehouse) as con:
        hist = next_best.history(con, "2025-09-30")
        settings = config.Settings(durable_categories=("Electronics",))
        scores = next_best.score_all(con, hist, settings)
    top = next_best.top_k(scores.of("hybrid"), 5)
    owned = (hist.counts > 0).toarray()
    electronics = hist.products["category"].eq("Electronics").to_numpy()
    offered_again = np.take_along_axis(owned & electronics[None, :], top, axis=1)
    assert scores.excluded.any() and not offered_again.any()


def test_small_world_next_best_beats_popularity(small_warehouse):
    with wh.reading(small_warehouse) as con:
        ev = next_best.time_split(con, "2025-09-30").set_index(["method", "k"])
    assert ev.loc[("similar", 3), "hit_rate"] > 1.15 * ev.loc[("popularity", 3), "hit_rate"]


# --- the default 20k world ------------------------------------------------------------------

@pytest.fixture(scope="module")
def mined_20k(world_20k):
    return category_rules(world_20k / "warehouse.duckdb")


@pytest.mark.slow
def test_rule_confidence_follows_the_designed_affinity(world_20k, mined_20k):
    _, _, mined = mined_20k
    affinity = truth.read_truth("category_affinity", world_20k / "truth")
    against = rules.rules_against_design(mined, affinity)
    assert len(against) == 56  # every ordered pair of 8 categories
    assert spearmanr(against["confidence"], against["strength"]).statistic >= 0.6
    assert rules.designed_among_top(mined, affinity, 11) >= 9
    # Observed lifts are the designed ones, Beauty - Electronics (no affinity, mix) included.
    assert ((against["lift"] / against["designed_lift"] - 1).abs() < 0.06).all()


@pytest.mark.slow
def test_the_three_item_set_and_the_spring_pair_are_found(world_20k, mined_20k):
    sets, _, mined = mined_20k
    design = truth.read_truth("affinity_sets", world_20k / "truth").iloc[0]
    members = frozenset(design["categories"].split(" + "))
    assert rules.lift_over_pairs(sets, members) == pytest.approx(float(design["designed_lift_over_pairs"]), rel=0.15)
    top_triple = mined[mined["size"] == 3].iloc[0]
    assert top_triple["antecedents"] | top_triple["consequents"] == members
    affinity = truth.read_truth("category_affinity", world_20k / "truth")
    spring = affinity[affinity["kind"] == "seasonal"].iloc[0]
    months = [int(m) for m in spring["season_months"].split()]
    _, _, in_season = category_rules(world_20k / "warehouse.duckdb", months=months)
    pair = rules.pair_lifts(in_season).set_index(["item_a", "item_b"])
    key = tuple(sorted((spring["category_a"], spring["category_b"])))
    assert pair.loc[key, "lift"] == pytest.approx(float(spring["designed_lift_in_season"]), rel=0.08)


@pytest.mark.slow
def test_next_best_product_beats_popularity_on_the_next_quarter(world_20k):
    with wh.reading(world_20k / "warehouse.duckdb") as con:
        ev = next_best.time_split(con, "2025-09-30").set_index(["method", "k"])
    baseline = ev.loc[("popularity", 3), "hit_rate"]
    assert ev.loc[("hybrid", 3), "hit_rate"] >= 1.3 * baseline
    assert ev.loc[("similar", 3), "hit_rate"] >= 1.3 * baseline


@pytest.mark.slow
def test_upsell_score_finds_customers_above_their_buying_tier(world_20k):
    with wh.reading(world_20k / "warehouse.duckdb") as con:
        model, scored, observed = upsell.quarter_model(con, "2025-09-30", LADDER)
        designed = upsell.designed_above(con, scored, "2025-09-30", LADDER, world_20k / "truth")
    assert upsell.auc(scored["upsell_score"], observed) > 0.6
    assert upsell.auc(scored["upsell_score"], designed) >= 0.7
