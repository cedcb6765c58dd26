"""The workbook's standard business graphics, all in one seaborn theme.

The theme is seaborn's (``set_theme(context="notebook", style="whitegrid", palette="deep")``),
written out as the matplotlib style ``workbook.mplstyle``: charts drawn with matplotlib alone (the
periodic report's) then need no seaborn import, which brings scipy.stats and costs seconds per
report. seaborn is imported by the functions that draw with it (heatmaps, bars).

Every chart has a title, axis labels and units. Functions take the pandas results of ``kpis``,
``rfm``, ``cohorts`` and ``olap`` (already aggregated: plotting never touches transactions) and
return the matplotlib ``Axes`` (or ``Figure`` for small multiples).

Money is shown in the currency of the settings given to :func:`set_currency` (which
:func:`setup_notebook` calls): a unit written with ``star.MONEY`` (``¤``) becomes that currency's
symbol, so no label assumes one currency.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd

from crm_helpers import config
from crm_helpers.information.star import MONEY

#: The workbook's chart theme: seaborn's "notebook" context, "whitegrid" style and "deep" palette.
THEME = Path(__file__).with_name("workbook.mplstyle")
PALETTE = "deep"
#: The first colour of seaborn's "deep" palette: the KPI itself in a trend.
CURRENT_COLOR = "#4c72b0"
PREVIOUS_COLOR = "0.55"


_settings: list[config.Settings] = []


def set_currency(settings: config.Settings) -> config.Settings:
    """Show every money label, axis and table in the currency of ``settings``; return them."""
    _settings[:] = [settings]
    return settings


def current_settings() -> config.Settings:
    """The settings money is shown in: those given to :func:`set_currency`, else the data folder's."""
    return _settings[0] if _settings else set_currency(config.load_settings())


def unit_label(unit: str) -> str:
    """A unit as the reader sees it: ``star.MONEY`` replaced by the currency symbol (``¤ per order``)."""
    return unit.replace(MONEY, current_settings().currency_symbol)


def setup_notebook(seed: int = 42, dpi: int = 100, settings: config.Settings | None = None) -> np.random.Generator:
    """One look for every notebook: the seaborn theme (:data:`THEME`), figure size, pandas display options,
    seed, currency.

    ``settings`` (default: the data folder's ``sources.yml``) give the currency of every money
    label. Returns a seeded numpy ``Generator`` for anything random in the notebook.
    """
    set_currency(settings or config.load_settings())
    _inline_figures()
    plt.style.use(THEME)
    plt.rcParams.update(
        {
            "figure.figsize": (9, 4.5),
            "figure.dpi": dpi,
            "axes.titlesize": "large",
            "axes.titleweight": "bold",
            "axes.titlelocation": "left",
            "figure.autolayout": True,
        }
    )
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 160)
    pd.set_option("display.precision", 3)
    pd.set_option("display.float_format", lambda v: f"{v:,.3f}")
    np.random.seed(seed)
    return np.random.default_rng(seed)


def _inline_figures() -> None:
    """In a Jupyter kernel, draw figures inline even if ``MPLBACKEND=Agg`` is set (as in CI/make)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the notebooks only
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        shell.run_line_magic("matplotlib", "inline")


def _unit_axis(ax, unit: str, axis: str = "y") -> None:
    """Format an axis for a unit: % for rates, the currency for money, whole numbers for counts.

    ``unit`` is a display unit (:data:`crm_helpers.display.UNITS`) or a package unit (``%``,
    ``¤ per order``, ``customers``); see :func:`crm_helpers.display.unit_of`.
    """
    from crm_helpers import display

    target = ax.yaxis if axis == "y" else ax.xaxis
    kind = display.unit_of(unit)
    if kind == display.RATE:
        target.set_major_formatter(tick_formatter(lambda v: display.fmt(v, display.RATE, 0)))
    elif kind == display.MONEY:
        target.set_major_formatter(tick_formatter(lambda v: display.fmt(v, display.MONEY, 0)))
    elif kind in (display.COUNT, display.DAYS):
        target.set_major_locator(mticker.MaxNLocator(integer=True))
        target.set_major_formatter(tick_formatter(lambda v: display.fmt(v, display.COUNT)))
    else:
        target.set_major_formatter(tick_formatter(
            lambda v: display.fmt(v, display.NUMBER, 0 if abs(v) >= 100 else 2)))


def tick_formatter(label) -> mticker.FuncFormatter:
    """A tick formatter showing each value as ``label(value)`` says, each value formatted once.

    A chart is laid out several times before it is saved, with the same ticks each time: the
    labels (Babel's number formats) are kept instead of formatted again on every pass.
    """
    shown = functools.cache(label)
    return mticker.FuncFormatter(lambda value, _pos: shown(value))


#: Numbers inside a chart (heatmap cells, bar labels): readable at 100% zoom.
ANNOTATION_SIZE = 10


def axis_label(name: str, unit: str | None = None) -> str:
    """An axis label with its unit: ``revenue (£)``, ``retention rate (%)``, ``recency (days)``."""
    from crm_helpers import display

    kind = display.unit_of(unit) if unit else None
    shown = {display.MONEY: unit_label(unit) if unit and unit != display.MONEY else current_settings().currency_symbol,
             display.RATE: "%", display.DAYS: "days"}.get(kind)
    if kind == display.COUNT and unit not in display.UNITS and unit not in name:
        shown = unit
    return f"{name} ({shown})" if shown else name


def finish(ax, title: str, x: str | None = None, y: str | None = None, xunit: str | None = None,
           yunit: str | None = None, legend: str | None = "outside", rotate: float | None = None,
           truncated: bool | str | None = None):
    """Bring a chart to the workbook's standard; returns ``ax``.

    Sets the ``title`` (wrapped when long) and the axis labels ``x``/``y`` with their units
    (``xunit``/``yunit``: display units such as ``count``, ``money``, ``rate``, or package units
    such as ``%``), formats the ticks (currency, percent, whole numbers for counts), places the
    legend ``"outside"`` the axes (right), ``"below"`` them, ``"inside"`` (matplotlib's best) or
    removes it (``None``), wraps long category labels or rotates them by ``rotate`` degrees, and
    writes a note above the plot when a value axis does not start at zero: ``truncated=None``
    detects it, ``False`` never notes, ``True`` or a text forces the note.
    """
    title = "\n".join(textwrap.wrap(title, 70)) if title else ""
    for axis, name, unit in (("x", x, xunit), ("y", y, yunit)):
        if name is not None:
            (ax.set_xlabel if axis == "x" else ax.set_ylabel)(axis_label(name, unit))
        if unit:
            _unit_axis(ax, unit, axis)
    _tidy_category_labels(ax, rotate)
    _place_legend(ax, legend)
    note = _truncation_note(ax, xunit, yunit, truncated)
    if note:
        ax.text(0, 1.01, note, transform=ax.transAxes, ha="left", va="bottom", fontsize="small",
                style="italic", color="0.3")
    ax.set_title(title, pad=18 if note else None)
    return ax


def _category_axis(axis) -> bool:
    """Whether an axis shows labels (categories) rather than numbers."""
    from matplotlib.category import StrCategoryFormatter

    return isinstance(axis.get_major_formatter(), (StrCategoryFormatter, mticker.FixedFormatter))


def _tidy_category_labels(ax, rotate: float | None) -> None:
    """Wrap long category labels; rotate the x labels by ``rotate`` degrees, or when they are many."""
    for axis, width in ((ax.xaxis, 14), (ax.yaxis, 28)):
        if not _category_axis(axis):
            continue
        ticks = axis.get_majorticklocs()
        labels = [t.get_text() for t in axis.get_majorticklabels()]
        if not any(labels):
            continue
        axis.set_ticks(ticks, ["\n".join(textwrap.wrap(t, width)) or t for t in labels])
    angle = rotate
    if angle is None and _category_axis(ax.xaxis):
        labels = [t.get_text() for t in ax.get_xticklabels()]
        if sum(len(max(t.split("\n"), key=len, default="")) for t in labels) > 70:
            angle = 45
    if angle:
        ax.tick_params(axis="x", labelrotation=angle)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")


def _place_legend(ax, where: str | None) -> None:
    """Put the legend off the data: right of the axes (``outside``), under them (``below``), or none."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles or where is None:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        return
    title = ax.get_legend().get_title().get_text() if ax.get_legend() is not None else None
    if where == "outside":
        ax.legend(handles, labels, title=title, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0,
                  frameon=False, fontsize="small")
    elif where == "below":
        ax.legend(handles, labels, title=title, loc="upper center", bbox_to_anchor=(0.5, -0.22),
                  ncols=_legend_columns(ax, labels), frameon=False, fontsize="small")
    else:
        ax.legend(handles, labels, title=title, loc="best", fontsize="small")


def _legend_columns(ax, labels: list[str], chars_per_inch: float = 12) -> int:
    """How many legend entries fit side by side under ``ax`` (at most 4): long labels stack."""
    width = ax.get_position().width * ax.figure.get_figwidth() * chars_per_inch  # in characters
    widest = max(len(label) for label in labels) + 5  # the marker and the gap
    return max(1, min(len(labels), 4, int(width // widest)))


def _truncation_note(ax, xunit, yunit, truncated) -> str | None:
    """The note for a value axis that does not start at zero (``None`` when it does or is asked not to)."""
    from crm_helpers import display

    if truncated is False:
        return None
    if isinstance(truncated, str):
        return truncated
    notes = []
    for axis, unit, (low, high) in (("x", xunit, ax.get_xlim()), ("y", yunit, ax.get_ylim())):
        if unit is None or display.unit_of(unit) in (display.DATE, display.TEXT):
            continue
        start = min(low, high)
        if truncated is True or start > 0:
            notes.append(f"the {axis} axis starts at {display.fmt(start, unit, 0)}, not zero")
    return ("Note: " + "; ".join(notes) + ".") if notes else None


def _pretty(name: str) -> str:
    special = {"aov": "Average order value", "top20_revenue_share": "Revenue share of top 20% customers"}
    return special.get(name, name.replace("_", " ").capitalize())


def _lag_label(lag: int) -> str:
    names = {1: "previous period", 4: "same quarter a year earlier", 12: "same month a year earlier"}
    return names.get(lag, f"{lag} periods earlier")


def kpi_trend(
    kpis: pd.DataFrame,
    kpi: str,
    unit: str | None = None,
    lag: int = 12,
    ax=None,
    highlight: str | None = None,
    legend: str | None = "outside",
    last: int | None = None,
):
    """A KPI per period (solid) with the previous comparable period (dashed, ``lag`` periods earlier).

    ``kpis`` is :func:`crm_helpers.kpis.kpi_table` without slices; ``lag`` = 12 for months
    (same month last year), 4 for quarters, 1 for years or for "previous period".
    ``highlight``: a period label to mark (the dashboard's current period). ``legend``: where
    :func:`finish` puts the legend (``None``: no legend, as in :func:`kpi_trends`). A value axis
    that does not start at zero says so. ``last``: show only the last periods (the earlier ones
    still feed the dashed line).
    """
    from crm_helpers.information.kpis import KPI_UNITS

    unit = unit or KPI_UNITS.get(kpi, "")
    ax = ax or plt.subplots()[1]
    s = kpis.set_index("period")[kpi]
    before = s.shift(lag)
    if last is not None:
        s, before = s.tail(last), before.tail(last)
    x = np.arange(len(s))
    ax.plot(x, s.to_numpy(), color=CURRENT_COLOR, marker="o", ms=3, label=_pretty(kpi).lower())
    ax.plot(x, before.to_numpy(), color=PREVIOUS_COLOR, ls="--", label=_lag_label(lag))
    if highlight is not None and highlight in s.index:
        i = list(s.index).index(highlight)
        ax.scatter([i], [s.iloc[i]], s=80, color="C3", zorder=3, label=highlight)
    step = max(1, len(s) // 12)
    ax.set_xticks(x[::step], s.index[::step])
    name = _pretty(kpi).lower()
    return finish(ax, _pretty(kpi), x="period", y=name, yunit=unit,
                  legend=legend, rotate=45)


def kpi_trends(kpis: pd.DataFrame, names: Sequence[str], lag: int = 12, ncols: int = 2, highlight: str | None = None,
               last: int | None = None):
    """Small multiples of :func:`kpi_trend`, one panel per KPI (``last``: show only the last periods).

    The panels share the period axis: only a panel with none below it labels the periods.
    """
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 3.4 * nrows), squeeze=False, sharex=True)
    for i, (ax, name) in enumerate(zip(axes.flat, names, strict=False)):
        kpi_trend(kpis, name, lag=lag, ax=ax, highlight=highlight, legend=None, last=last)
        below = i + ncols < len(names)
        ax.tick_params(axis="x", labelbottom=not below)
        if below:
            ax.set_xlabel("")
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.suptitle(f"KPI trends (dashed: {_lag_label(lag)})", x=0.01, ha="left", fontweight="bold")
    fig.set_layout_engine("constrained")
    fig.legend(handles, ["the KPI" if i == 0 else label for i, label in enumerate(labels)], loc="outside lower center",
               ncols=len(labels), frameon=False)
    return fig


def cohort_heatmap(matrix: pd.DataFrame, title: str = "Retention by acquisition cohort", max_months: int | None = 12,
                   fmt: str = ".0%", unit: str = "%", ax=None):
    """Cohort (rows) x months since first purchase (columns) heatmap, e.g. of retention rates."""
    m = matrix if max_months is None else matrix.loc[:, : max_months]
    ax = ax or plt.subplots(figsize=(11, max(4, 0.36 * len(m) + 1.5)))[1]
    show = m.drop(columns=0) if unit == "%" and 0 in m.columns else m
    if show.empty or show.isna().all().all():  # one month of history: no month after the first yet
        return _no_data(ax, title, "no cohort has a month after its first purchase yet")
    import seaborn as sns

    sns.heatmap(show, annot=len(show) <= 40 and show.shape[1] <= 16, fmt=fmt, cmap="Blues", ax=ax,
                cbar_kws={"label": "retention rate (%)" if unit == "%" else unit_label(unit)},
                annot_kws={"size": ANNOTATION_SIZE})
    if unit == "%":
        ax.collections[0].colorbar.ax.yaxis.set_major_formatter(mticker.PercentFormatter(1.0, decimals=0))
    ax.grid(False)
    ax.tick_params(axis="y", rotation=0)
    return finish(ax, title, x="months since first purchase", y="cohort (month of first purchase)", legend=None)


def _no_data(ax, title: str, why: str):
    """An empty chart that says why it is empty, instead of an error or a blank frame."""
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, f"Nothing to show: {why}.", ha="center", va="center", transform=ax.transAxes)
    return ax


def retention_curve(curve: pd.DataFrame, title: str = "Retention curve, all cohorts pooled", ax=None):
    """Share of customers buying k months after their first purchase (month 0 left out)."""
    ax = ax or plt.subplots()[1]
    later = curve.iloc[1:]
    if later.empty:
        return _no_data(ax, title, "no cohort has a month after its first purchase yet")
    import seaborn as sns

    sns.lineplot(x=later.index, y=later["retention_rate"], marker="o", ax=ax)
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
    return finish(ax, title, x="months since first purchase", y="retention rate", yunit="rate", legend=None)


def rfm_grid(scored: pd.DataFrame, value: str = "customers", ax=None):
    """The R x F score grid: customers per cell (or the cell's total of ``value``), with segment names."""
    import seaborn as sns

    from crm_helpers.information.rfm import segment_grid

    if value == "customers":
        cells = scored.groupby(["r_score", "f_score"]).size()
        label = "customers"
    else:
        cells = scored.groupby(["r_score", "f_score"])[value].sum()
        label = axis_label(value.replace("_", " "), "money")
    grid = cells.unstack("f_score").reindex(index=range(5, 0, -1), columns=range(1, 6)).fillna(0)
    names = segment_grid().set_index(["r_score", "f_score"])["segment"]
    from crm_helpers import display

    shown = (lambda v: display.fmt(v, "count")) if value == "customers" else (lambda v: display.fmt(v, "money", 0))
    annot = np.array([["\n".join([*textwrap.wrap(names[(r, f)], 12), shown(grid.loc[r, f])]) for f in grid.columns]
                      for r in grid.index])
    ax = ax or plt.subplots(figsize=(11, 7.5))[1]
    sns.heatmap(grid, annot=annot, fmt="", cmap="Greens", ax=ax, annot_kws={"size": ANNOTATION_SIZE},
                cbar_kws={"label": label})
    ax.grid(False)
    ax.tick_params(axis="y", rotation=0)
    return finish(ax, f"RFM grid: {label} by recency and frequency score",
                  x="frequency score (5 = most purchase days)", y="recency score (5 = most recent)", legend=None)


def pareto_curve(ranked: pd.DataFrame, share_col: str = "revenue_share", top: float | None = None, ax=None,
                 what: str = "revenue"):
    """Cumulative share of ``what`` against the cumulative share of customers (largest first).

    ``ranked`` is :func:`crm_helpers.kpis.customer_revenue` or :func:`crm_helpers.rfm.profitability`.
    Marks the share held by the top ``top`` of customers; profit curves may exceed 100% (the
    'whale curve': the least profitable customers give some of it back). ``top`` defaults to
    the KPIs' :data:`crm_helpers.information.kpis.TOP_SHARE`.
    """
    from crm_helpers.information.kpis import TOP_SHARE

    top = TOP_SHARE if top is None else top
    ax = ax or plt.subplots(figsize=(7, 5))[1]
    x = np.r_[0, ranked["customer_share"].to_numpy()]
    y = np.r_[0, ranked[share_col].to_numpy()]
    from crm_helpers import display

    ax.plot(x, y, color=CURRENT_COLOR, lw=2, label=f"cumulative {what}")
    ax.plot([0, 1], [0, 1], color=PREVIOUS_COLOR, ls=":", label="equal shares")
    at = float(np.interp(top, x, y))
    ax.axvline(top, color="C3", ls="--", lw=1)
    ax.scatter([top], [at], color="C3", zorder=3,
               label=f"top {display.fmt(top, 'rate', 0)} of customers: {display.fmt(at, 'rate', 0)} of {what}")
    peak = whale_peak(x, y)
    if peak is not None:  # the whale curve: the least profitable customers give part of the profit back
        ax.axhline(1, color=PREVIOUS_COLOR, lw=0.8)
        ax.scatter([peak[0]], [peak[1]], color="C1", zorder=3, marker="^",
                   label=f"peak: {display.fmt(peak[1], 'rate')} of {what} at {display.fmt(peak[0], 'rate', 0)} of customers")
    ax.set_ylim(bottom=min(0, float(y.min())))
    ax.set_xlim(0, 1)
    return finish(ax, f"Concentration of {what} (Pareto curve)", x="share of customers, largest first",
                  y=f"cumulative share of {what}", xunit="rate", yunit="rate", legend="below")


def whale_peak(x, y, tolerance: float = 0.0005) -> tuple[float, float] | None:
    """Where a cumulative share curve peaks above 100% (share of customers, share of the total), if it does.

    A peak under 100% + ``tolerance`` (rounding) is no whale curve: ``None``.
    """
    i = int(np.argmax(y))
    return (float(x[i]), float(y[i])) if y[i] > 1 + tolerance else None


def cube_bar(df: pd.DataFrame, x: str, y: str = "revenue", hue: str | None = None, unit: str | None = None,
             title: str | None = None, ax=None, horizontal: bool = False):
    """Bar chart of a cube slice (subtotal rows labelled ``All`` are left out)."""
    import seaborn as sns

    from crm_helpers.information.olap import MEASURES, TOTAL

    data = df
    for col in [x, hue]:
        if col is not None:
            data = data[data[col].astype(str) != TOTAL]
    unit = unit or MEASURES.get(y, ("", ""))[1]
    ax = ax or plt.subplots()[1]
    kws = dict(data=data, hue=hue, ax=ax, errorbar=None)
    title = title or f"{_pretty(y)} by {x.replace('_', ' ')}" + (f" and {hue.replace('_', ' ')}" if hue else "")
    if horizontal:
        sns.barplot(x=y, y=data[x].astype(str), orient="h", **kws)
        return finish(ax, title, x=y.replace("_", " "), xunit=unit, y=x.replace("_", " "))
    sns.barplot(x=data[x].astype(str), y=y, **kws)
    return finish(ax, title, x=x.replace("_", " "), y=y.replace("_", " "), yunit=unit)


def bar(df: pd.DataFrame, x: str, y: str, hue: str | None = None, title: str = "", xlabel: str | None = None,
        unit: str = "", ax=None):
    """Horizontal bars of a count or amount ``x`` per label ``y`` (e.g. quarantined records by reason).

    ``unit`` is the unit of ``x`` (default ``count``: whole-number ticks); long labels are wrapped.
    """
    import seaborn as sns

    ax = ax or plt.subplots(figsize=(9, 0.45 * max(df[y].nunique(), 4) + 1))[1]
    sns.barplot(data=df, x=x, y=df[y].astype(str), hue=hue, orient="h", errorbar=None, ax=ax)
    return finish(ax, title, x=xlabel or x.replace("_", " "), xunit=unit or "count", y=y.replace("_", " "))


def completeness_heatmap(shares: pd.DataFrame, title: str = "Share of values filled", ax=None):
    """Heatmap of filled-value shares: one row per source, one column per field (0-100 %)."""
    import seaborn as sns

    ax = ax or plt.subplots(figsize=(max(10, 0.75 * shares.shape[1]), 0.6 * len(shares) + 2.5))[1]
    sns.heatmap(shares.astype(float), vmin=0, vmax=1, cmap="Blues", annot=True, fmt=".0%",
                cbar_kws={"format": mticker.PercentFormatter(1.0), "label": "values filled (%)"}, ax=ax,
                annot_kws={"fontsize": ANNOTATION_SIZE - 1})
    ax.tick_params(axis="y", rotation=0)
    return finish(ax, title, x="field", y="source", legend=None, rotate=45)


def dashboard_table(dashboard: pd.DataFrame):
    """The KPI dashboard (:func:`crm_helpers.information.kpis.kpi_dashboard`) for reading.

    One row per KPI (its readable name as the index, with the slice, e.g. the channel, when there
    is one), each value in its unit through :mod:`crm_helpers.display` (money in the settings'
    currency, rates as %, counts as whole numbers), the change signed (rates in points) and the
    relative change as a signed %, without the definitions. Returns a pandas Styler.
    """
    from crm_helpers import display

    shown = dashboard.drop(columns="definition", errors="ignore").copy()
    units = shown["unit"]
    shown["unit"] = units.map(unit_label)
    shown["kpi"] = shown["kpi"].map(_pretty)
    keys = [c for c in shown.columns if c not in ("kpi", "unit", "current", "previous", "change", "change_pct")]
    shown = shown.set_index([*keys, "kpi"])
    shown.index.names = [display.header(n) for n in shown.index.names]
    shown.columns = [display.header(c) if c != "change_pct" else "Change %" for c in shown.columns]
    style = shown.style.format(_value_format("%", signed=True, points=False), subset=["Change %"], na_rep=display.MISSING)
    for unit, rows in pd.Series(range(len(units)), index=shown.index).groupby(units.to_numpy()).groups.items():
        for col in ("Current", "Previous", "Change"):
            style = style.format(_value_format(unit, signed=col == "Change"), subset=pd.IndexSlice[rows, [col]],
                                 na_rep=display.MISSING)
    return style


def _value_format(unit: str, signed: bool = False, points: bool = True):
    """A formatter for one unit through :func:`crm_helpers.display.fmt`; ``signed``: a change (rates in
    percentage points unless ``points`` is false)."""
    from crm_helpers import display

    kind = display.unit_of(unit)

    def shown(v):
        if not signed:
            return display.fmt(v, kind)
        sign = "+" if v > 0 else "−" if v < 0 else ""
        if kind == display.RATE and points:
            return f"{sign}{display.fmt(abs(v) * 100, display.NUMBER, 1)} pts"
        return sign + display.fmt(abs(v), kind)

    return shown


def customer_flows(flows: pd.DataFrame, highlight: str | None = None, ax=None):
    """New and returning customers (stacked up) and lapsed customers (down) per period.

    ``flows`` is :func:`crm_helpers.information.report.customer_flows` (index: period label);
    ``highlight``: the reporting period, whose label is drawn in bold.
    """
    from crm_helpers import display

    ax = ax or plt.subplots(figsize=(10, 4.5))[1]
    x = np.arange(len(flows))
    ax.bar(x, flows["returning_customers"], color="C0", label="returning")
    ax.bar(x, flows["new_customers"], bottom=flows["returning_customers"], color="C2", label="new")
    ax.bar(x, -flows["lapsed_customers"], color="C3", label="lapsed (drawn below zero)")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(x, list(flows.index))
    finish(ax, "Customers gained and lost per period", x="period", y="customers", yunit="count", rotate=45,
           truncated=False)
    ax.yaxis.set_major_formatter(tick_formatter(lambda v: display.fmt(abs(v), display.COUNT)))
    for label in ax.get_xticklabels():
        label.set_fontweight("bold" if label.get_text() == highlight else "normal")
    return ax


# --- knowledge: segments and migration (notebook 04) ------------------------------------------

def transition_heatmap(matrix: pd.DataFrame, title: str, counts: pd.DataFrame | None = None,
                       x: str = "state after", y: str = "state before", ax=None):
    """A transition matrix as a heatmap: each row's shares (rows: the state before, columns: the
    state after), annotated as percentages, with the row's customers (``counts``: the same
    matrix in customers) in the row label."""
    import seaborn as sns

    ax = ax or plt.subplots(figsize=(max(6, 1.5 * matrix.shape[1] + 3), 0.7 * len(matrix) + 2))[1]
    shown = matrix.copy()
    if counts is not None:
        from crm_helpers import display

        shown.index = [f"{r}\n({display.fmt(counts.loc[r].sum(), 'count')} customers)" for r in matrix.index]
    shown.columns = [textwrap.fill(str(c), 14) for c in shown.columns]
    sns.heatmap(shown.astype(float), vmin=0, vmax=1, cmap="Blues", annot=True, fmt=".0%", ax=ax,
                cbar_kws={"format": mticker.PercentFormatter(1.0), "label": "share of the row (%)"},
                annot_kws={"size": ANNOTATION_SIZE})
    ax.grid(False)
    ax.tick_params(axis="y", rotation=0)
    ax.tick_params(axis="x", rotation=0)
    return finish(ax, title, x=x, y=y, legend=None, rotate=0)


def flow_chart(before: pd.Series, after: pd.Series, title: str, labels: tuple[str, str] = ("before", "after"),
               min_share: float = 0.002, ax=None):
    """An alluvial (Sankey-like) chart of customers flowing from the states ``before`` to ``after``.

    Two stacked columns, one block per state (in the categories' order when the Series are
    categorical), and a band from each state before to each state after as wide as the customers
    taking that path; bands under ``min_share`` of all customers are not drawn. ``labels`` name
    the two columns (e.g. the two dates).
    """
    from matplotlib.patches import PathPatch, Rectangle
    from matplotlib.path import Path as MplPath

    from crm_helpers import display

    def order(s):
        return [c for c in s.cat.categories if (s == c).any()] if hasattr(s, "cat") else sorted(s.unique())

    left, right = order(before), order(after)
    flows = pd.crosstab(before.astype(str), after.astype(str)).reindex(index=left, columns=right, fill_value=0)
    total, gap = flows.to_numpy().sum(), 0.02
    colors = {s: f"C{i % 10}" for i, s in enumerate(dict.fromkeys([*left, *right]))}
    ax = ax or plt.subplots(figsize=(11, 7))[1]
    width = 0.08

    def blocks(sizes):  # the top of each state's block, stacked from 1 down with a gap between
        tops, y = {}, 1.0
        for state, n in sizes.items():
            tops[state] = y
            y -= scale(n, len(sizes)) + gap
        return tops

    def scale(n, k):  # height of n customers in a column of k blocks
        return n / total * (1 - gap * (k - 1))

    top_l, top_r = blocks(flows.sum(axis=1)), blocks(flows.sum(axis=0))
    for x0, tops, sizes, side in ((0, top_l, flows.sum(axis=1), "right"), (1 - width, top_r, flows.sum(axis=0), "left")):
        for state, top in tops.items():
            h = scale(sizes[state], len(tops))
            ax.add_patch(Rectangle((x0, top - h), width, h, color=colors[state], lw=0))
            text = f"{display.wrap(state, 26)}\n{display.fmt(sizes[state], 'count')}"
            ax.text(x0 - 0.01 if side == "right" else x0 + width + 0.01, top - h / 2, text, va="center",
                    ha="right" if side == "right" else "left", fontsize="small")
    out_y, in_y = dict(top_l), dict(top_r)
    for a in left:
        for b in right:
            n = flows.loc[a, b]
            if n == 0:
                continue
            h_l, h_r = scale(n, len(left)), scale(n, len(right))
            y0, y1 = out_y[a], in_y[b]
            out_y[a] -= h_l
            in_y[b] -= h_r
            if n / total < min_share:
                continue
            xa, xb, xm = width, 1 - width, 0.5
            verts = [(xa, y0), (xm, y0), (xm, y1), (xb, y1), (xb, y1 - h_r), (xm, y1 - h_r), (xm, y0 - h_l),
                     (xa, y0 - h_l), (xa, y0)]
            codes = [MplPath.MOVETO, MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4, MplPath.LINETO,
                     MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4, MplPath.CLOSEPOLY]
            ax.add_patch(PathPatch(MplPath(verts, codes), facecolor=colors[a], alpha=0.35, lw=0))
    ax.set_xlim(-0.4, 1.4)
    ax.set_ylim(-0.02, 1.02)
    ax.set_axis_off()
    ax.text(width / 2, 1.04, labels[0], ha="center", va="bottom", fontweight="bold")
    ax.text(1 - width / 2, 1.04, labels[1], ha="center", va="bottom", fontweight="bold")
    ax.set_title("\n".join(textwrap.wrap(title, 70)), pad=24)
    return ax


def k_evidence(evidence: pd.DataFrame, chosen: int | None = None):
    """The evidence for the number of segments (:func:`crm_helpers.knowledge.segments.k_evidence`):
    silhouette, BIC and stability against k, side by side, the chosen k marked."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (("silhouette", "Silhouette (higher: better)", "number"),
              ("bic", "BIC of the mixture (lower: better)", "number"),
              ("stability", "Stability across seeds (ARI)", "number"))
    for ax, (col, label, unit) in zip(axes, panels, strict=True):
        ax.plot(evidence.index, evidence[col], marker="o", color=CURRENT_COLOR)
        if chosen is not None:
            ax.axvline(chosen, color="C3", ls="--", lw=1, label=f"chosen: k = {chosen}")
        ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
        finish(ax, label, x="number of segments k", y=col, yunit=unit, legend=None, truncated=False)
        ax.title.set_fontsize("medium")
    fig.suptitle(f"Evidence for the number of segments (chosen: k = {chosen})" if chosen else
                 "Evidence for the number of segments", x=0.01, ha="left", fontweight="bold")
    fig.set_layout_engine("constrained")
    return fig

def lift_and_gains(tables: dict[str, pd.DataFrame]):
    """Lift by decile (left) and cumulative gains (right) of one or more churn scores.

    ``tables``: model name -> :func:`crm_helpers.knowledge.churn.gains` of its score on the same
    customers (the first is the model the title speaks of). Decile 1 holds the highest scores; a
    lift of 1 and the diagonal are what contacting customers at random would give.
    """
    from crm_helpers import display

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for i, (name, t) in enumerate(tables.items()):
        left.plot(t.index, t["lift"], marker="o", color=f"C{i}", label=name)
        right.plot(np.r_[0, t["customer_share"]], np.r_[0, t["gains"]], marker="o", ms=3, color=f"C{i}",
                   label=name)
    left.axhline(1, color=PREVIOUS_COLOR, ls="--", label="random")
    right.plot([0, 1], [0, 1], color=PREVIOUS_COLOR, ls="--")
    first_name, first = next(iter(tables.items()))
    left.set_xticks(first.index)
    left.set_ylim(bottom=0)
    right.set_xlim(0, 1)
    right.set_ylim(0, 1)
    finish(left, "Lift by decile", x="decile of churn risk (1 = highest)", y="lift (× average churn rate)",
           legend=None)
    finish(right, "Cumulative gains", x="customers, riskiest first", y="churners caught", xunit="rate",
           yunit="rate", legend=None)
    lift = display.fmt(first["lift"].iloc[0], display.NUMBER, 1)
    at = float(np.interp(0.3, np.r_[0, first["customer_share"]], np.r_[0, first["gains"]]))
    fig.suptitle(f"{first_name}: the riskiest tenth churns {lift}× as often as average; the riskiest "
                 f"30% hold {display.fmt(at, 'rate', 0)} of churners", x=0.01, ha="left", fontweight="bold")
    fig.set_layout_engine("constrained")
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
    return fig


def reliability_diagram(tables: dict[str, pd.DataFrame], ax=None):
    """Observed against predicted churn rate per group of customers, for one or more models.

    ``tables``: model name -> :func:`crm_helpers.knowledge.churn.reliability`; the diagonal is
    perfect calibration. The title states the first model's mean gap (weighted by customers).
    """
    from crm_helpers import display

    ax = ax or plt.subplots(figsize=(7, 5.5))[1]
    for i, (name, t) in enumerate(tables.items()):
        ax.plot(t["predicted"], t["observed"], marker="o", color=f"C{i}", label=name)
    ax.plot([0, 1], [0, 1], color=PREVIOUS_COLOR, ls=":", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    first_name, first = next(iter(tables.items()))
    gap = float(((first["predicted"] - first["observed"]).abs() * first["customers"]).sum()
                / first["customers"].sum())
    return finish(ax, f"{first_name}: predicted churn is off the observed rate by "
                      f"{display.fmt(gap * 100, display.NUMBER, 1)} points on average",
                  x="predicted churn probability", y="observed churn rate", xunit="rate", yunit="rate")
