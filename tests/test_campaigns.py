"""Campaign candidates: consent is never broken, the eligibility rules hold, hold-outs are sized
by their stated rule, and the campaign settings are read and checked like every other setting."""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest

from crm_helpers import config, privacy
from crm_helpers import warehouse as wh
from crm_helpers.wisdom import campaigns, handoff

AS_OF = date(2025, 12, 31)


def stub_uplift(ids, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stand-in for wisdom.uplift's predictions (tests only): uplift and P(buy | contacted) per
    customer x channel, some uplifts negative."""
    rng = np.random.default_rng(seed)
    uplift = pd.DataFrame({c: rng.normal(0.03, 0.04, len(ids)) for c in ("email", "sms", "call")}, index=ids)
    return uplift, (uplift + rng.uniform(0.1, 0.4, len(ids))[:, None]).clip(0, 1)


def add_knowledge(warehouse, seed: int = 0) -> None:
    """Synthetic customer_scores and next_best_offer (one cross-sell offer for everyone, an
    up-sell for some) for every customer who bought, as notebooks 05 and 06 would write them."""
    from crm_helpers.knowledge import next_best, scores

    with wh.reading(warehouse) as con:
        values = campaigns.customer_values(con, AS_OF)
        skus = con.table("dim_product").sku.execute().sort_values().tolist()
    rng = np.random.default_rng(seed)
    n = len(values)
    known = pd.DataFrame({"customer_id": values.index, "segment": "Regular", "p_alive": rng.uniform(0, 1, n),
                          "expected_purchases_365d": rng.uniform(0, 5, n), "clv": rng.uniform(0, 500, n),
                          "churn_probability": rng.uniform(0, 1, n)})
    scores.write_customer_scores(warehouse, known, AS_OF, "test")
    cross = pd.DataFrame({"customer_id": values.index, "as_of": AS_OF, "rank": 2,
                          "product": rng.choice(skus, n), "category": "x", "score": 1.0, "reason": "popular"})
    up = cross.sample(frac=0.2, random_state=seed).assign(rank=1, reason="next tier of Something (up-sell)")
    next_best.save_offers(pd.concat([up, cross], ignore_index=True), warehouse)


@pytest.fixture(scope="module")
def scored(small_warehouse, tmp_path_factory):
    """A copy of the small warehouse with knowledge tables, some consent flags unknown."""
    copy = tmp_path_factory.mktemp("campaigns") / "warehouse.duckdb"
    shutil.copy(small_warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("DROP TABLE IF EXISTS campaign_plan")  # notebook 08 may have planned on the small world
        con.execute("UPDATE dim_customer SET do_not_contact = NULL WHERE customer_id % 17 = 0")
        con.execute("UPDATE dim_customer SET sms_opt_in = NULL WHERE customer_id % 13 = 0")
        con.execute("UPDATE dim_customer SET phone = NULL WHERE customer_id % 11 = 0")
    add_knowledge(copy)
    return copy


@pytest.fixture(scope="module")
def table(scored):
    with wh.reading(scored) as con:
        ids = con.table("dim_customer").customer_id.execute()
        uplift, p_response = stub_uplift(ids)
        return campaigns.candidates(con, AS_OF, uplift, p_response)


def test_candidates_follow_the_contract(table):
    assert list(table.columns[:len(campaigns.COLUMNS)]) == campaigns.COLUMNS
    assert set(table["offer"]) == set(campaigns.OFFERS) and set(table["channel"]) == {"email", "sms", "call"}
    assert table["customer_id"].dtype == "int64" and table["allowed"].dtype == bool
    assert np.allclose(table["expected_margin"], table["uplift"] * table["value"])
    assert table.set_index("channel")["cost"].groupby(level=0).first().to_dict() == config.Settings().contact_costs
    assert not table.duplicated(["customer_id", "channel", "offer"]).any()


def test_candidates_never_allow_a_contact_without_consent_or_on_do_not_contact(scored, table):
    with wh.reading(scored) as con:
        people = con.table("dim_customer").select("customer_id", "email_opt_in", "sms_opt_in", "do_not_contact",
                                                  "email", "phone").execute().set_index("customer_id")
    rows = table.join(people, on="customer_id")
    consent = {"email": rows["email_opt_in"], "sms": rows["sms_opt_in"], "call": rows["sms_opt_in"]}
    field = {"email": rows["email"], "sms": rows["phone"], "call": rows["phone"]}
    for channel in ("email", "sms", "call"):
        mine = rows["channel"] == channel
        ok = consent[channel][mine].fillna(False).astype(bool) & (rows.loc[mine, "do_not_contact"] == False)  # noqa: E712
        ok &= field[channel][mine].notna()
        assert not (rows.loc[mine, "allowed"] & ~ok).any(), f"{channel}: a contact allowed without consent"
        assert (rows.loc[mine, "allowed"] == ok).all(), f"{channel}: a consenting customer left out"
    assert rows["allowed"].any() and not rows["allowed"].all()
    assert not rows.loc[rows["do_not_contact"].isna(), "allowed"].any(), "unknown do-not-contact counts as yes"


def test_eligibility_rules(scored, table):
    rules = campaigns.Rules()
    with wh.reading(scored) as con:
        known = con.table("customer_scores").execute().set_index("customer_id")
    offers = table.drop(columns="clv").drop_duplicates(["customer_id", "offer"]).join(known, on="customer_id")
    retention, win_back = offers[offers["offer"] == "retention"], offers[offers["offer"] == "win_back"]
    assert (retention["churn_probability"] >= rules.retention_churn).all()
    assert (retention["p_alive"] >= rules.win_back_p_alive).all() and (win_back["p_alive"] < rules.win_back_p_alive).all()
    assert (offers.loc[offers["offer"] == "cross_sell", "p_alive"] >= rules.cross_sell_p_alive).all()
    assert len(retention) and len(win_back)
    assert (offers.loc[offers["offer"].isin(["retention", "win_back"]), "value"] > 0).all()


def test_no_sms_within_days_of_an_email_on_the_same_offer(scored, tmp_path):
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(scored, copy)
    with wh.reading(copy) as con:
        ids = con.table("dim_customer").customer_id.execute()
        uplift, p_response = stub_uplift(ids)
        before = campaigns.candidates(con, AS_OF, uplift, p_response)
    sms = before[(before["channel"] == "sms") & before["allowed"]]
    recent, old = sms.iloc[0], sms.iloc[1]
    emailed = pd.DataFrame({"customer_id": [recent.customer_id, old.customer_id], "channel": "email",
                            "offer": [recent.offer, old.offer], "uplift": 0.1, "expected_margin": 1.0,
                            "arm": "treatment"})
    days = config.Settings().sms_after_email_days
    handoff.record_plan(copy, emailed.iloc[[0]], "E1", pd.Timestamp(AS_OF) - pd.Timedelta(days=days - 1))
    handoff.record_plan(copy, emailed.iloc[[1]], "E2", pd.Timestamp(AS_OF) - pd.Timedelta(days=days))
    with wh.reading(copy) as con:
        after = campaigns.candidates(con, AS_OF, uplift, p_response).set_index(["customer_id", "channel", "offer"])
    assert not after.loc[(recent.customer_id, "sms", recent.offer), "allowed"]
    assert after.loc[(old.customer_id, "sms", old.offer), "allowed"]
    assert after.loc[(recent.customer_id, "email", recent.offer), "allowed"] == \
        before.set_index(["customer_id", "channel", "offer"]).loc[(recent.customer_id, "email", recent.offer), "allowed"]
    changed = (before.set_index(["customer_id", "channel", "offer"])["allowed"] != after["allowed"]).sum()
    assert changed == 1


def test_missing_scores_name_the_notebook_to_run(small_warehouse):
    with wh.reading(small_warehouse) as con:
        if "customer_scores" in con.list_tables():
            pytest.skip("the small warehouse was scored by the notebooks")
        with pytest.raises(campaigns.MissingKnowledge, match="run notebook 05_value_and_risk first"):
            campaigns.eligible_offers(con, AS_OF)


def test_holdout_is_the_smallest_group_with_the_wanted_power():
    size = campaigns.holdout_size(20_000, base_rate=0.10, uplift=0.02, power=0.8)
    assert not size.capped and size.power >= 0.8
    assert campaigns.detection_power(20_000 - size.control + 1, size.control - 1, 0.10, 0.02) < 0.8
    # an even split needs statsmodels' per-group size for equal groups
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize
    even = NormalIndPower().solve_power(proportion_effectsize(0.12, 0.10), alpha=0.05, power=0.8)
    assert size.control < even < 20_000 / 2
    small = campaigns.holdout_size(500, base_rate=0.10, uplift=0.02, max_share=0.2)
    assert small.capped and small.control == 100 and small.power < 0.8


def test_test_and_roll_matches_the_closed_form():
    # Feit & Berman (2019): n* = sqrt(N/4 (s/sigma)^2 + (3/4 (s/sigma)^2)^2) - 3/4 (s/sigma)^2
    assert campaigns.profit_test_size(100, 1.0, 1.0) == 5  # sqrt(25 + 0.5625) - 0.75 = 4.31
    assert campaigns.profit_test_size(10_000, 2.0, 1.0) == 98  # sqrt(10000 + 9) - 3 = 97.04
    assert campaigns.profit_test_size(10_000, 2.0, 0.5) > campaigns.profit_test_size(10_000, 2.0, 1.0)


def test_campaign_settings_survive_the_warehouse_and_are_checked():
    defaults = config.Settings()
    stored = {f.name: json.loads(json.dumps(getattr(defaults, f.name))) for f in fields(defaults)}
    assert config.Settings.from_mapping(stored) == defaults  # as warehouse.settings reads them back
    assert defaults.channels == ("email", "sms", "call") and defaults.channel_capacity == {"call": 2000}
    own = config.Settings.from_mapping({"contact_costs": {"email": 0.02, "sms": 0.08},
                                        "assumed_uplift": {}})
    assert own.channels == ("email", "sms") and own.channel_capacity == {}
    for bad in ({"contact_costs": {"email": -1, "sms": 0.1, "call": 1}}, {"contact_costs": 3},
                {"contact_costs": {"email": 0.1, "fax": 0.1}},
                {"assumed_uplift": {"call": ["pigeon", 2]}}, {"call_minutes": 0}):
        with pytest.raises(config.ConfigError):
            config.Settings.from_mapping(bad)


def test_contactable_follows_the_settings_for_any_channel():
    import ibis
    customers = ibis.memtable(pd.DataFrame({"customer_id": [1, 2, 3], "email_opt_in": [True, True, False],
                                            "sms_opt_in": [True, False, True], "do_not_contact": [False, False, True]}))
    run = lambda t: sorted(t.execute().customer_id)  # noqa: E731
    assert run(privacy.contactable(customers, "call")) == [1]
    assert run(privacy.contactable(customers, "call", {"call": "email_opt_in"})) == [1, 2]
    assert run(privacy.contactable(customers, "fax")) == []


def score_for_campaigns(warehouse, seed: int = 0) -> None:
    """What notebooks 05 and 06 write and the candidates need, computed through the package with
    fast settings: P(alive) and CLV (BG/NBD and Gamma-Gamma, MAP), churn probability (the churn
    model), next best offers with up-sell offers first for the top tenth."""
    from crm_helpers.information import star
    from crm_helpers.knowledge import churn, clv, next_best, scores, upsell

    with wh.reading(warehouse) as con:
        as_of = star.latest_order_date(con)
        settings = wh.settings(con)
        current = clv.rfm_split(clv.purchase_day_table(con), as_of, as_of)
        values = clv.customer_values(clv.fit_bgnbd(current, random_seed=seed),
                                     clv.fit_gamma_gamma(current, random_seed=seed), current)
        cut = churn.default_cut_off(con)
        model = churn.fit(churn.features(con, cut), churn.labels(con, cut), seed=seed)
        values["churn_probability"] = values["customer_id"].map(churn.score(model, churn.features(con, as_of)))
        hist = next_best.history(con, as_of)
        _, ready, _ = upsell.quarter_model(con, as_of, settings.tier_ladder, seed=seed)
        chosen = ready["upsell_score"].nlargest(len(ready) // 10).index
        ups = upsell.next_tier_offers(con, chosen, as_of, settings.tier_ladder, ready)
        offers = next_best.offers(hist, next_best.score_all(con, hist, settings), 3, upsell=ups)
    scores.write_customer_scores(warehouse, values, as_of, "test-fast")
    next_best.save_offers(offers, warehouse)


@pytest.mark.slow
def test_the_optimised_plan_beats_top_n_by_response_in_true_incremental_margin(world_20k, tmp_path):
    """20k: at equal cost, the optimiser's plan earns more TRUE incremental margin (the design's
    individual uplift x the purchase's value, minus the contact cost) than contacting the
    customers most likely to respond."""
    from crm_helpers.information import star
    from crm_helpers.sample import playforward
    from crm_helpers.wisdom import optimise, uplift

    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(world_20k / "warehouse.duckdb", warehouse)
    score_for_campaigns(warehouse)
    with wh.reading(warehouse) as con:
        settings = wh.settings(con)
        as_of = star.latest_order_date(con)
        model = uplift.fit(uplift.campaign_history(con), seed=0, max_iter=60)
        today = uplift.customer_features(con, uplift.as_of_default(con))
        lift, response = campaigns.estimates(model, today, settings.channels, {}, settings.assumed_uplift,
                                             settings.offer_types)
        table = campaigns.candidates(con, as_of, lift, response, settings)
        budget = 0.5 * campaigns.full_cost(table)
        capacity, limit = settings.channel_capacity, settings.max_contacts_per_customer
        plan = optimise.optimise(table, budget, capacity, limit, method="lagrangian")
        spent = plan.chosen["cost"].sum()
        by_response = optimise.greedy(table, "p_response", spent, capacity, limit)

        def true_margin(chosen: pd.DataFrame) -> float:
            truth = playforward.true_uplift(world_20k, con, chosen.assign(campaign_id="P01"), as_of + pd.Timedelta(days=1))
            return float((truth.fillna(0) * chosen["value"] - chosen["cost"]).sum())

        ours, theirs = true_margin(plan.chosen), true_margin(by_response.chosen)
    print(f"spend {spent:,.2f}; true incremental margin net of cost: optimised {ours:,.0f} "
          f"({len(plan.chosen):,} contacts), top N by response {theirs:,.0f} ({len(by_response.chosen):,})")
    assert by_response.chosen["cost"].sum() <= spent + 1e-9
    assert by_response.chosen["cost"].sum() >= 0.95 * spent, "the response plan spends much less: not equal cost"
    assert ours > theirs, f"true incremental margin: optimised {ours:,.0f}, top N by response {theirs:,.0f}"


def test_candidates_take_each_offers_own_uplift_and_offer_types_are_checked(scored, table):
    """With (channel, offer) estimates (campaigns.estimates with Settings.offer_types), each
    candidate row's uplift and P(buy) are its channel's AND offer's; the setting is validated."""
    with wh.reading(scored) as con:
        ids = con.table("dim_customer").customer_id.execute()
        uplift, p_response = stub_uplift(ids)
        shift = {offer: 0.01 * i for i, offer in enumerate(campaigns.OFFERS)}
        by_offer = pd.concat({(c, o): uplift[c] + shift[o] for c in uplift for o in campaigns.OFFERS}, axis=1)
        response = pd.concat({(c, o): p_response[c] for c in p_response for o in campaigns.OFFERS}, axis=1)
        got = campaigns.candidates(con, AS_OF, by_offer, response)
    pd.testing.assert_frame_equal(got.drop(columns=["uplift", "expected_margin"]),
                                  table.drop(columns=["uplift", "expected_margin"]))
    np.testing.assert_allclose(got["uplift"], table["uplift"] + got["offer"].map(shift))
    assert config.Settings().offer_types["win_back"] == "reactivation"
    for bad in ({"offer_types": {"bogof": "discount"}}, {"offer_types": {"win_back": ""}}, {"offer_types": "discount"}):
        with pytest.raises(config.ConfigError):
            config.Settings.from_mapping(bad)


def test_offer_contrast_names_the_channel_and_offers_that_differ_most_for_lapsed_customers():
    lift = pd.DataFrame({("email", "retention"): [0.02, 0.01, 0.03], ("email", "win_back"): [0.01, 0.0, 0.02],
                         ("sms", "retention"): [0.03, -0.01, 0.02], ("sms", "win_back"): [-0.05, -0.02, 0.01]})
    lift.columns = pd.MultiIndex.from_tuples(lift.columns, names=["channel", "offer"])
    by_offer = campaigns.uplift_by_offer(lift, {"retention": "discount", "win_back": "reactivation"},
                                         pd.Series([200, 300, 10]))
    words = campaigns.offer_contrast_words(by_offer, lift, ["email", "sms"])
    assert words.startswith("**What differs.** For lapsed customers the offers differ most by SMS: "
                            "win-back (reactivation) is estimated at -3.5% (sleeping dogs")
    assert "retention (discount) at 1.0%" in words
    assert "By SMS, 2 customers have a negative estimated uplift for win-back, 1 for retention" in words
    assert [campaigns.channel_name(c) for c in ("email", "sms", "call")] == ["e-mail", "SMS", "call"]
