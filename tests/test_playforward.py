"""The sample world plays a plan forward: true uplift of plan rows, and new campaign files that
``crm collect`` loads once (crm_helpers/sample/playforward.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest

from crm_helpers import truth as tr
from crm_helpers import warehouse as wh
from crm_helpers.sample import playforward as pf
from crm_helpers.sample import world as w

START = date(2026, 1, 5)
ROOT = Path(__file__).resolve().parents[1]


def test_true_uplift_reproduces_the_simulators_truth(small_world):
    """Recomputed from the design, each past contact's true uplift is the one the simulator used
    (truth/campaign_outcomes.csv, rounded to 4 decimals there): the simulator's truth is right."""
    outcomes = tr.read_truth("campaign_outcomes", small_world / "truth")
    design = tr.read_truth("campaign_design", small_world / "truth").set_index("campaign_id")
    with wh.reading(small_world / "warehouse.duckdb") as con:
        for cid, rows in outcomes.groupby("campaign_id"):
            persons = pd.DataFrame({"campaign_id": cid, "person_id": rows.person_id,
                                    "channel": design.channel[cid]})
            mine = pf.person_uplift(small_world, con, persons, design.start_date[cid])
            np.testing.assert_allclose(mine.true_uplift, rows.true_uplift, atol=2e-4, err_msg=cid)


def test_true_uplift_of_plan_rows_by_customer(small_world):
    """Plan rows keyed by customer_id get their person's uplift; calls beat SMS for everyone
    alive (the designed call factor) and nobody gone gains anything."""
    with wh.reading(small_world / "warehouse.duckdb") as con:
        customers = con.table("dim_customer").select("customer_id").order_by("customer_id").limit(300).to_pandas()
        plan = pd.concat([customers.assign(campaign_id="P01", channel=ch) for ch in ("sms", "call")],
                         ignore_index=True)
        uplift = pf.true_uplift(small_world, con, plan, START)
    assert uplift.index.equals(plan.index)
    sms, call = uplift[plan.channel == "sms"].to_numpy(), uplift[plan.channel == "call"].to_numpy()
    known = ~np.isnan(sms)
    assert known.mean() > 0.9
    assert (call[known] >= sms[known]).all() and (call[known] > sms[known]).mean() > 0.5
    assert np.nanmax(call) <= w.MAX_UPLIFT


def copy_world(src: Path, dst: Path) -> Path:
    """A writable copy of a world (raw/, truth/, sources.yml, warehouse)."""
    for name in ("raw", "truth"):
        shutil.copytree(src / name, dst / name)
    for name in ("sources.yml", "warehouse.duckdb"):
        shutil.copy(src / name, dst / name)
    return dst


def small_plan(warehouse: Path, campaign_id: str = "P01", n: int = 400) -> pd.DataFrame:
    """A plan as act records it: contactable customers, a random half held out, three channels."""
    rng = np.random.default_rng(3)
    with wh.reading(warehouse) as con:
        ids = con.table("dim_customer").filter(lambda t: ~t.do_not_contact.fill_null(False)) \
            .select("customer_id").order_by("customer_id").limit(n).to_pandas().customer_id
    return pd.DataFrame({
        "campaign_id": campaign_id, "customer_id": ids.astype("int64"),
        "arm": np.where(rng.random(len(ids)) < 0.5, "treatment", "control"),
        "channel": rng.choice(["email", "sms", "call"], len(ids)), "offer": "cross_sell",
        "uplift": 0.05, "expected_value": 10.0, "as_of": pd.Timestamp(START).date()})


def record(warehouse: Path, plan: pd.DataFrame) -> None:
    con = wh.connect(warehouse)
    try:
        con.create_table("campaign_plan", ibis.memtable(plan), overwrite=True)
    finally:
        con.disconnect()


@pytest.fixture(scope="module")
def played(small_world, tmp_path_factory):
    """A copy of the small world with a plan played forward twice, collected twice, integrated."""
    from crm_helpers.data.collect import collect
    from crm_helpers.information.integrate import integrate

    base = copy_world(small_world, tmp_path_factory.mktemp("played"))
    warehouse = base / "warehouse.duckdb"
    plan = small_plan(warehouse)
    record(warehouse, plan)
    with wh.reading(warehouse) as con:
        before = con.table("identity_map").to_pandas()
    first = pf.play_forward(base, warehouse, "P01", START, seed=1)
    bytes1 = {p: p.read_bytes() for p in first}
    second = pf.play_forward(base, warehouse, "P01", START, seed=1)
    audit1 = collect(base, warehouse, progress=False)
    audit2 = collect(base, warehouse, progress=False)
    integrate(warehouse, progress=False)
    return dict(base=base, warehouse=warehouse, plan=plan, before=before, files=first, bytes1=bytes1,
                second=second, audit1=audit1, audit2=audit2)


def test_play_forward_is_repeatable_and_loads_once(played):
    assert played["files"] == played["second"]
    assert all(p.read_bytes() == played["bytes1"][p] for p in played["second"])
    a1, a2 = played["audit1"], played["audit2"]
    new = a1[a1.file.str.contains("P01") | a1.file.str.endswith("campaigns.csv")]
    assert set(new.status) <= {"loaded", "replaced"} and len(new) == 3
    assert (a2.status.isin(["skipped"]) | ~a2.file.isin(new.file)).all()
    assert (a1.rows_read == a1.rows_loaded + a1.rows_quarantined).all()
    with wh.reading(played["warehouse"]) as con:
        staged = con.table("stg_campaign_contact").filter(lambda t: t.campaign_id == "P01").count().execute()
        written = len(pd.read_csv(played["base"] / "raw" / "campaigns" / "contacts_P01.csv"))
        assert staged == written >= 0.98 * len(played["plan"])  # customers without a master record drop out


def test_customer_ids_survive_reintegration(played):
    """Campaign files add no customer records: every customer keeps its id, so the plan's rows
    meet their contacts and responses."""
    plan = played["plan"]
    with wh.reading(played["warehouse"]) as con:
        after = con.table("identity_map").to_pandas()
        contacts = con.table("fact_campaign_contact").filter(lambda t: t.campaign_id == "P01").to_pandas()
        responses = con.table("fact_campaign_response").filter(lambda t: t.campaign_id == "P01").to_pandas()
    key = ["source", "source_record_id"]
    merged = played["before"].merge(after, on=key, suffixes=("_before", "_after"))
    assert len(merged) == len(played["before"]) and (merged.customer_id_before == merged.customer_id_after).all()
    assert set(contacts.customer_id) <= set(plan.customer_id)
    assert len(contacts) >= 0.98 * len(plan)
    assert len(responses) > 0 and set(responses.customer_id) <= set(plan.customer_id)


def test_played_forward_outcomes_follow_the_true_uplift(played):
    """Treatment buys more than control, by about the plan's mean true uplift (loose: 400 rows)."""
    plan = played["plan"]
    with wh.reading(played["warehouse"]) as con:
        bought = set(con.table("fact_campaign_response").filter(lambda t: t.campaign_id == "P01")
                     .to_pandas().customer_id)
        uplift = pf.true_uplift(played["base"], con, plan, START)
    rate = plan.assign(bought=plan.customer_id.isin(bought)).groupby("arm").bought.mean()
    assert rate["treatment"] > rate["control"]
    assert abs((rate["treatment"] - rate["control"]) - uplift.mean()) < 0.12


def crm(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CRM_DATA_DIR", "CRM_WAREHOUSE")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "crm_helpers.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_plays_forward_and_fails_in_one_line(played, small_world):
    """`crm play-forward` rewrites the same files for the same seed; a plan that is not there or
    a bad date ends in one error line and exit code 2."""
    base = played["base"]
    ok = crm("play-forward", "--campaign", "P01", "--start", "2026-01-05", "--seed", "1", "--data", str(base))
    assert ok.returncode == 0, ok.stderr
    assert all(p.read_bytes() == played["bytes1"][p] for p in played["files"])
    for args, words in ((("--campaign", "P99", "--start", "2026-01-05"), "no rows for campaign 'P99'"),
                        (("--campaign", "P01", "--start", "5 Jan"), "expected a date")):
        bad = crm("play-forward", *args, "--data", str(base))
        lines = bad.stderr.strip().splitlines()
        assert bad.returncode == 2 and len(lines) == 1 and words in lines[0], bad.stderr
