"""Hand-off: the plan recorded with a reproducible control group, and exports that carry only the
contact field their channel needs, byte-identical when exported again."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest

from crm_helpers import config, privacy
from crm_helpers import warehouse as wh
from crm_helpers.wisdom import handoff

AS_OF = date(2025, 12, 31)


@pytest.fixture()
def copy(small_warehouse, tmp_path):
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(small_warehouse, path)
    return path


def a_plan(warehouse, n: int = 600, seed: int = 1) -> pd.DataFrame:
    """A plan of ``n`` customers over the three channels and four offers (one contact each)."""
    with wh.reading(warehouse) as con:
        ids = con.table("dim_customer").customer_id.execute().sort_values().to_numpy()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, n, replace=False)
    return pd.DataFrame({"customer_id": chosen, "channel": rng.choice(["email", "sms", "call"], n),
                         "offer": rng.choice(["cross_sell", "up_sell", "retention", "win_back"], n),
                         "uplift": rng.normal(0.03, 0.02, n), "expected_margin": rng.uniform(0, 5, n)})


def stored(warehouse, campaign_id: str) -> pd.DataFrame:
    with wh.reading(warehouse) as con:
        return handoff.read_plan(con, campaign_id)


def test_the_plan_is_recorded_with_a_reproducible_control_group(copy):
    plan = a_plan(copy)
    rows = handoff.record_plan(copy, plan, "P01", AS_OF, holdout=0.2)
    with duckdb.connect(str(copy), read_only=True) as con:
        schema = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'campaign_plan' ORDER BY ordinal_position").fetchall()
    assert dict(schema) == {**handoff.COLUMNS, "customer_id": "BIGINT"}
    saved = stored(copy, "P01")
    assert len(saved) == len(plan) and set(saved["as_of"].dt.date) == {AS_OF}
    share = saved.groupby("channel")["arm"].apply(lambda a: (a == "control").mean())
    assert np.allclose(share, 0.2, atol=0.01), share
    # the same plan in another order, recorded again: the same arms, and no duplicates
    again = handoff.record_plan(copy, plan.sample(frac=1, random_state=3), "P01", AS_OF, holdout=0.2)
    pd.testing.assert_frame_equal(again, rows)
    assert len(stored(copy, "P01")) == len(plan)
    # another campaign id draws another control group and leaves P01 alone
    other = handoff.record_plan(copy, plan, "P02", AS_OF, holdout=0.2)
    controls = [set(r.loc[r["arm"] == "control", "customer_id"]) for r in (rows, other)]
    assert controls[0] != controls[1] and len(stored(copy, "P01")) == len(plan)


def test_control_sizes_per_channel_and_a_rejected_plan_changes_nothing(copy):
    plan = a_plan(copy)
    handoff.record_plan(copy, plan, "P01", AS_OF, holdout={"email": 50, "sms": 40, "call": 30})
    saved = stored(copy, "P01")
    assert saved[saved["arm"] == "control"].groupby("channel").size().to_dict() == {"call": 30, "email": 50, "sms": 40}
    with pytest.raises(ValueError):
        handoff.record_plan(copy, pd.concat([plan, plan.head(1)]), "P01", AS_OF)
    pd.testing.assert_frame_equal(stored(copy, "P01"), saved)


def test_exports_hold_only_the_channels_contact_field_and_are_byte_identical(copy, tmp_path):
    plan = a_plan(copy)
    handoff.record_plan(copy, plan, "P01", AS_OF, holdout=0.2)
    first = handoff.export_plan(copy, "P01", tmp_path / "out")
    again = handoff.export_plan(copy, "P01", tmp_path / "again")
    assert [p.name for p in first] == ["P01_call.csv", "P01_email.csv", "P01_sms.csv"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    handoff.export_plan(copy, "P01", tmp_path / "out")  # over the first export: same bytes
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    fields = config.Settings().channel_contact_field
    saved = stored(copy, "P01")
    for path in first:
        channel = path.stem.split("_", 1)[1]
        exported = pd.read_csv(path)
        personal = set(exported.columns) & set(privacy.PERSONAL_COLUMNS)
        assert personal == {fields[channel]}, f"{path.name} holds {sorted(personal)}"
        assert list(exported.columns) == ["customer_id", "offer", fields[channel]]
        assert ("phone" in exported) == (channel != "email") and ("email" in exported) == (channel == "email")
        treated = saved[(saved["channel"] == channel) & (saved["arm"] == "treatment")]
        assert sorted(exported["customer_id"]) == sorted(treated["customer_id"]), "control or other rows exported"
        assert exported["customer_id"].is_monotonic_increasing
        assert (path.stat().st_mode & 0o077) == 0, "an export with personal data readable by others"


def test_a_write_that_fails_midway_leaves_the_previous_plan(copy, monkeypatch):
    handoff.record_plan(copy, a_plan(copy), "P01", AS_OF)
    before = stored(copy, "P01")
    real = wh.transaction

    @contextmanager
    def killed(raw):
        with real(raw):
            yield
            raise RuntimeError("killed after the insert, before the commit")

    monkeypatch.setattr(wh, "transaction", killed)
    with pytest.raises(RuntimeError, match="killed"):
        handoff.record_plan(copy, a_plan(copy, n=50, seed=2), "P01", AS_OF)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(stored(copy, "P01"), before)


def test_exported_contact_fields_are_the_customers_own(copy, tmp_path):
    handoff.record_plan(copy, a_plan(copy), "P01", AS_OF, holdout=0.2)
    with wh.reading(copy) as con:
        people = con.table("dim_customer").select("customer_id", "email", "phone").execute().set_index("customer_id")
    for path in handoff.export_plan(copy, "P01", tmp_path):
        exported = pd.read_csv(path, dtype={"email": str, "phone": str})
        field = exported.columns[-1]
        own = exported["customer_id"].map(people[field])
        assert (exported[field].fillna("") == own.fillna("")).all(), f"{path.name}: a contact field of someone else"
