"""A small OLAP cube over the star schema, computed in the engine.

A :class:`Cube` is an immutable query: which **measures**, grouped by which **dimensions**, under
which **filters**. Each operation returns a new cube::

    cube = Cube.from_warehouse(con).measures("revenue", "orders").by("region", "channel")
    cube.to_pandas(totals="rollup")          # with subtotals and a grand total
    cube.slice(year=2025)                    # slice: fix one dimension value (it leaves the grouping)
    cube.dice(region=["North", "East"])      # dice: keep a sub-cube
    cube.by("year").drill_down("year")       # year -> quarter -> month -> order_date
    cube.by("category").drill_down()         # category -> product_name
    cube.pivot("region", "channel")          # pandas table with "All" margins, for display

Subtotals (``totals="rollup"`` or ``"cube"``) are a union of group-bys in Ibis (portable to any
backend): a subtotal row has NULL in the rolled-up dimensions (labelled ``All`` in pandas) and a
``grouping_id`` bitmask as SQL's GROUPING_ID (bit set = dimension rolled up, first dimension =
highest bit). Missing dimension values are labelled ``(unknown)`` so they never look like a subtotal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations

import ibis
import ibis.expr.types as ir
import pandas as pd

from crm_helpers import periods
from crm_helpers.information import star
from crm_helpers.information.star import MONEY

TOTAL = "All"

#: Drill-down paths, coarse to fine.
HIERARCHIES: dict[str, list[str]] = {
    "time": ["year", "quarter", "month", "order_date"],
    "product": ["category", "product_name"],
    "store": ["channel", "store_name"],
}

#: Measure -> (description, unit); ``MONEY`` stands for the warehouse's currency. ``aov`` and
#: ``margin_rate`` are ratios of other measures.
MEASURES: dict[str, tuple[str, str]] = {
    "revenue": ("net sales: sales minus returns", MONEY),
    "gross_sales": ("sales before returns", MONEY),
    "returns": ("value of returned goods (positive)", MONEY),
    "cost_of_goods": ("cost of goods sold, net of returned goods", MONEY),
    "margin": ("revenue minus cost of goods", MONEY),
    "quantity": ("units sold, net of returns", "units"),
    "lines": ("order lines, returns included", "lines"),
    "orders": ("distinct orders with a sale line", "orders"),
    "customers": ("distinct identified customers with a sale line", "customers"),
    "aov": ("average order value: revenue / orders", f"{MONEY} per order"),
    "margin_rate": ("margin / revenue", "%"),
}


def fact_view(con=None) -> ir.Table:
    """The order lines with every cube dimension as a column (engine expression)."""
    lines = star.order_lines(con)
    d = lines.order_date
    return lines.mutate(
        year=d.year(),
        quarter=d.quarter(),
        month=d.month(),
        year_month=d.strftime("%Y-%m"),
        weekday=d.day_of_week.full_name(),
        customer_type=ibis.cases((lines.customer_id.notnull(), "identified"), else_="anonymous"),
    )


def _measure_exprs(t: ir.Table, names: Sequence[str]) -> dict[str, ir.Value]:
    sale = t.is_purchase
    base = {
        **star.money_measures(t),
        "quantity": t.quantity.sum().cast("int64"),
        "lines": t.count(),
        "orders": t.order_id.nunique(where=sale),
        "customers": t.customer_id.nunique(where=sale),
    }
    need = set(names)
    if "aov" in need:
        need |= {"revenue", "orders"}
    if "margin_rate" in need:
        need |= {"revenue", "margin"}
    return {k: v for k, v in base.items() if k in need}


def _ratios(agg: ir.Table, names: Sequence[str]) -> ir.Table:
    if "aov" in names:
        agg = agg.mutate(aov=agg.revenue / agg.orders.nullif(0).cast("float64"))
    if "margin_rate" in names:
        agg = agg.mutate(margin_rate=agg.margin / agg.revenue.nullif(0))
    return agg


def hierarchy_of(dimension: str) -> str | None:
    """The hierarchy a dimension belongs to (``time``, ``product``, ``store``) or None."""
    for name, levels in HIERARCHIES.items():
        if dimension in levels:
            return name
    return None


def grouping_sets(dims: Sequence[str], totals: str | None) -> list[tuple[str, ...]]:
    """The grouping sets of a rollup (prefixes) or a cube (all subsets), finest first."""
    dims = tuple(dims)
    if totals is None:
        return [dims]
    if totals == "rollup":
        return [dims[:k] for k in range(len(dims), -1, -1)]
    if totals == "cube":
        return [s for k in range(len(dims), -1, -1) for s in combinations(dims, k)]
    raise ValueError(f"totals must be None, 'rollup' or 'cube', not {totals!r}")


@dataclass(frozen=True)
class Cube:
    """An OLAP query over a fact view: measures by dimensions, under filters (immutable)."""

    facts: ir.Table
    dimensions: tuple[str, ...] = ()
    measure_names: tuple[str, ...] = ("revenue",)
    filters: tuple[tuple[str, tuple], ...] = ()

    @classmethod
    def from_warehouse(cls, con=None) -> Cube:
        """A cube over the warehouse's order lines (all sales, anonymous ones included)."""
        return cls(fact_view(con))

    # --- choosing what to see -------------------------------------------------------------
    def measures(self, *names: str) -> Cube:
        """Choose the measures (see :data:`MEASURES`)."""
        unknown = set(names) - set(MEASURES)
        if unknown:
            raise ValueError(f"unknown measures {sorted(unknown)}; choose from {list(MEASURES)}")
        return replace(self, measure_names=tuple(names))

    def by(self, *dims: str) -> Cube:
        """Group by these dimensions (replacing the current grouping)."""
        self._check_dims(dims)
        return replace(self, dimensions=tuple(dims))

    def _check_dims(self, dims: Sequence[str]) -> None:
        unknown = [d for d in dims if d not in self.facts.columns]
        if unknown:
            raise ValueError(f"unknown dimensions {unknown}")

    # --- OLAP operations ------------------------------------------------------------------
    def slice(self, **values) -> Cube:
        """Fix dimensions to one value each; they leave the grouping (a lower-dimensional cube)."""
        self._check_dims(list(values))
        dims = tuple(d for d in self.dimensions if d not in values)
        new = tuple((d, (v,)) for d, v in values.items())
        return replace(self, dimensions=dims, filters=self.filters + new)

    def dice(self, **values) -> Cube:
        """Keep only the given values (a scalar or a list per dimension); the grouping stays."""
        self._check_dims(list(values))
        new = tuple((d, tuple(v) if isinstance(v, (list, tuple, set)) else (v,)) for d, v in values.items())
        return replace(self, filters=self.filters + new)

    def for_period(self, period: periods.PeriodBounds) -> Cube:
        """Dice to one reporting period (:func:`crm_helpers.periods.bounds`): its year, quarter or month."""
        keys = {"year": period.start.year}
        if period.granularity == "quarter":
            keys["quarter"] = (period.start.month - 1) // 3 + 1
        if period.granularity == "month":
            keys["month"] = period.start.month
        return self.dice(**keys)

    def drill_down(self, dimension: str | None = None) -> Cube:
        """Add the next finer level after ``dimension`` (a level or a hierarchy name).

        Without an argument, drill the first grouped dimension that has a finer level.
        """
        level = self._finest_level(dimension)
        levels = HIERARCHIES[hierarchy_of(level)]
        i = levels.index(level)
        if i + 1 == len(levels):
            raise ValueError(f"{level} is already the finest level of {hierarchy_of(level)}")
        finer = levels[i + 1]
        dims = list(self.dimensions)
        pos = dims.index(level) + 1 if level in dims else len(dims)
        if level not in dims:
            dims.insert(pos, level)
            pos += 1
        dims.insert(pos, finer)
        return replace(self, dimensions=tuple(dims))

    def roll_up(self, dimension: str | None = None) -> Cube:
        """Remove the finest grouped level of a hierarchy (the opposite of drill-down)."""
        level = self._finest_level(dimension)
        return replace(self, dimensions=tuple(d for d in self.dimensions if d != level))

    def _finest_level(self, dimension: str | None) -> str:
        if dimension is None:
            for d in self.dimensions:
                h = hierarchy_of(d)
                if h and HIERARCHIES[h][-1] != d and HIERARCHIES[h][HIERARCHIES[h].index(d) + 1] not in self.dimensions:
                    return d
            raise ValueError(f"nothing to drill in {self.dimensions}")
        if dimension in HIERARCHIES:
            present = [lvl for lvl in HIERARCHIES[dimension] if lvl in self.dimensions]
            return present[-1] if present else HIERARCHIES[dimension][0]
        if hierarchy_of(dimension) is None:
            raise ValueError(f"{dimension} is in no hierarchy {list(HIERARCHIES)}")
        h = HIERARCHIES[hierarchy_of(dimension)]
        present = [lvl for lvl in h if lvl in self.dimensions]
        return present[-1] if present and h.index(present[-1]) > h.index(dimension) else dimension

    # --- results ----------------------------------------------------------------------------
    def filtered(self) -> ir.Table:
        """The fact view under the cube's filters (engine expression)."""
        t = self.facts
        for dim, values in self.filters:
            t = t.filter(t[dim].isin(list(values)) if len(values) > 1 else t[dim] == values[0])
        return t

    def table(self, totals: str | None = None) -> ir.Table:
        """The cube as an engine expression, with subtotals if ``totals`` is rollup/cube."""
        t = self.filtered()
        dims = list(self.dimensions)
        names = list(self.measure_names)
        exprs = _measure_exprs(t, names)
        parts = []
        for gset in grouping_sets(dims, totals):
            agg = t.group_by(list(gset)).aggregate(**exprs) if gset else t.aggregate(**exprs)
            agg = _ratios(agg, names)
            gid = sum(1 << (len(dims) - 1 - i) for i, d in enumerate(dims) if d not in gset)
            cols = {d: (agg[d] if d in gset else ibis.null(t[d].type())) for d in dims}
            parts.append(agg.select(**cols, **{m: agg[m] for m in names}, grouping_id=ibis.literal(gid, "int64")))
        out = parts[0] if len(parts) == 1 else ibis.union(*parts, distinct=False)
        return out.order_by([ibis.asc(d, nulls_first=False) for d in dims] + ["grouping_id"])

    def to_pandas(self, totals: str | None = None, label: str | None = TOTAL) -> pd.DataFrame:
        """Run the cube; subtotal cells read ``label`` (``All``) unless ``label`` is None."""
        expr = self.table(totals)
        df = expr.to_pandas()
        for d in self.dimensions:  # NULL subtotals turn integer levels (year, month) into floats
            if expr[d].type().is_integer():
                df[d] = df[d].astype("Int64")
        if label is not None and totals is not None:
            for i, d in enumerate(self.dimensions):
                rolled = (df["grouping_id"] // 2 ** (len(self.dimensions) - 1 - i)) % 2 == 1
                if rolled.any():
                    df[d] = df[d].astype(object).where(~rolled, label)
        return df

    def pivot(
        self,
        index: str | Sequence[str],
        columns: str | Sequence[str],
        values: str | None = None,
        totals: bool = True,
    ) -> pd.DataFrame:
        """A display table: ``values`` (default the first measure) by ``index`` x ``columns``.

        With ``totals``, the margins (row and column totals, subtotals of multi-level axes and
        the grand total) come from the engine's cube, labelled ``All``.
        """
        index = [index] if isinstance(index, str) else list(index)
        columns = [columns] if isinstance(columns, str) else list(columns)
        values = values or self.measure_names[0]
        cube = replace(self.by(*index, *columns), measure_names=(values,) if values in self.measure_names else (*self.measure_names, values))
        df = cube.to_pandas(totals="cube" if totals else None)
        wide = df.set_index(index + columns)[values].unstack(columns, sort=False)
        return wide


def cube_total(cube: Cube, measure: str = "revenue") -> float:
    """The grand total of an additive measure over the cube's filters."""
    return float(cube.by().measures(measure).to_pandas()[measure].iloc[0])
