"""Uplift from past campaigns (crm_helpers.wisdom.uplift).

Hand-computed Qini/uplift curves, calibration on hand-made tables and the learners on synthetic
data run fast; the campaign history is checked on the small world against the truth; the
headline checks (Qini of the uplift model beats the response model's; the estimated segment
ranking of uplift is the designed one; sleeping dogs found) run on the 20k world.
"""

from __future__ import annotations

import json
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest

from crm_helpers import truth as tr
from crm_helpers import warehouse as wh
from crm_helpers.wisdom import uplift as up


# --- curves: a hand-computable example ---------------------------------------------------------

# Four customers ranked by score: treated buyer, control non-buyer, treated non-buyer, control buyer.
HAND = dict(bought=[1, 0, 0, 1], treated=[1, 0, 1, 0], score=[4, 3, 2, 1])


def test_qini_and_uplift_curves_by_hand():
    c = up.uplift_curves(**HAND)
    # Qini: R_t(k)/N_t - R_c(k)/N_c with N_t = N_c = 2.
    assert c["share"].tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert c["qini"].tolist() == [0, 0.5, 0.5, 0.5, 0]
    # Uplift: (r_t(k) - r_c(k)) k / N; an empty arm counts 0: 1/4, 2/4, (1/2 - 0) 3/4, 0.
    assert c["uplift"].tolist() == [0, 0.25, 0.5, 0.375, 0]
    # Trapezoids of width 1/4; the random diagonal is flat (overall uplift 0).
    assert up.qini_coefficient(c) == pytest.approx(0.375)
    assert up.auuc(c) == pytest.approx(0.25 / 2 * (0.25 + 0.75 + 0.875 + 0.375))
    # The reverse ranking is as far below the diagonal.
    reverse = up.uplift_curves(HAND["bought"], HAND["treated"], [-s for s in HAND["score"]])
    assert up.qini_coefficient(reverse) == pytest.approx(-0.375)


def test_ties_enter_together_and_weights_act_as_copies():
    tied = up.uplift_curves([1, 0, 0, 1], [1, 0, 1, 0], [1, 1, 1, 1])
    assert tied["share"].tolist() == [0, 1] and tied["qini"].tolist() == [0, 0]
    weighted = up.uplift_curves([1, 0, 1], [1, 0, 0], [3, 2, 1], weight=[1, 2, 1])
    copied = up.uplift_curves([1, 0, 0, 1], [1, 0, 0, 0], [3, 2, 2, 1])
    pd.testing.assert_frame_equal(weighted, copied)


def test_qini_plot_states_the_finding_with_the_legend_outside():
    c = up.uplift_curves(**HAND)
    ax = up.qini_plot({up.SCORES["uplift_x"]: c, up.SCORES["random"]: c})
    assert ax.get_title().startswith(f"Contacting the best 30%: {up.SCORES['uplift_x']} 50.0%")
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1
    assert "%" in ax.get_ylabel() and "%" in ax.get_xlabel()


def test_arm_weights_balance_each_campaign():
    treated = pd.Series([True] * 8 + [False] * 2 + [True] * 5 + [False] * 5)
    share = treated.groupby(np.repeat([0, 1], 10)).transform("mean")
    w = up.arm_weights(treated, share)
    by = pd.DataFrame({"c": np.repeat([0, 1], 10), "t": treated, "w": w}).groupby(["c", "t"])["w"].sum()
    assert np.allclose(by, 10)  # each arm weighs as much as the whole campaign


# --- learners on synthetic data ----------------------------------------------------------------

def as_history(x: pd.DataFrame, campaign: np.ndarray, treated: np.ndarray, bought: np.ndarray, **columns):
    """Synthetic rows shaped like ``uplift.campaign_history``: the features, ids, ``columns``
    (channel, offer type), the arm, each campaign's treatment share and the outcome."""
    return x.assign(customer_id=np.arange(len(x)), campaign_id=campaign.astype(str), **columns, treated=treated,
                    treatment_share=pd.Series(treated).groupby(campaign).transform("mean"), bought=bought)


def fitted(history: pd.DataFrame):
    """``history`` and the small, seeded model the synthetic tests fit on it."""
    return history, up.fit(history, seed=0, max_iter=40, min_samples_leaf=100)


def synthetic_history(n: int = 12_000, seed: int = 1) -> pd.DataFrame:
    """Two channels; uplift 0.2 for recent buyers (recency < 100 days), 0 for others; base rate
    0.2; 30% control in half the campaigns, 50% in the others."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({f: rng.uniform(0, 200, n) for f in up.FEATURES})
    campaign = rng.integers(0, 4, n)
    share = np.where(campaign % 2 == 0, 0.7, 0.5)
    treated = rng.random(n) < share
    uplift = np.where(x["recency_days"] < 100, 0.2, 0.0)
    bought = rng.random(n) < 0.2 + treated * uplift
    return as_history(x, campaign, treated, bought, channel=np.where(campaign < 2, "email", "sms"))


@pytest.fixture(scope="module")
def synthetic_model():
    return fitted(synthetic_history())


def test_learners_recover_who_responds_to_the_contact(synthetic_model):
    history, model = synthetic_model
    recent = history["recency_days"] < 100
    for method in ("x", "t"):
        est = up.predict(model, history, "email", method=method)
        # Boosting with few, shallow trees shrinks the step a little.
        assert est[recent].mean() - est[~recent].mean() == pytest.approx(0.2, abs=0.08), method
        assert abs(est[~recent].mean()) < 0.03, method
    scored = up.score_rows(model, history)
    result = up.evaluate(scored, by=None)["qini"]
    assert result[("all", up.SCORES["uplift_x"])] > result[("all", up.SCORES["p_response"])]


def test_predict_borrows_and_calibrates(synthetic_model):
    history, model = synthetic_model
    sms = up.predict(model, history, "sms")
    call = up.predict(model, history, "call")
    np.testing.assert_allclose(call, 1.5 * sms)
    measured = up.predict(model, history, "call", calibration={"call": 0.5, "email": 2.0})
    np.testing.assert_allclose(measured, 0.75 * sms)
    # Unmeasured, the borrowing channel follows its source's calibration; measured, only its own.
    np.testing.assert_allclose(up.predict(model, history, "call", calibration={"sms": 0.8}), 1.2 * sms)
    np.testing.assert_allclose(up.predict(model, history, "call", calibration={"sms": 0.8, "call": 0.5}),
                               0.75 * sms)
    np.testing.assert_allclose(up.predict(model, history, "email", calibration={"email": 2.0}),
                               2 * up.predict(model, history, "email"))
    with pytest.raises(KeyError):
        up.predict(model, history, "call", assumed_uplift={})


def test_sleeping_dogs_counts():
    uplift = pd.Series([-0.1, 0.2, -0.05, 0.1], index=[1, 2, 3, 4])
    response = pd.Series([0.9, 0.1, 0.8, 0.3], index=[1, 2, 3, 4])
    assert up.sleeping_dogs(uplift, response, contacts=2) == {
        "negative": 2, "contacted_by_response": 2, "contacted_by_uplift": 0}


# --- calibration on hand-made tables -----------------------------------------------------------

Z95 = 1.959963984540054  # z(0.975): a 95% interval is the estimate +- Z95 standard errors


def test_shrink_factor_by_hand():
    """w = prior_sd^2 / (prior_sd^2 + se^2); factor = 1 + w (raw - 1); sd = sqrt(w) se."""
    half = up.shrink_factor(2.0, se=0.5, prior_sd=0.5)
    assert half["weight"] == pytest.approx(0.5) and half["factor"] == pytest.approx(1.5)
    assert half["high"] - half["factor"] == pytest.approx(Z95 * 0.5 ** 0.5 * 0.5)
    precise, wide = up.shrink_factor(2.0, se=0.01, prior_sd=0.5), up.shrink_factor(2.0, se=5.0, prior_sd=0.5)
    assert precise["factor"] == pytest.approx(1 + 0.25 / 0.2501) and precise["factor"] > 1.999
    assert wide["factor"] == pytest.approx(1 + 0.25 / 25.25) and wide["factor"] < 1.01
    assert up.shrink_factor(0.4, 0.3, prior_sd=float("inf"))["factor"] == pytest.approx(0.4)
    assert up.shrink_factor(0.4, 0.3, prior_sd=0.0)["factor"] == pytest.approx(1.0)


def test_calibration_from_measured_results():
    con = ibis.duckdb.connect()
    assert up.calibration(con) == {} and up.calibration_table(con).empty
    con.create_table("campaign_plan", pd.DataFrame({
        "campaign_id": ["P1"] * 6 + ["P2"] * 2, "customer_id": list(range(6)) + [0, 1],
        "arm": ["treatment", "treatment", "treatment", "control", "treatment", "treatment", "treatment", "treatment"],
        "channel": ["sms", "sms", "call", "call", "call", "email", "sms", "sms"],
        "uplift": [0.02, 0.04, 0.10, 0.50, 0.20, 0.05, 0.05, 0.05]}))
    assert up.calibration(con) == {}  # planned, not yet measured
    # Intervals of +- Z95 x se: sms P1 se 0.03 (factor se 1.0), call se 0.015 (factor se 0.1),
    # email se 0.0 (a degenerate interval: taken at face value); P2 is planned, not measured.
    con.create_table("campaign_results", pd.DataFrame({
        "campaign_id": ["P1"] * 5, "channel": ["sms", "call", "call", "all", "email"],
        "segment": ["all", "all", "loyal", "all", "all"], "n_treatment": [2, 2, 1, 4, 1],
        "uplift": [0.06, 0.075, 0.9, 0.1, 0.0],
        "uplift_low": [0.06 - Z95 * 0.03, 0.075 - Z95 * 0.015, 0.0, 0.0, 0.0],
        "uplift_high": [0.06 + Z95 * 0.03, 0.075 + Z95 * 0.015, 1.0, 0.2, 0.0],
        "measured_on": pd.to_datetime(["2026-03-01"] * 5)}))
    # Raw: sms measured 0.06 over planned mean 0.03; call 0.075 over 0.15 (the control row is not
    # planned uplift; the segment row is not the whole campaign); email measured nothing.
    assert up.calibration(con, prior_sd=float("inf")) == pytest.approx({"sms": 2.0, "call": 0.5, "email": 0.0})
    table = up.calibration_table(con, prior_sd=0.5)
    assert table["raw_factor"].to_dict() == pytest.approx({"call": 0.5, "email": 0.0, "sms": 2.0})
    # sms: se 1.0 -> w = 0.25 / 1.25 = 0.2, factor 1.2; call: se 0.1 -> w = 0.25 / 0.26, factor
    # 1 - 0.5 w; email: se 0 -> w = 1, factor 0.
    assert table["weight"].to_dict() == pytest.approx({"call": 0.25 / 0.26, "email": 1.0, "sms": 0.2})
    assert up.calibration(con) == pytest.approx({"sms": 1.2, "call": 1 - 0.5 * 0.25 / 0.26, "email": 0.0})
    sms = table.loc["sms"]
    assert sms["raw_low"] == pytest.approx(2 - Z95) and sms["factor_high"] == pytest.approx(1.2 + Z95 * 0.2 ** 0.5)


# --- the small world: the history is the truth's -----------------------------------------------

def test_history_matches_the_contacts_and_outcomes_of_the_truth(small_warehouse, small_truth_dir):
    with wh.reading(small_warehouse) as con:
        history = up.campaign_history(con)
        persons = tr.customer_persons(con, small_truth_dir)
        today = up.customer_features(con, up.as_of_default(con))
        pd.testing.assert_frame_equal(history, up.campaign_history(con))  # same data, same features
    assert not history.duplicated(["campaign_id", "customer_id"]).any()
    assert set(history["channel"]) == {"email", "sms"}
    # Features see only the days before the start (recency >= 1 day).
    assert history["recency_days"].min() >= 1 and (history["orders"] >= history["orders_365d"]).all()
    outcomes = tr.read_truth("campaign_outcomes", small_truth_dir)
    rows = history.assign(person_id=history["customer_id"].map(persons)).merge(
        outcomes, on=["campaign_id", "person_id"])
    assert len(rows) > 0.97 * len(history)
    assert (rows["treated"] == (rows["group"] == "treatment")).mean() > 0.99
    truth_bought = rows["purchased_in_window"].astype(str).str.lower() == "true"
    assert (rows["bought"] == truth_bought).mean() > 0.99
    assert set(today.columns) == set(up.FEATURES) and today.index.is_unique


# --- the 20k world: headline checks ------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted_20k(world_20k):
    with wh.reading(world_20k / "warehouse.duckdb") as con:
        history = up.campaign_history(con)
        persons = tr.customer_persons(con, world_20k / "truth")
    train, test = up.split_customers(history, seed=0)
    model = up.fit(train, seed=0)
    return history, model, up.score_rows(model, test), persons


@pytest.mark.slow
def test_uplift_model_beats_the_response_model_on_held_out_customers(fitted_20k):
    _, _, held_out, _ = fitted_20k
    qini = up.evaluate(held_out, by=None)["qini"]["all"]
    assert qini[up.SCORES["uplift_x"]] > qini[up.SCORES["p_response"]] > qini[up.SCORES["random"]]
    assert abs(qini[up.SCORES["random"]]) < 0.5 * qini[up.SCORES["p_response"]]


def designed_order(truth_dir: Path, campaigns) -> dict[str, list[str]]:
    """Segments by contacted-weighted mean true uplift over ``campaigns``, per channel."""
    effects = tr.read_truth("campaign_effects", truth_dir)
    design = tr.read_truth("campaign_design", truth_dir)[["campaign_id", "channel"]]
    effects = effects[effects["campaign_id"].isin(campaigns)].merge(design, on="campaign_id")
    n = effects["contacted"].astype(float)
    keys = [effects["channel"], effects["segment"]]
    mean = (effects["true_uplift"].astype(float) * n).groupby(keys).sum() / n.groupby(keys).sum()
    return {ch: s.droplevel(0).sort_values(ascending=False).index.tolist() for ch, s in mean.groupby(level=0)}


@pytest.mark.slow
def test_estimated_segment_ranking_is_the_designed_order(fitted_20k, world_20k):
    """Per channel (e-mail works on online shoppers, SMS on store shoppers, so the orders differ).
    The sleeping-dogs campaign is left out of both sides: its lapsed customers' negative uplift
    comes from leaving, not from their segment, and with it loyal and occasional SMS customers
    tie within 0.0001 in the design, which leaves no order to recover."""
    history, model, _, persons = fitted_20k
    dogs = json.loads((world_20k / "truth" / "config.json").read_text())["campaign_uplift"][
        "sleeping_dogs"]["campaign_id"]
    rows = history[history["campaign_id"] != dogs]
    people = tr.read_truth("people", world_20k / "truth").set_index("person_id")["segment"]
    estimated = up.segment_uplift(up.score_rows(model, rows), persons.map(people))
    designed = designed_order(world_20k / "truth", rows["campaign_id"].unique())
    for channel, order in designed.items():
        assert estimated.loc[estimated["channel"] == channel, "segment"].tolist() == order, channel


@pytest.mark.slow
def test_sleeping_dogs_get_negative_uplift(fitted_20k, world_20k):
    """In the reactivation SMS, customers whose true uplift is negative (lapsed: they leave when
    contacted) are estimated negative far more often than the others, and a response model
    contacting as many would reach far more of the estimated negative ones than ranking by uplift."""
    history, model, _, persons = fitted_20k
    dogs = json.loads((world_20k / "truth" / "config.json").read_text())["campaign_uplift"][
        "sleeping_dogs"]["campaign_id"]
    rows = up.score_rows(model, history[history["campaign_id"] == dogs])
    outcomes = tr.read_truth("campaign_outcomes", world_20k / "truth")
    rows = rows.assign(person_id=rows["customer_id"].map(persons)).merge(
        outcomes[outcomes["campaign_id"] == dogs], on=["campaign_id", "person_id"])
    negative = rows["true_uplift"].astype(float) < 0
    estimated_negative = rows["uplift_x"] < 0
    assert negative.sum() > 500
    assert estimated_negative[negative].mean() > 2 * estimated_negative[~negative].mean()
    s = rows.set_index("customer_id")
    contacts, positive = int(s["treated"].sum()), int((s["uplift_x"] >= 0).sum())
    counts = up.sleeping_dogs(s["uplift_x"], s["p_response"], contacts)
    print(f"reactivation SMS: {estimated_negative.mean():.1%} estimated negative; {counts} of {contacts:,} contacts")
    # Ranking by uplift reaches an estimated negative one only once the positives run out (the
    # reactivation offer is estimated negative for most lapsed customers); by response, far more.
    assert counts["contacted_by_uplift"] == max(0, contacts - positive)
    assert counts["contacted_by_response"] > 5 * max(counts["contacted_by_uplift"], 1)


# --- offer types: the uplift by channel and kind of offer ---------------------------------------

def offer_history(n: int = 16_000, seed: int = 2) -> pd.DataFrame:
    """One channel (SMS), four campaigns, one of them a 'reactivation': its contact makes lapsed
    customers (recency over 120 days) less likely to buy (−0.15); every other contact lifts the
    chance by 0.15. Base rate 0.25, 60% treated."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({f: rng.uniform(0, 240, n) for f in up.FEATURES})
    campaign = rng.integers(0, 4, n)
    kind = np.where(campaign == 3, "reactivation", "discount")
    treated = rng.random(n) < 0.6
    effect = np.where((kind == "reactivation") & (x["recency_days"] > 120), -0.15, 0.15)
    bought = rng.random(n) < 0.25 + treated * effect
    return as_history(x, campaign, treated, bought, channel="sms", offer_type=kind)


@pytest.fixture(scope="module")
def offer_model():
    return fitted(offer_history())


def test_learners_tell_offer_types_apart_within_a_channel(offer_model):
    history, model = offer_model
    sms = model.channels["sms"]
    assert sms.offer_types == ("discount", "reactivation")
    assert sms.offer_mix == pytest.approx(history["offer_type"].value_counts(normalize=True).to_dict())
    lapsed = history["recency_days"] > 120
    reactivation = up.predict(model, history, "sms", offer_type="reactivation")
    discount = up.predict(model, history, "sms", offer_type="discount")
    assert reactivation[lapsed].mean() < -0.07 and discount[lapsed].mean() > 0.07
    assert reactivation[~lapsed].mean() > 0.07
    # None: the channel's pooled mix; a type the channel never ran counts as None.
    mixed = sms.offer_mix["discount"] * discount + sms.offer_mix["reactivation"] * reactivation
    np.testing.assert_allclose(up.predict(model, history, "sms"), mixed)
    np.testing.assert_allclose(up.predict(model, history, "sms", offer_type="category"), mixed)
    # A borrowing channel borrows the same offer type; row-wise types score each row by its own.
    np.testing.assert_allclose(up.predict(model, history, "call", offer_type="reactivation"), 1.5 * reactivation)
    rowwise = up.predict(model, history, "sms", offer_type=history["offer_type"])
    np.testing.assert_allclose(rowwise, np.where(history["offer_type"] == "reactivation", reactivation, discount))


def test_without_offer_types_the_model_is_the_channels_alone():
    """Another retailer's campaign file may have no offer type: dim_campaign.offer_type is NULL,
    the learners use the channel alone and every offer type gets the same estimate."""
    history = offer_history(4_000)
    unnamed = history.assign(offer_type=None)
    model = up.fit(unnamed, seed=0, max_iter=10)
    plain = up.fit(unnamed.drop(columns="offer_type"), seed=0, max_iter=10)
    assert model.channels["sms"].offer_types == () and up.offer_types_of(unnamed) == {}
    pooled = up.predict(model, history, "sms")
    np.testing.assert_array_equal(up.predict(model, history, "sms", offer_type="reactivation"), pooled)
    np.testing.assert_array_equal(up.predict(plain, history, "sms"), pooled)
    one_type = history.assign(offer_type="discount")  # a single type says nothing: no feature
    assert up.fit(one_type, seed=0, max_iter=5).channels["sms"].offer_types == ()


def test_history_carries_the_campaigns_offer_type(small_warehouse):
    from crm_helpers.sample import world

    with wh.reading(small_warehouse) as con:
        history = up.campaign_history(con)
        declared = con.table("dim_campaign").select("campaign_id", "offer_type").execute()
    designed = {c.campaign_id: c.offer_type for c in world.build_campaigns()}
    past = declared[declared["campaign_id"].isin(designed)]
    assert past.set_index("campaign_id")["offer_type"].to_dict() == designed
    got = history.drop_duplicates("campaign_id").set_index("campaign_id")["offer_type"]
    assert got.to_dict() == {c: designed[c] for c in got.index}
    assert set(history.loc[history["channel"] == "sms", "offer_type"]) == {"discount", "reactivation"}


@pytest.mark.slow
def test_sms_reactivation_loses_lapsed_customers_a_discount_wins_some(world_20k, fitted_20k):
    """20k: for lapsed customers (no purchase for more than SLEEPING_DOGS_DAYS), the estimated SMS
    uplift of a reactivation offer is below zero on average and that of a discount above it, as
    designed (truth/campaign_outcomes.csv: C13's lapsed contacts have negative true uplift, the
    discount SMS campaigns' positive)."""
    from crm_helpers.sample import world

    _, model, _, _ = fitted_20k
    with wh.reading(world_20k / "warehouse.duckdb") as con:
        today = up.customer_features(con, up.as_of_default(con))
    lapsed = today[today["recency_days"] > world.SLEEPING_DOGS_DAYS]
    reactivation = up.predict(model, lapsed, "sms", offer_type="reactivation").mean()
    discount = up.predict(model, lapsed, "sms", offer_type="discount").mean()
    outcomes = tr.read_truth("campaign_outcomes", world_20k / "truth")
    recency = pd.to_numeric(outcomes["recency_days"], errors="coerce")
    kinds = outcomes["campaign_id"].map({c.campaign_id: (c.channel, c.offer_type) for c in world.build_campaigns()})
    truth = outcomes[recency > world.SLEEPING_DOGS_DAYS].groupby(kinds)["true_uplift"].mean()
    print(f"lapsed, SMS: estimated reactivation {reactivation:.4f} discount {discount:.4f}; "
          f"true {truth[('sms', 'reactivation')]:.4f} and {truth[('sms', 'discount')]:.4f}")
    assert truth[("sms", "reactivation")] < 0 < truth[("sms", "discount")]  # the design
    assert reactivation < 0 < discount
