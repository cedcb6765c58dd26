"""Charts of lifetime value (notebook 05), in the workbook's theme and finished by ``plots.finish``.

They take the pandas results of ``clv`` and ``scoreboard`` (never transactions) and return the
matplotlib ``Axes``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from crm_helpers import plots


def matrix(grid: pd.DataFrame, title: str, unit: str = "rate", ax=None):
    """A frequency (columns) x recency (rows, weeks) matrix as a heatmap, recency rising upwards."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 5))
    image = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", cmap="viridis",
                      extent=(-0.5, grid.shape[1] - 0.5, -0.5, grid.shape[0] - 0.5))
    bar = ax.figure.colorbar(image, ax=ax)
    bar.set_label(plots.axis_label("P(alive)" if unit == "rate" else "expected purchase days", unit))
    plots._unit_axis(bar.ax, unit)
    return plots.finish(ax, title, x="Repeat purchase days in the calibration period", xunit="count",
                        y="Recency: weeks from first to last purchase", yunit="count", legend=None, truncated=False)


def expected_vs_actual(table: pd.DataFrame, title: str, x: str, unit: str = "count", ax=None):
    """Bars of the actual mean beside a line of the expected mean, per group of ``table``
    (columns ``expected`` and ``actual``; the index names the groups)."""
    if ax is None:
        _, ax = plt.subplots()
    positions = np.arange(len(table))
    ax.bar(positions, table["actual"], color=plots.PREVIOUS_COLOR, label="actual")
    ax.plot(positions, table["expected"], marker="o", color=plots.CURRENT_COLOR, label="expected by the model")
    ax.set_xticks(positions, [str(i) for i in table.index])
    return plots.finish(ax, title, x=x, y="Mean per customer", yunit=unit)


def tracking(track: pd.DataFrame, calibration_weeks: float, title: str, ax=None):
    """Cumulative repeat purchase days, actual against expected, week by week
    (:func:`crm_helpers.knowledge.clv.cumulative_tracking`), the holdout shaded."""
    if ax is None:
        _, ax = plt.subplots()
    ax.plot(track["week"], track["actual"], color=plots.PREVIOUS_COLOR, label="actual")
    ax.plot(track["week"], track["expected"], color=plots.CURRENT_COLOR, linestyle="--", label="expected by BG/NBD")
    ax.axvspan(calibration_weeks, track["week"].max(), color="0.92", label="holdout")
    return plots.finish(ax, title, x="Week", xunit="count", y="Cumulative repeat purchase days", yunit="count")


def spend_against_frequency(summary: pd.DataFrame, title: str, ax=None):
    """Mean repeat spend against repeat purchase days of the repeat buyers (log money axis):
    Gamma-Gamma needs no relation between the two."""
    if ax is None:
        _, ax = plt.subplots()
    rep = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    ax.scatter(rep["frequency"], rep["monetary_value"], s=8, alpha=0.35, color=plots.CURRENT_COLOR)
    ax.set_yscale("log")
    ax = plots.finish(ax, title, x="Repeat purchase days (calibration)", xunit="count",
                      y="Mean spend of a repeat purchase day", legend=None, truncated=False)
    ax.yaxis.set_major_formatter(plots.tick_formatter(lambda v: plots_money(v)))
    ax.set_ylabel(plots.axis_label("Mean spend of a repeat purchase day", "money") + ", log scale")
    return ax


def plots_money(value: float) -> str:
    from crm_helpers import display

    return display.fmt(value, "money", 0)


def scoreboard_bars(by_segment: pd.DataFrame, measure: str, title: str, unit: str = "rate", ax=None):
    """One bar per model within each segment for a measure of the scoreboard (``scoreboard.score``
    by segment: index segment x model)."""
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4.5))
    data = by_segment[measure].reset_index()
    sns.barplot(data=data, x="segment", y=measure, hue="model", ax=ax, palette=plots.PALETTE)
    ax.get_legend().set_title("Model")
    ax.axhline(0, color="0.3", linewidth=0.8)
    return plots.finish(ax, title, x="Segment", y=measure.replace("_", " ").capitalize(), yunit=unit)
