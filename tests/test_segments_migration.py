"""Unit tests of notebook 04's helpers: the choice of k, segment names, migration and the tier model
on hand-made data; assign_segments on the small world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_helpers import warehouse as wh
from crm_helpers.knowledge import migration, segments


def test_choose_k_takes_the_largest_stable_k_near_the_best_silhouette():
    evidence = pd.DataFrame({"silhouette": [0.30, 0.31, 0.305, 0.30, 0.20],
                             "bic": [100.0, 90.0, 80.0, 85.0, 70.0],
                             "stability": [1.0, 1.0, 0.95, 0.99, 0.99]}, index=pd.Index([2, 3, 4, 5, 6], name="k"))
    assert segments.choose_k(evidence) == 4  # 5: BIC rises; 6: silhouette far below the best
    evidence.loc[4, "stability"] = 0.5
    assert segments.choose_k(evidence) == 3
    evidence["stability"] = 0.1
    assert segments.choose_k(evidence) == 3  # nothing stable: the best silhouette


def test_segment_names_follow_the_profile_not_the_cluster_number():
    profile = pd.DataFrame({
        "rate_index": [8.0, 2.0, 1.0, 0.4], "customer_share": [0.04, 0.2, 0.36, 0.4],
        "web_share": [0.2, 0.8, 0.5, 0.9], "top_category": ["Electronics", "Clothing", "Home", "Accessories"],
    }, index=[3, 0, 2, 1])
    names = segments.segment_names(profile, web_channel="online", store_channel="shop")
    assert list(names) == ["Elite (shop, electronics)", "Loyal (online, clothing)", "Regular (mixed, home)",
                           "Occasional (online, accessories)"]
    assert list(segments.is_elite(names)) == [True, False, False, False]
    # a large segment buying that often is not an elite; colliding names get a number
    profile["customer_share"] = [0.5, 0.2, 0.2, 0.1]
    profile["rate_index"] = [8.0, 2.0, 2.0, 0.4]
    profile["web_share"] = [0.2, 0.8, 0.8, 0.9]
    profile["top_category"] = ["Electronics", "Clothing", "Clothing", "Accessories"]
    names = segments.segment_names(profile)
    assert names.iloc[0].startswith("Frequent") and names.iloc[2] == "Loyal (web, clothing) 2"


def test_moves_count_up_down_and_left():
    order = ["A", "B", "C"]
    before = pd.Categorical(["A", "A", "B", "B", "C", "C", "new"], [migration.NEW, *order], ordered=True)
    after = pd.Categorical(["A", migration.LEFT, "A", "C", "B", "C", "B"], [*order, migration.LEFT], ordered=True)
    got = migration.moves(pd.DataFrame({"before": before, "after": after}))
    assert got.loc["A", ["stayed", "left"]].tolist() == [1, 1]
    assert got.loc["B", ["moved up", "moved down"]].tolist() == [1, 1]
    assert got.loc["C", ["moved up", "stayed"]].tolist() == [1, 1]
    assert migration.NEW not in got.index
    matrix = migration.transition_matrix(pd.Series(before), pd.Series(after))
    assert np.allclose(matrix.sum(axis=1), 1) and matrix.loc["new", "B"] == 1


def simulated_tier_lines(seed: int = 0, customers: int = 3000, quarters: int = 8, own: float = 0.8):
    """Customers drifting between 3 tiers by a known matrix, buying 1-3 lines a quarter, `own` of
    them from their tier (the rest from the other two at random)."""
    rng = np.random.default_rng(seed)
    a = np.array([[0.95, 0.05, 0.0], [0.04, 0.92, 0.04], [0.0, 0.06, 0.94]])
    state = rng.choice(3, customers, p=[0.5, 0.3, 0.2])
    rows, truth = [], []
    labels = [f"2024Q{q + 1}" if q < 4 else f"2025Q{q - 3}" for q in range(quarters)]
    for q in range(quarters):
        if q:
            new = np.array([rng.choice(3, p=a[s]) for s in state])
            truth.append(pd.crosstab(state, new))
            state = new
        n = rng.integers(1, 4, customers)
        for i in range(customers):
            for _ in range(n[i]):
                tier = state[i] if rng.random() < own else (state[i] + rng.integers(1, 3)) % 3
                rows.append((i, labels[q], ["basic", "plus", "premium"][tier]))
    lines = pd.DataFrame(rows, columns=["customer_id", "quarter", "tier"])
    lines = lines.groupby(["customer_id", "quarter", "tier"]).size().rename("lines").reset_index()
    return lines, a


def test_the_tier_model_recovers_the_transitions_through_stray_lines():
    lines, a = simulated_tier_lines()
    model = migration.fit_tier_model(lines, ["basic", "plus", "premium"])
    assert np.abs(model.transition - a).max() < 0.02, model.transition
    assert np.allclose(np.diag(model.emission), 0.8, atol=0.02)
    transitions = migration.tier_transitions(model)
    assert np.allclose(migration.pooled_matrix(transitions).sum(axis=1), 1)
    naive = migration.naive_transitions(lines, ["basic", "plus", "premium"])
    assert migration.moving_share(naive) > 3 * migration.moving_share(transitions)
    assert migration.compare_transitions(transitions, transitions)["max_gap"].max() == 0
    decoded = migration.decoded_tiers(model)
    assert decoded.shape == (3000, 8) and decoded.notna().all().all()


def test_assign_segments_gives_every_segmentable_customer_a_named_segment(small_warehouse):
    with wh.reading(small_warehouse) as con:
        got = segments.assign_segments(con, as_of="2025-06-30")
        features = segments.customer_features(con, as_of="2025-06-30")
        again = segments.assign_segments(con, as_of="2025-06-30")
    assert list(got.columns) == ["customer_id", "segment"]
    assert set(got["customer_id"]) == set(features.index) and got["customer_id"].is_unique
    assert got["segment"].nunique() == segments.DEFAULT_K and segments.is_elite(got["segment"]).any()
    pd.testing.assert_frame_equal(got, again)  # deterministic
    assert features["recency_days"].min() >= 0  # nothing after as_of
