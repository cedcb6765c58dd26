"""OLAP cube: subtotals add up to their grand totals; slice, dice, drill-down and pivot agree with pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_star import optional_fixture, star_tables, star_warehouse  # noqa: F401

from crm_helpers import warehouse as wh
from crm_helpers.information import olap

ADDITIVE = ["revenue", "gross_sales", "returns", "cost_of_goods", "margin", "quantity", "lines"]


@pytest.fixture(scope="module")
def cube(star_warehouse):
    return olap.Cube.from_warehouse(wh.connect(star_warehouse, read_only=True))


@pytest.fixture(scope="module")
def facts(star_tables):
    f = star_tables["fact_order_line"].copy()
    f = f.merge(star_tables["dim_product"][["sku", "category", "product_name"]], on="sku", how="left")
    f["year"] = f["order_date"].dt.year
    f["quarter"] = f["order_date"].dt.quarter
    f["month"] = f["order_date"].dt.month
    return f


def _check_rollup(df: pd.DataFrame, dims: list[str], measures: list[str]) -> None:
    """Every subtotal row equals the sum of the rows one level finer beneath it."""
    for level in range(len(dims)):
        parent_gid = (1 << (len(dims) - level)) - 1  # dims[level:] rolled up
        child_gid = (1 << (len(dims) - level - 1)) - 1
        parents = df[df["grouping_id"] == parent_gid]
        children = df[df["grouping_id"] == child_gid]
        keys = dims[:level]
        summed = children.groupby(keys)[measures].sum() if keys else children[measures].sum().to_frame().T
        got = parents.set_index(keys)[measures] if keys else parents[measures].reset_index(drop=True)
        np.testing.assert_allclose(got.to_numpy(float), summed.to_numpy(float), atol=0.005)


def test_rollup_subtotals_add_up(cube, facts):
    dims = ["region", "channel", "category"]
    df = cube.measures(*ADDITIVE).by(*dims).to_pandas(totals="rollup", label=None)
    _check_rollup(df, dims, ADDITIVE)
    grand = df[df["grouping_id"] == 7].iloc[0]
    assert grand["revenue"] == pytest.approx(facts["line_amount"].sum(), abs=0.005)
    assert grand["quantity"] == facts["quantity"].sum()
    assert grand["lines"] == len(facts)


def test_cube_has_every_subset(cube):
    dims = ["region", "channel", "year"]
    df = cube.measures("revenue", "orders").by(*dims).to_pandas(totals="cube", label=None)
    assert sorted(df["grouping_id"].unique()) == list(range(8))
    total = df.loc[df["grouping_id"] == 7, "revenue"].iloc[0]
    for gid in range(8):
        assert df.loc[df["grouping_id"] == gid, "revenue"].sum() == pytest.approx(total, abs=0.01)


def test_distinct_measures_at_subtotals(cube, facts):
    df = cube.measures("orders", "customers").by("region", "channel").to_pandas(totals="rollup")
    sale = facts[~facts["is_return"]]
    total = df[(df["region"] == "All") & (df["channel"] == "All")].iloc[0]
    assert total["orders"] == sale["order_id"].nunique()
    assert total["customers"] == sale["customer_id"].nunique()


def test_slice_and_dice_match_pandas(cube, facts):
    s = cube.by("category", "channel").slice(year=2024).to_pandas()
    assert s.columns[:2].tolist() == ["category", "channel"]
    ref = facts[facts["year"] == 2024].groupby(["category", "channel"])["line_amount"].sum()
    np.testing.assert_allclose(s.set_index(["category", "channel"])["revenue"], ref.loc[s.set_index(["category", "channel"]).index], atol=0.005)
    d = cube.by("category").dice(channel="web", year=[2024, 2025]).to_pandas()
    ref = facts[(facts["channel"] == "web") & facts["year"].isin([2024, 2025])].groupby("category")["line_amount"].sum()
    np.testing.assert_allclose(d.set_index("category")["revenue"], ref, atol=0.005)


def test_drill_down_time_and_product(cube, facts):
    y = cube.by("year")
    q = y.drill_down("year")
    m = q.drill_down()
    assert q.dimensions == ("year", "quarter") and m.dimensions == ("year", "quarter", "month")
    assert m.roll_up("time").dimensions == ("year", "quarter")
    months = m.to_pandas()
    ref = facts.groupby(["year", "quarter", "month"])["line_amount"].sum()
    np.testing.assert_allclose(months.set_index(["year", "quarter", "month"])["revenue"], ref, atol=0.005)
    years = y.to_pandas().set_index("year")["revenue"]
    np.testing.assert_allclose(months.groupby("year")["revenue"].sum(), years, atol=0.005)
    p = cube.by("category").drill_down()
    assert p.dimensions == ("category", "product_name")
    with pytest.raises(ValueError):
        p.drill_down("product")


def test_pivot_margins(cube):
    pv = cube.pivot("region", "channel")
    body = pv.drop(index="All", columns="All")
    np.testing.assert_allclose(pv.loc["All", "All"], body.to_numpy().sum(), atol=0.01)
    np.testing.assert_allclose(pv.drop(index="All")["All"], body.sum(axis=1), atol=0.01)
    np.testing.assert_allclose(pv.loc["All"].drop("All"), body.sum(axis=0), atol=0.01)


def test_unknown_names_rejected(cube):
    with pytest.raises(ValueError):
        cube.measures("profitt")
    with pytest.raises(ValueError):
        cube.by("nonexistent")


def test_small_sample_rollup(request):
    path = optional_fixture(request, "small_warehouse")
    cube = olap.Cube.from_warehouse(wh.connect(path, read_only=True))
    dims = ["region", "channel", "category"]
    df = cube.measures("revenue", "quantity").by(*dims).to_pandas(totals="rollup", label=None)
    _check_rollup(df, dims, ["revenue", "quantity"])


def test_cube_of_a_period_equals_the_kpi_revenue(star_warehouse):
    """The cube diced to a reporting period (identified customers) holds the KPI's revenue, to the cent."""
    from crm_helpers import periods
    from crm_helpers.information import kpis

    con = wh.connect(star_warehouse, read_only=True)
    identified = olap.Cube.from_warehouse(con).dice(customer_type="identified")
    table = kpis.kpi_table(con, "quarter").set_index("period")
    for label in ("2024-Q3", "2025-Q4"):
        cube = identified.for_period(periods.bounds(label, "quarter"))
        assert olap.cube_total(cube) == pytest.approx(table.loc[label, "revenue"], abs=0.005)
    month = identified.for_period(periods.bounds("2025-02", "month"))
    assert olap.cube_total(month) == pytest.approx(kpis.kpi_table(con, "month", start="2025-02", end="2025-02")
                                                   ["revenue"].item(), abs=0.005)


def test_money_measures_carry_the_currency_placeholder():
    from crm_helpers.information.star import MONEY

    assert {u for _, u in olap.MEASURES.values() if MONEY in u} == {MONEY, f"{MONEY} per order"}
    assert not any("£" in u for _, u in olap.MEASURES.values())
