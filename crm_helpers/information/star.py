"""Read access to the warehouse star schema (built by ``integrate``).

Everything transaction-level stays an Ibis expression, so it runs in the engine (DuckDB here,
another Ibis backend later). Functions in ``kpis``, ``rfm``, ``cohorts`` and ``olap`` accept either an
Ibis backend connection or a path to the warehouse file; ``warehouse.as_connection`` turns either into a
connection.
"""

from __future__ import annotations

from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis.backends import BaseBackend

from crm_helpers import warehouse as wh

#: The unit of every money measure: the generic currency sign, shown as the warehouse's own
#: currency (``plots.unit_label``), so no table or chart assumes one currency.
MONEY = "¤"
#: Label used for a missing dimension value (so it can't be mistaken for a subtotal).
UNKNOWN = "(unknown)"
ANONYMOUS = "(anonymous)"


def is_purchase(lines: ir.Table) -> ir.BooleanValue:
    """A sale line (not a return): ``is_return`` is false; if it is missing, a non-negative amount."""
    return ~(lines.is_return.fill_null(lines.line_amount < 0))


def order_lines(con: BaseBackend | str | Path | None = None) -> ir.Table:
    """The order-line fact with its dimensions, one row per line, ready for slicing.

    Columns: order_id, line_no, customer_id (NULL = anonymous), order_ts, order_date, channel,
    store_id, store_name, sku, product_name, category, tier, quantity, unit_price, line_amount,
    cost_amount (both negative on returns), is_return, is_purchase, customer_region, store_region,
    region, acquisition_channel.

    ``region`` is the customer's home region (``dim_customer.region``: the region of the store they
    buy in most, "online only" for web-only customers); for an anonymous walk-in sale it is the
    store's region. Missing dimension values read ``(unknown)``.
    """
    con = wh.as_connection(con)
    f = con.table("fact_order_line")
    p = con.table("dim_product").select(
        "sku", "product_name", category_="category", tier_="tier"
    )
    c = con.table("dim_customer").select(
        "customer_id", customer_region="region", acquisition_channel="acquisition_channel"
    )
    s = con.table("dim_channel").select("store_id", "store_name", store_region="region")
    j = f.left_join(p, "sku").left_join(c, "customer_id").left_join(s, "store_id")
    return j.select(
        "order_id",
        "line_no",
        customer_id=f.customer_id,
        order_ts=f.order_ts,
        order_date=f.order_date.cast("date"),
        channel=f.channel.fill_null(UNKNOWN),
        store_id=f.store_id,
        store_name=j.store_name.fill_null(UNKNOWN),
        sku=f.sku,
        product_name=j.product_name.fill_null(f.sku),
        category=j.category_.fill_null(UNKNOWN),
        tier=j.tier_.fill_null(UNKNOWN),
        quantity=f.quantity,
        unit_price=f.unit_price,
        line_amount=f.line_amount,
        cost_amount=f.cost_amount.fill_null(0),
        is_return=f.is_return.fill_null(f.line_amount < 0),
        is_purchase=is_purchase(f),
        customer_region=j.customer_region,
        store_region=j.store_region,
        region=ibis.cases(
            (f.customer_id.notnull(), j.customer_region.fill_null(UNKNOWN)),
            else_=j.store_region.fill_null(UNKNOWN),
        ),
        acquisition_channel=ibis.cases(
            (f.customer_id.notnull(), j.acquisition_channel.fill_null(UNKNOWN)), else_=ANONYMOUS
        ),
    )


def customer_lines(con: BaseBackend | str | Path | None = None, end=None) -> ir.Table:
    """Order lines of identified customers only (the base of every customer KPI).

    With ``end`` (a date), only the lines up to and including that day: the one definition of
    "as of a date" that RFM, profitability and cohorts share.
    """
    lines = order_lines(con)
    lines = lines.filter(lines.customer_id.notnull())
    return lines if end is None else lines.filter(lines.order_date <= pd.Timestamp(end).date())


def first_purchases(lines: ir.Table) -> ir.Table:
    """Each customer's first purchase day (``customer_id``, ``first_purchase``), defined once.

    A purchase is a sale line, not a return: a customer whose lines are all returns has no first
    purchase and is left out. ``lines`` is :func:`customer_lines` or a table with the same columns.
    """
    buys = lines.filter(lines.is_purchase)
    return buys.group_by("customer_id").aggregate(first_purchase=buys.order_date.min())


def latest_order_date(con: BaseBackend | str | Path | None = None):
    """The last order date in the warehouse (a ``datetime.date``)."""
    con = wh.as_connection(con)
    value = con.table("fact_order_line").order_date.max().cast("date").execute()
    return value.date() if hasattr(value, "date") else value


def money_measures(lines: ir.Table) -> dict[str, ir.Value]:
    """The money measures of a group of order lines, defined once (floats, in currency units).

    revenue = net sales (sales minus returns); gross_sales = sales lines only; returns = the
    returned amount as a positive number; cost_of_goods = cost of the lines (a return carries
    its cost with a minus sign); margin = revenue - cost_of_goods.
    """
    sale = lines.is_purchase
    revenue, cost = lines.line_amount.sum(), lines.cost_amount.sum()
    return {
        "revenue": revenue.cast("float64"),
        "gross_sales": lines.line_amount.sum(where=sale).fill_null(0).cast("float64"),
        "returns": (-lines.line_amount.sum(where=~sale)).fill_null(0).cast("float64"),
        "cost_of_goods": cost.cast("float64"),
        "margin": (revenue - cost).cast("float64"),
    }


#: The fact tables that carry a customer_id.
CUSTOMER_FACTS = ("fact_order_line", "fact_interaction", "fact_campaign_contact", "fact_campaign_response")


def orphan_facts(con: BaseBackend | str | Path | None = None) -> pd.Series:
    """Rows of each fact table whose customer is not in ``dim_customer`` (0 in a sound warehouse).

    A NULL customer_id (an anonymous sale) is not an orphan.
    """
    con = wh.as_connection(con)
    customers = con.table("dim_customer").select("customer_id")
    counts = {}
    for name in CUSTOMER_FACTS:
        fact = con.table(name)
        known = fact.filter(fact.customer_id.notnull())
        counts[name] = int(known.anti_join(customers, "customer_id").count().execute())
    return pd.Series(counts, name="orphan_rows")
