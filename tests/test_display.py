"""The display layer: each unit reads as a manager expects, in the declared currency and locale."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import seaborn as sns

from crm_helpers import display, plots
from crm_helpers.config import Settings

NBSP, NNBSP = "\xa0", "\u202f"


@pytest.fixture
def pounds():
    before = plots.current_settings()
    yield plots.set_currency(Settings())
    plots.set_currency(before)


@pytest.fixture
def french_shop():
    """The README's French example shop: euros, French locale."""
    before = plots.current_settings()
    yield plots.set_currency(Settings(currency="EUR", country="FR", timezone="Europe/Paris", locale="fr_FR"))
    plots.set_currency(before)


@pytest.mark.parametrize("value, unit, shown", [
    (1234.0, "count", "1,234"), (474.0, "count", "474"), (1234.4, "money", "£1,234"), (12.5, "money", "£12.50"),
    (0.488, "rate", "48.8%"), (12, "days", "12 days"), (1, "days", "1 day"), (2.5, "number", "2.50"),
    (pd.Timestamp("2025-11-03"), "date", "3 Nov 2025"), ("2025-11", "date", "2025-11"), ("shop", "text", "shop"),
    (np.nan, "count", "–"), (None, "money", "–"), (pd.NaT, "date", "–"),
    (0.25, "%", "25.0%"), (99.0, "¤ per order", "£99.00"), (7.0, "customers", "7"),
])
def test_fmt_each_unit(pounds, value, unit, shown):
    assert display.fmt(value, unit) == shown


def test_fmt_decimals(pounds):
    assert display.fmt(0.4876, "rate", 0) == "49%"
    assert display.fmt(1234.5, "money", 2) == "£1,234.50"


def test_french_shop_in_euros(french_shop):
    assert display.fmt(1234.4, "money") == f"1{NNBSP}234{NBSP}€"
    assert display.fmt(12.5, "money") == f"12,50{NBSP}€"
    assert display.fmt(0.488, "rate") == f"48,8{NBSP}%"
    assert display.fmt(1234, "count") == f"1{NNBSP}234"
    html = display.table(pd.DataFrame({"shop": ["Lyon"], "revenue": [12.5]}), {"revenue": "money"}).to_html()
    assert "€" in html and "£" not in html


def test_change_in_words(pounds):
    assert display.change(1348, 1200, "money") == "up 12.3% (from £1,200 to £1,348)"
    assert display.change(0.467, 0.488, "rate") == "down 2.1 percentage points (from 48.8% to 46.7%)"
    assert display.change(5, 5, "count") == "unchanged"
    assert display.change(3, 0, "count") == "up from 0 to 3"
    assert "no earlier value" in display.change(3, math.nan, "count")


def _cells(styler) -> pd.DataFrame:
    """The table as displayed: headers, index and cell texts."""
    return pd.read_html(__import__("io").StringIO(styler.to_html()))[0]


def test_table_formats_units_index_and_columns(pounds):
    loads = pd.DataFrame({
        "source": ["shop", "web", "crm"], "grouping_id": [0, 0, 1], "read_rows": [474.0, 12.0, 1200.0],
        "revenue": [1234.567, np.nan, 20.0], "quarantine_rate": [0.488, 0.01, 0.0],
        "comment": ["a rule " * 30, "", "ok"],
    })
    styler = display.table(loads, {"revenue": "money", "quarantine_rate": "rate"}, index="source",
                           names={"read_rows": "Rows read"})
    html = styler.to_html()
    for shown in ("474", "1,200", "£1,235", "48.8%", "0.0%", "–", "Rows read", "Quarantine rate", "Source"):
        assert shown in html, shown
    for hidden in ("474.0", "grouping", "nan", "NaN", "0.488", "read_rows"):
        assert hidden not in html, hidden
    assert "white-space: normal" in html  # long text wraps
    only = display.table(loads, {"revenue": "money"}, index="source", columns=["revenue"]).to_html()
    assert "Revenue" in only and "Read rows" not in only and "Comment" not in only


def test_table_hides_a_raw_index(pounds):
    frame = pd.DataFrame({"segment": ["a", "b"], "customers": [3.0, 4.0]}, index=[4, 8])
    html = display.table(frame).to_html()
    assert "row_heading" not in html and ">3<" in html and ">4<" in html


def test_headers():
    assert display.header("revenue_share") == "Revenue share"
    assert display.header("customer_id") == "Customer ID"
    assert display.header("aov") == "Average order value"


def _chart():
    fig, ax = plt.subplots(figsize=(6, 4))
    periods = [f"2025-{m:02d}" for m in range(1, 13)]
    ax.plot(periods, np.linspace(0.49, 0.62, 12), label="top 20% share of revenue")
    ax.plot(periods, np.linspace(0.50, 0.60, 12), label="same month a year earlier")
    return fig, ax


def test_finish_puts_the_legend_outside_the_data(pounds):
    fig, ax = _chart()
    plots.finish(ax, "Revenue share of top 20% customers", x="period", y="share of revenue", yunit="rate")
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert not legend.overlaps(ax.get_window_extent())
    assert ax.get_ylabel() == "share of revenue (%)"
    assert all("%" in t.get_text() for t in ax.get_yticklabels() if t.get_text())


def test_finish_notes_a_truncated_axis(pounds):
    _, ax = _chart()
    plots.finish(ax, "Share", y="share", yunit="rate")
    notes = [t.get_text() for t in ax.texts]
    assert any("y axis starts at 4" in n and "not zero" in n for n in notes), notes
    assert ax.get_title(loc="left") == "Share" or ax.get_title() == "Share"
    _, ax = _chart()
    ax.set_ylim(0, 1)
    plots.finish(ax, "Share", y="share", yunit="rate")
    assert not ax.texts
    _, ax = _chart()
    plots.finish(ax, "Share", y="share", yunit="rate", truncated=False)
    assert not ax.texts


def test_finish_whole_number_ticks_for_counts(pounds):
    fig, ax = plt.subplots()
    reasons = pd.DataFrame({"reason": ["amount is not a number in the line_amount column", "bad date", "x"],
                            "rows": [1, 3, 2]})
    sns.barplot(data=reasons, x="rows", y="reason", ax=ax)
    plots.finish(ax, "Quarantined rows by reason", x="rows", xunit="count", legend=None)
    fig.canvas.draw()
    ticks = ax.get_xticks()
    assert np.allclose(ticks, np.round(ticks))
    assert all("." not in t.get_text() for t in ax.get_xticklabels())
    assert max(len(line) for t in ax.get_yticklabels() for line in t.get_text().split("\n")) <= 28


def test_finish_money_ticks_in_the_currency(french_shop):
    fig, ax = plt.subplots()
    ax.bar(["north", "south"], [1200.0, 3400.0])
    plots.finish(ax, "Revenue by region", x="region", y="revenue", yunit="money")
    fig.canvas.draw()
    assert ax.get_ylabel() == "revenue (€)"
    assert any("€" in t.get_text() for t in ax.get_yticklabels())


def test_table_keeps_an_index_it_was_given(pounds):
    sizes = pd.DataFrame({"records_per_customer": [1, 2, 3], "customers": [668.0, 997.0, 275.0]})
    html = display.table(sizes, index="records_per_customer").to_html()
    assert "Records per customer" in html and "row_heading" in html and "997" in html


def test_table_pivot_columns(pounds):
    cube = pd.DataFrame({"region": ["North", "North", "South"], "channel": ["web", "store", "web"],
                         "revenue": [1200.5, 30.0, np.nan]}).pivot(index="region", columns="channel", values="revenue")
    html = display.table(cube, dict.fromkeys(cube.columns, "money")).to_html()
    assert "£1,200" in html and "£30" in html and "–" in html and "Channel" in html and "Region" in html


def test_flags_and_plurals(pounds):
    html = display.table(pd.DataFrame({"do_not_contact": [True, False]})).to_html()
    assert ">yes<" in html and ">no<" in html and "True" not in html
    assert display.count_of(1, "customer") == "1 customer" and display.count_of(1234, "customer") == "1,234 customers"
    assert display.span(pd.Timestamp("2025-11-03 10:00"), pd.Timestamp("2025-11-03 18:00")) == "on 3 Nov 2025"


def test_pareto_curve_draws_the_whale_it_describes(pounds):
    ranked = pd.DataFrame({"customer_id": [1, 2, 3, 4], "profit": [80.0, 40.0, 10.0, -30.0]})
    ranked["customer_share"] = np.arange(1, 5) / 4
    ranked["profit_share"] = ranked.profit.cumsum() / ranked.profit.sum()
    peak = plots.whale_peak(ranked.customer_share.to_numpy(), ranked.profit_share.to_numpy())
    assert peak == pytest.approx((0.75, 130 / 100))
    ax = plots.pareto_curve(ranked, share_col="profit_share", what="profit")
    ax.figure.canvas.draw()
    assert ax.get_ylim()[1] >= 1.3 and any("peak: 130.0% of profit" in t for t in ax.get_legend_handles_labels()[1])
    flat = ranked.assign(profit_share=np.minimum(ranked.profit_share, 1.0))
    assert plots.whale_peak(flat.customer_share.to_numpy(), flat.profit_share.to_numpy()) is None


def test_table_with_a_repeated_index(pounds):
    issues = pd.DataFrame({"source": ["crm", "crm"], "column_name": ["birth_date"] * 2, "issue": ["a", "b"],
                           "values_nulled": [4, 3]})
    html = display.table(issues, index=["source", "column_name"]).to_html()
    assert ">4<" in html and ">3<" in html


def test_the_same_table_gives_the_same_html_and_another_table_other_ids():
    """No random table id: the same data and units give the same page, byte for byte."""
    df = pd.DataFrame({"customers": [3, 4], "share": [0.25, 0.75]})
    first, again = (display.table(df, {"share": "rate"}).to_html() for _ in range(2))
    assert first == again
    assert display.table(df, {"share": "number"}).to_html().split("{", 1)[0] != first.split("{", 1)[0]
