"""Contact optimisation: the rules always hold, the exact and relaxed solvers agree, a known optimum is found."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_helpers.wisdom import optimise as opt

COLUMNS = ["customer_id", "channel", "offer", "uplift", "p_response", "value", "expected_margin", "cost", "allowed"]


def _table(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["customer_id", "channel", "offer", "uplift", "value", "cost", "allowed"])
    df["p_response"] = 0.1
    df["expected_margin"] = df["uplift"] * df["value"]
    return df[COLUMNS]


def test_tiny_instance_known_optimum():
    # Net values (uplift x value - cost; costs are exact in binary so sums are exact):
    #   customer 1: email 9.875, sms 14.75 (conflicts with email on the same offer), call 15 (cost 5)
    #   customer 2: email 4.875, sms 7.75; customer 3: email 2.875, no consent for sms, win-back < 0.
    # Budget 5.375, one contact each, at most 1 call: the call for customer 1 (15, cost 5) leaves
    # 0.375, exactly customer 2's sms (7.75, 0.25) and customer 3's e-mail (2.875, 0.125): 25.625.
    # Without the call (sms, sms, email) it is 14.75 + 7.75 + 2.875 = 25.375.
    candidates = _table([
        (1, "email", "cross_sell", 0.1, 100, 0.125, True),
        (1, "sms", "cross_sell", 0.15, 100, 0.25, True),
        (1, "call", "cross_sell", 0.2, 100, 5.0, True),
        (2, "email", "cross_sell", 0.05, 100, 0.125, True),
        (2, "sms", "cross_sell", 0.08, 100, 0.25, True),
        (2, "call", "cross_sell", 0.5, 100, 5.0, False),
        (3, "email", "cross_sell", 0.03, 100, 0.125, True),
        (3, "sms", "cross_sell", 0.9, 100, 0.25, False),
        (3, "email", "win_back", 0.0, 100, 0.125, True),
    ])
    for method in ("milp", "lagrangian"):
        plan = opt.optimise(candidates, budget=5.375, capacity={"call": 1}, method=method)
        picked = set(zip(plan.chosen.customer_id, plan.chosen.channel))
        assert picked == {(1, "call"), (2, "sms"), (3, "email")}, method
        assert plan.objective == pytest.approx(25.625)
        assert plan.bound >= plan.objective - 1e-9
    # with room for two contacts each but the e-mail/SMS conflict: customer 1 gets the call and the
    # sms (the e-mail conflicts with the sms), customer 2 only one of e-mail/sms (the sms)
    plan = opt.optimise(candidates, budget=10, capacity={"call": 1}, max_per_customer=2, method="milp")
    assert sorted(zip(plan.chosen.customer_id, plan.chosen.channel)) == [
        (1, "call"), (1, "sms"), (2, "sms"), (3, "email")]
    relaxed = opt.optimise(candidates, budget=10, capacity={"call": 1}, max_per_customer=2, method="lagrangian")
    assert relaxed.objective == pytest.approx(plan.objective)


def test_greedy_takes_the_top_rows_until_the_budget_runs_out():
    candidates = _table([
        (1, "email", "cross_sell", -0.01, 100, 1.0, True),   # a sleeping dog with the best response
        (2, "email", "cross_sell", 0.02, 100, 1.0, True),
        (2, "sms", "cross_sell", 0.02, 100, 0.5, True),      # same response as the e-mail: cheaper first
        (3, "email", "cross_sell", 0.05, 100, 1.0, False),   # no consent
        (4, "email", "cross_sell", 0.01, 100, 2.0, True),    # does not fit: the list stops here
        (5, "email", "cross_sell", 0.01, 100, 0.1, True),
    ])
    candidates["p_response"] = [0.9, 0.5, 0.5, 0.8, 0.4, 0.3]
    plan = opt.greedy(candidates, "p_response", budget=2.0)
    assert list(zip(plan.chosen.customer_id, plan.chosen.channel)) == [(1, "email"), (2, "sms")]
    assert plan.objective == pytest.approx(-2.0 + 1.5)
    table = opt.compare({"greedy": plan, "optimised": opt.optimise(candidates, budget=2.0)})
    assert table.loc["greedy", "sleeping_dogs"] == 1 and table.loc["optimised", "sleeping_dogs"] == 0
    assert table.loc["optimised", "net_margin"] > table.loc["greedy", "net_margin"]
    ax = opt.plot_compare(table)
    assert ax.get_title().startswith("Optimised earns") and "more than greedy" in ax.get_title()


@st.composite
def problems(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_customers = draw(st.integers(1, 12))
    channels = draw(st.lists(st.sampled_from(opt.CHANNELS), min_size=1, max_size=3, unique=True))
    offers = draw(st.lists(st.sampled_from(opt.OFFERS), min_size=1, max_size=3, unique=True))
    rows = [(c, ch, o) for c, ch, o in itertools.product(range(1, n_customers + 1), channels, offers)
            if rng.random() < 0.7]
    n = len(rows)
    candidates = pd.DataFrame(rows, columns=["customer_id", "channel", "offer"])
    candidates["uplift"] = rng.normal(0.03, 0.05, n)  # about a quarter negative
    candidates["p_response"] = rng.random(n)
    candidates["value"] = rng.lognormal(3, 1, n)
    candidates["expected_margin"] = candidates["uplift"] * candidates["value"]
    candidates["cost"] = rng.choice([0.0, 0.05, 0.12, 1.0, 4.5], n)
    candidates["allowed"] = rng.random(n) < draw(st.floats(0.2, 1.0))
    budget = draw(st.floats(0, 20))
    capacity = {ch: draw(st.integers(0, 6)) for ch in channels if draw(st.booleans())}
    k = draw(st.integers(0, 3))
    conflicts = tuple(draw(st.lists(st.sampled_from(list(itertools.combinations(opt.CHANNELS, 2))), max_size=3,
                                    unique=True)))
    return candidates[COLUMNS], budget, capacity, k, conflicts


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_no_plan_ever_breaks_a_rule(problem):
    candidates, budget, capacity, k, conflicts = problem
    rules = dict(budget=budget, capacity=capacity, max_per_customer=k, conflicts=conflicts)
    plans = {m: opt.optimise(candidates, method=m, **rules) for m in ("milp", "lagrangian")}
    plans |= {f"greedy {key}": opt.greedy(candidates, key, **rules) for key in ("p_response", "expected_margin")}
    for name, plan in plans.items():
        chosen = plan.chosen
        assert chosen.index.is_unique and chosen.index.isin(candidates.index).all(), name
        assert chosen["allowed"].all(), f"{name} contacts a customer without consent"
        assert opt.violations(plan, **rules) == [], name
        assert plan.cost <= budget + 1e-9, name
        assert (chosen.groupby("customer_id").size() <= k).all(), name
        for a, b in conflicts:
            both = chosen[chosen.channel.isin([a, b])].groupby(["customer_id", "offer"]).channel.nunique()
            assert (both < 2).all(), f"{name} sends {a} and {b} for the same offer"
    for name in ("milp", "lagrangian"):
        assert (opt.net_value(plans[name].chosen) > 0).all()
    exact, relaxed = plans["milp"], plans["lagrangian"]
    assert relaxed.objective <= exact.bound + 1e-6
    assert exact.objective <= relaxed.bound + 1e-6
    assert exact.objective >= relaxed.objective - 1e-6 * max(1.0, abs(exact.objective))


@pytest.mark.parametrize("max_per_customer", [1, 2])
def test_milp_and_lagrangian_agree_within_the_gap_on_a_small_world_sized_problem(max_per_customer):
    # 2,000 customers x 3 channels x 4 offers, budget and call capacity both binding
    candidates = opt.synthetic_candidates(2_000, seed=7)
    budget, capacity = opt.synthetic_limits(candidates)
    solved = opt.solve_both(candidates, budget, capacity, max_per_customer)
    exact, relaxed = solved["milp"], solved["lagrangian"]
    assert exact.method == "milp" and relaxed.method == "lagrangian"
    table = opt.solver_table(solved)
    assert list(table.index) == ["milp", "lagrangian"] and table["contacts"].dtype.kind == "i"
    assert exact.objective <= relaxed.bound + 1e-6  # the Lagrangian bound is a true upper bound
    assert exact.objective - relaxed.objective <= relaxed.gap * relaxed.bound + 1e-6
    assert relaxed.gap <= opt.TARGET_GAP
    prices = relaxed.details["prices"]  # a positive price: the limit binds
    assert prices["budget"] > 0 and (prices["call"] > 0 or max_per_customer > 1), "limits not binding"
    assert opt.violations(exact, budget, capacity, max_per_customer) == []
    assert opt.violations(relaxed, budget, capacity, max_per_customer) == []
