"""Closing the loop: calibrated uplift and the next plan (wisdom.measure.next_plan and helpers).

The calibration's shrinkage is checked by hand in tests/test_uplift.py; here the helpers run on
hand-made tables, and on the 20k world a plan with calls is played forward and measured: the
shrunk call factor must bring the call uplift of the treated nearer to the truth than the
assumption was.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from crm_helpers import warehouse as wh
from crm_helpers.wisdom import measure
from crm_helpers.wisdom.optimise import Plan


def test_calibrated_scales_each_channel_by_its_factor():
    lift = pd.DataFrame({"email": [0.01, -0.02], "sms": [0.03, 0.0], "call": [0.06, 0.04]}, index=[7, 9])
    got = measure.calibrated(lift, {"call": 2.0, "sms": 0.5, "post": 3.0})
    expected = pd.DataFrame({"email": [0.01, -0.02], "sms": [0.015, 0.0], "call": [0.12, 0.08]}, index=[7, 9])
    pd.testing.assert_frame_equal(got, expected)
    pd.testing.assert_frame_equal(measure.calibrated(lift, {}), lift)
    pairs = lift.set_axis(pd.MultiIndex.from_tuples([("email", "up_sell"), ("sms", "up_sell"), ("call", "win_back")]), axis=1)
    np.testing.assert_allclose(measure.calibrated(pairs, {"call": 2.0, "sms": 0.5}).to_numpy(), expected.to_numpy())


def _plan(rows: list[tuple[int, str, str, float, float]]) -> Plan:
    chosen = pd.DataFrame(rows, columns=["customer_id", "channel", "offer", "expected_margin", "cost"])
    return Plan(chosen, float((chosen.expected_margin - chosen.cost).sum()), np.nan, np.nan, "hand", 0.0)


def test_plan_mix_and_summary_by_hand():
    plans = {"assumed": _plan([(1, "email", "cross_sell", 1.0, 0.05), (2, "sms", "up_sell", 2.0, 0.12)]),
             "calibrated": _plan([(1, "email", "cross_sell", 1.0, 0.05), (3, "call", "up_sell", 9.0, 4.5),
                                  (4, "call", "up_sell", 6.0, 4.5)])}
    mix = measure.plan_mix(plans)
    assert mix.loc[("call", "up_sell")].tolist() == [0, 2]
    assert mix.loc[("sms", "up_sell")].tolist() == [1, 0]
    assert mix.sum().tolist() == [2, 3]
    summary = measure.plan_summary(plans, {"assumed": 1.5, "calibrated": 4.0})
    assert summary.loc["calibrated", ["call_contacts", "email_contacts", "sms_contacts"]].tolist() == [2, 1, 0]
    assert summary.loc["assumed", "cost"] == pytest.approx(0.17)
    assert summary.loc["calibrated", "net_margin"] == pytest.approx(16.0 - 9.05)
    assert summary.true_net_margin.tolist() == [1.5, 4.0]
    assert "true_net_margin" not in measure.plan_summary(plans)


@pytest.mark.slow
def test_measured_calls_move_the_call_uplift_towards_the_truth(world_20k, tmp_path):
    """20k: a plan of 2,400 calls and 2,400 SMS (half held out) is played forward and measured;
    the calibrated call uplift of the treated (planned x shrunk factor) is nearer the mean true
    uplift than the assumed one (planned: SMS x 1.5)."""
    from crm_helpers.information import star
    from crm_helpers.sample import playforward
    from crm_helpers.wisdom import campaigns, handoff, uplift

    base = tmp_path  # a writable copy: playing forward writes raw files and loads them
    for name in ("raw", "truth"):
        shutil.copytree(world_20k / name, base / name)
    for name in ("sources.yml", "warehouse.duckdb"):
        shutil.copy(world_20k / name, base / name)
    warehouse = base / "warehouse.duckdb"
    rng = np.random.default_rng(12)
    with wh.reading(warehouse) as con:
        settings = wh.settings(con)
        as_of = star.latest_order_date(con)
        history = uplift.campaign_history(con)
        model = uplift.fit(history[history.channel == "sms"], seed=0, max_iter=60)
        today = uplift.customer_features(con, as_of)
        reach = campaigns.reachable(con, settings)
    ids = np.sort(rng.choice(reach.index[reach.call & reach.sms & reach.index.isin(today.index)], 4800, replace=False))
    rows = pd.DataFrame({"customer_id": ids, "channel": np.repeat(["call", "sms"], 2400), "offer": "cross_sell",
                         "arm": rng.permutation(np.repeat(["treatment", "control"], 2400))})
    planned = {ch: uplift.predict(model, today, ch).reindex(ids).to_numpy() for ch in ("call", "sms")}
    rows["uplift"] = np.where(rows.channel == "call", planned["call"], planned["sms"])
    rows["expected_value"] = rows.uplift * 50.0
    handoff.record_plan(warehouse, rows, "P01", as_of)
    playforward.play_and_load(base, warehouse, "P01", as_of, seed=0)
    with wh.reading(warehouse) as con:
        results = measure.measure(con, campaigns=["P01"], costs=settings.contact_costs)
    measure.write_results(warehouse, results)
    with wh.reading(warehouse) as con:
        table = uplift.calibration_table(con)
        treated = rows[rows.arm == "treatment"]
        true = playforward.true_uplift(base, con, treated.assign(campaign_id="P01"), as_of) \
            .groupby(treated.channel.to_numpy()).mean()
    table["true"] = true
    table["calibrated"] = table.planned * table.factor
    print(table[["measured", "planned", "raw_factor", "weight", "factor", "factor_low", "factor_high",
                 "calibrated", "true"]].round(4).to_string())
    call = table.loc["call"]
    assert abs(call.calibrated - call.true) < abs(call.planned - call.true), table.loc["call"].to_dict()
    assert (abs(table.factor - 1) <= abs(table.raw_factor - 1) + 1e-12).all(), "shrinkage went past the measurement"


def test_calibration_plot_names_the_channel_held_back_most():
    import matplotlib

    matplotlib.use("Agg")
    table = pd.DataFrame({"raw_factor": [1.85, 0.6], "raw_low": [-0.2, -0.1], "raw_high": [3.9, 1.3],
                          "weight": [0.19, 0.66], "factor": [1.16, 0.74], "factor_low": [0.28, 0.16],
                          "factor_high": [2.04, 1.31]}, index=pd.Index(["call", "sms"], name="channel"))
    ax = measure.calibration_plot(table, pd.Series({"call": 2.45, "sms": 0.89}))
    assert ax.get_title().replace("\n", " ") == "Call's measured factor 1.85 counts for 19%: calibrated to 1.16"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["call", "sms"]
