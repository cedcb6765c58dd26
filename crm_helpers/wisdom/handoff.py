"""Hand-off to the operational CRM: the plan recorded in the warehouse, and the lists it exports.

:func:`record_plan` writes a campaign's plan to ``campaign_plan`` (campaign_id, customer_id,
arm, channel, offer, uplift, expected_value, as_of): the chosen rows, of which a random control
group is held out (``arm = 'control'``; control rows keep the channel and offer they would have
had, so the campaign can be measured later). The draw is seeded from the campaign id, so the same
plan gives the same control group. Recording a campaign again replaces its rows in one
transaction: a rerun never duplicates, and a failed write leaves the previous plan.

:func:`export_plan` writes one CSV per campaign and channel with the treatment arm only: the
pseudonymous ``customer_id`` (the warehouse's key), the offer, and only the contact field that
channel needs (``Settings.channel_contact_field``: e-mail for e-mail, phone for SMS and calls).
Rows are sorted and nothing in them depends on the time of export, so re-exporting the same plan
gives byte-identical files. Customer ids are those of the integration the plan was made on
(``crm integrate`` renumbers them: export before integrating again).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from ibis.backends import BaseBackend

from crm_helpers import config
from crm_helpers import warehouse as wh

TABLE = "campaign_plan"
COLUMNS = {"campaign_id": "VARCHAR", "customer_id": "BIGINT", "arm": "VARCHAR", "channel": "VARCHAR",
           "offer": "VARCHAR", "uplift": "DOUBLE", "expected_value": "DOUBLE", "as_of": "DATE"}
ARMS = ("treatment", "control")


def campaign_seed(campaign_id: str) -> int:
    """A seed derived from the campaign id alone (SHA-256), the same in every run and process."""
    return int.from_bytes(hashlib.sha256(str(campaign_id).encode("utf-8")).digest()[:8], "big")


def assign_arms(plan_rows: pd.DataFrame, campaign_id: str, holdout: float | dict[str, int] = 0.1) -> pd.Series:
    """Each plan row's arm: a random control group per channel, drawn with :func:`campaign_seed`.

    ``holdout``: the share of each channel's rows held out, or the number of control customers
    per channel (e.g. from ``campaigns.holdouts``). Rows are put in a fixed order (channel,
    customer, offer) before the draw, so the arms do not depend on the order they came in.
    """
    order = plan_rows.sort_values(["channel", "customer_id", "offer"]).index
    rng = np.random.default_rng(campaign_seed(campaign_id))
    arm = pd.Series("treatment", index=plan_rows.index, dtype=object)
    for channel, rows in plan_rows.loc[order].groupby("channel", sort=True):
        n = holdout.get(channel, 0) if isinstance(holdout, dict) else int(round(holdout * len(rows)))
        n = min(int(n), len(rows))
        arm.loc[rows.index[rng.permutation(len(rows))[:n]]] = "control"
    return arm


def plan_table(plan_rows: pd.DataFrame, campaign_id: str, as_of, holdout: float | dict[str, int] = 0.1) -> pd.DataFrame:
    """The ``campaign_plan`` rows of a plan: ``plan_rows`` (customer_id, channel, offer, uplift and
    expected_margin or expected_value; an ``arm`` column is kept, else drawn by
    :func:`assign_arms`), sorted by arm, channel and customer."""
    rows = plan_rows.reset_index(drop=True)
    if rows.duplicated(["customer_id", "channel", "offer"]).any():
        raise ValueError("a customer appears twice with the same channel and offer in the plan")
    out = pd.DataFrame({"campaign_id": str(campaign_id), "customer_id": rows["customer_id"].astype("int64"),
                        "arm": rows["arm"] if "arm" in rows else assign_arms(rows, campaign_id, holdout),
                        "channel": rows["channel"].astype(str), "offer": rows["offer"].astype(str),
                        "uplift": rows["uplift"].astype(float),
                        "expected_value": (rows["expected_value"] if "expected_value" in rows
                                           else rows["expected_margin"]).astype(float),
                        "as_of": pd.Timestamp(as_of).date()})
    if not out["arm"].isin(ARMS).all():
        raise ValueError(f"arms must be one of {ARMS}")
    return out.sort_values(["arm", "channel", "customer_id", "offer"], ignore_index=True)


def record_plan(warehouse: Path | str | None, plan_rows: pd.DataFrame, campaign_id: str, as_of,
                holdout: float | dict[str, int] = 0.1, reader: BaseBackend | None = None) -> pd.DataFrame:
    """Write a campaign's plan to ``campaign_plan`` (see the module docstring); returns the rows.

    ``warehouse``: the warehouse's path (opened for writing, waiting for another writer's lock).
    The campaign's previous rows are replaced in one transaction. ``reader``: a read-only
    connection this process holds on the same file (a notebook's ``per_cell`` connection),
    closed for the write and reopened after (DuckDB opens a file one way per process).
    """
    rows = plan_table(plan_rows, campaign_id, as_of, holdout)
    if reader is not None:
        reader.disconnect()
    try:
        con = wh.connect(warehouse)
        raw = con.con
        try:
            raw.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} "
                        f"({', '.join(f'{name} {kind}' for name, kind in COLUMNS.items())})")
            raw.register("_plan_in", rows)
            try:
                with wh.transaction(raw):
                    raw.execute(f"DELETE FROM {TABLE} WHERE campaign_id = ?", [str(campaign_id)])
                    raw.execute(f"INSERT INTO {TABLE} SELECT {', '.join(COLUMNS)} FROM _plan_in")
            finally:
                raw.unregister("_plan_in")
        finally:
            con.disconnect()
    finally:
        if reader is not None:
            reader.reconnect()
    return rows


def read_plan(con: BaseBackend | str | Path | None, campaign_id: str) -> pd.DataFrame:
    """The recorded plan of ``campaign_id`` (empty when it has none), sorted as recorded."""
    con = wh.as_connection(con)
    if TABLE not in con.list_tables():
        return pd.DataFrame(columns=list(COLUMNS))
    plan = con.table(TABLE)
    return plan.filter(plan.campaign_id == str(campaign_id)).order_by(
        ["arm", "channel", "customer_id", "offer"]).execute()


def export_file(out_dir: Path, campaign_id: str, channel: str) -> Path:
    """Where the list of ``campaign_id`` on ``channel`` is exported: ``<out_dir>/<id>_<channel>.csv``."""
    return Path(out_dir) / f"{campaign_id}_{channel}.csv"


def export_plan(warehouse: Path | str | BaseBackend | None, campaign_id: str,
                out_dir: Path | str | None = None) -> list[Path]:
    """Export the treatment arm of ``campaign_id``: one CSV per channel (see the module
    docstring) under ``out_dir`` (default ``<project>/reports/campaigns``); returns the paths.

    Columns: customer_id, offer and the channel's contact field, one row per contact, sorted by
    customer and offer. The files hold personal data, so they are readable by their owner only.
    """
    if warehouse is None or isinstance(warehouse, (str, Path)):
        with wh.reading(warehouse) as con:
            return export_plan(con, campaign_id, out_dir)
    con = warehouse
    settings = wh.settings(con)
    plan = read_plan(con, campaign_id)
    if plan.empty:
        raise ValueError(f"no plan recorded for campaign {campaign_id!r}: record_plan first")
    treated = plan[plan["arm"] == "treatment"]
    out_dir = Path(out_dir) if out_dir is not None else config.reports_dir() / "campaigns"
    config.private_files()
    out_dir.mkdir(parents=True, exist_ok=True)
    customers = con.table("dim_customer")
    paths = []
    for channel, rows in treated.groupby("channel", sort=True):
        field = settings.channel_contact_field[channel]
        contact = customers.filter(customers.customer_id.isin(rows["customer_id"].tolist())) \
            .select("customer_id", field).execute().set_index("customer_id")[field]
        out = rows[["customer_id", "offer"]].assign(**{field: rows["customer_id"].map(contact).to_numpy()})
        out = out.sort_values(["customer_id", "offer"], ignore_index=True)
        path = export_file(out_dir, campaign_id, channel)
        out.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")
        paths.append(path)
    return paths


def export_summary(paths: list[Path]) -> pd.DataFrame:
    """What each exported file holds: ``file``, ``rows`` and its ``columns`` (names, in order)."""
    return pd.DataFrame([{"file": p.name, "rows": len(pd.read_csv(p)),
                          "columns": ", ".join(pd.read_csv(p, nrows=0).columns)} for p in paths])
