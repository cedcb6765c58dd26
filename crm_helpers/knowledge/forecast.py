"""Monthly forecasts of revenue, active customers and new customers, checked in a backtest.

Three methods, each a function of the history (a monthly series) and a horizon that returns the
forecast with a prediction interval:

- **seasonal naive**: the same month a year earlier; the interval widens with the spread of
  past year-on-year changes. The benchmark every model must beat.
- **Holt-Winters** (statsmodels' ``ExponentialSmoothing``): level, additive trend and additive
  monthly seasonality on the log of the series (so seasonality is a percentage); the interval
  from 1,000 simulated futures.
- **SARIMAX** (statsmodels): the "airline" form ARIMA(0,1,1)(0,1,0)12 on the log, with holiday
  regressors derived from the calendar itself (:func:`holiday_regressors`: the share of Easter's
  five days, Maundy Thursday to Easter Monday, falling in each month, via ``dateutil.easter``; a
  moving holiday the month-of-year seasonality cannot learn). December and the January sales
  come back every year in the same month, so the seasonal difference carries them.

The **backtest** is rolling-origin: for each of the last `origins` months, fit on everything
before it and forecast `horizon` months ahead. With about 36 months of data and 24 needed to see
two seasons, that leaves 12 one-step-ahead origins: it measures next month's forecast, not a
year ahead. MAPE (mean absolute percentage error) and interval coverage (share of actuals inside
the interval) are measured there.

statsmodels (and the scipy.stats it brings) takes one to two seconds to import, so the models
import it where they fit: the periodic report reads this module for its words and chart and fits
its one model in a second process (:func:`report_outlook`), and its kernel never pays that import.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from statistics import NormalDist

import ibis
import numpy as np
import pandas as pd
from dateutil.easter import easter
from ibis.backends import BaseBackend
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from crm_helpers import periods
from crm_helpers import warehouse as wh
from crm_helpers.information import kpis, star

SEASON = 12
#: The three monthly series forecast, with their display units.
SERIES_UNITS = {"revenue": "money", "active_customers": "count", "new_customers": "count"}
#: The series' names as readers see them.
SERIES_NAMES = {"revenue": "Revenue", "active_customers": "Active customers", "new_customers": "New customers"}
#: Nominal coverage of the prediction intervals.
LEVEL = 0.8
#: Simulated futures behind the Holt-Winters interval.
SIMULATIONS = 1000


def monthly_series(con: BaseBackend | str | Path | None = None) -> pd.DataFrame:
    """Revenue, active customers and new customers per complete month (pandas, month-start index).

    Revenue and active customers are the KPIs of :func:`crm_helpers.information.kpis.kpi_table`.
    New customers here are customers *acquired* within the data: signed up on or after its first
    day, counted in the month of their first purchase (the KPI of the same name also counts the
    existing base's first visible purchase, which inflates the first months). A last month that
    the data do not cover to its end is left out, and so is a month without a single order
    (a hole in the data, which :func:`missing_months` reports).
    """
    con = wh.as_connection(con)
    table = kpis.kpi_table(con, "month").set_index("period_start")
    table = table[table["orders"] > 0]  # a month without one order is a hole in the data: missing_months names it
    first = star.first_purchases(star.customer_lines(con))
    c = con.table("dim_customer")
    start = con.table("fact_order_line").order_date.min().execute()
    acquired = first.join(c.filter(c.signup_date.cast("date") >= periods.as_date(start)), "customer_id")
    month = periods.period_start(acquired.first_purchase, "month")
    new = acquired.group_by(month.name("period_start")).aggregate(new_customers=ibis._.count()).execute()
    new = new.set_index(pd.to_datetime(new["period_start"]))["new_customers"]
    out = table[["revenue", "active_customers"]].join(new).fillna({"new_customers": 0})
    out.index = pd.DatetimeIndex(out.index, name="month")
    last = pd.Timestamp(star.latest_order_date(con))
    if last < out.index[-1] + pd.offsets.MonthEnd(0):
        out = out.iloc[:-1]
    return out.astype({"active_customers": "int64", "new_customers": "int64"})


def holiday_regressors(months: pd.DatetimeIndex) -> pd.DataFrame:
    """Calendar regressors per month (month-start index): ``easter``, the share of the five
    Easter days (Maundy Thursday to Easter Monday) that fall in the month."""
    shares = []
    for month in months:
        sunday = pd.Timestamp(easter(month.year))
        days = pd.date_range(sunday - pd.Timedelta(days=3), sunday + pd.Timedelta(days=1))
        shares.append(float((days.month == month.month).mean()))
    return pd.DataFrame({"easter": shares}, index=months)


def _future(history: pd.Series, horizon: int) -> pd.DatetimeIndex:
    return pd.date_range(history.index[-1] + pd.offsets.MonthBegin(1), periods=horizon, freq="MS")


def _frame(index, mean, lower, upper) -> pd.DataFrame:
    return pd.DataFrame({"forecast": mean, "lower": lower, "upper": upper}, index=index)


def seasonal_naive(history: pd.Series, horizon: int, level: float = LEVEL) -> pd.DataFrame:
    """The value of the same month one year before; interval from the standard deviation of the
    past year-on-year log changes, widening by one step per year ahead."""
    index = _future(history, horizon)
    log = np.log(history.astype("float64"))
    sd = (log - log.shift(SEASON)).dropna().std()
    steps = np.arange(horizon)
    mean = log.iloc[-SEASON:].to_numpy()[steps % SEASON]
    z = NormalDist().inv_cdf(0.5 + level / 2) * sd * np.sqrt(steps // SEASON + 1)
    return _frame(index, np.exp(mean), np.exp(mean - z), np.exp(mean + z))


def holt_winters(history: pd.Series, horizon: int, level: float = LEVEL, seed: int = 0) -> pd.DataFrame:
    """Holt-Winters (additive trend and seasonality on the log), interval from simulated futures."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing  # statsmodels: imported where fitted (see above)

    log = np.log(history.astype("float64")).asfreq("MS")
    with warnings.catch_warnings(), threadpool_limits(1):  # tiny matrices: threads only contend
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(log, trend="add", seasonal="add", seasonal_periods=SEASON,
                                   initialization_method="estimated").fit()
        paths = np.asarray(fit.simulate(horizon, repetitions=SIMULATIONS, error="add",
                                        anchor="end", random_state=seed)).reshape(horizon, -1)
    tail = (1 - level) / 2
    return _frame(_future(history, horizon), np.exp(np.asarray(fit.forecast(horizon))),
                  np.exp(np.quantile(paths, tail, axis=1)), np.exp(np.quantile(paths, 1 - tail, axis=1)))


def sarimax(history: pd.Series, horizon: int, level: float = LEVEL) -> pd.DataFrame:
    """SARIMAX(0,1,1)(0,1,0)12 on the log with the holiday regressors of :func:`holiday_regressors`."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX  # statsmodels: imported where fitted (see above)

    index = _future(history, horizon)
    log = np.log(history.astype("float64")).asfreq("MS")
    with warnings.catch_warnings(), threadpool_limits(1):  # tiny matrices: threads only contend
        warnings.simplefilter("ignore")
        fit = SARIMAX(log, exog=holiday_regressors(log.index), order=(0, 1, 1),
                      seasonal_order=(0, 1, 0, SEASON)).fit(disp=False)
        pred = fit.get_forecast(horizon, exog=holiday_regressors(index))
    bounds = np.asarray(pred.conf_int(alpha=1 - level))
    return _frame(index, np.exp(np.asarray(pred.predicted_mean)), np.exp(bounds[:, 0]), np.exp(bounds[:, 1]))


#: The methods compared, by the name readers see; the benchmark first.
METHODS: dict[str, Callable[..., pd.DataFrame]] = {
    "Seasonal naive": seasonal_naive,
    "Holt-Winters": holt_winters,
    "SARIMAX + Easter": sarimax,
}
BENCHMARK = "Seasonal naive"


def backtest(series: pd.DataFrame, origins: int = 12, horizon: int = 1, level: float = LEVEL,
             methods: Mapping[str, Callable[..., pd.DataFrame]] | None = None,
             progress: bool = True) -> pd.DataFrame:
    """Rolling-origin backtest of every method on every column of `series`.

    For each of the last `origins` possible origins (the first month forecast), each method is
    fitted on the months before it and forecasts `horizon` months. Returns one row per series,
    method, origin and step: series, method, origin, month, step (1 = next month), actual,
    forecast, lower, upper, ape (absolute percentage error) and covered (actual inside the
    interval).
    """
    methods = methods or METHODS
    starts = range(len(series) - origins - horizon + 1, len(series) - horizon + 1)
    jobs = [(name, method, col, o) for col in series for name, method in methods.items() for o in starts]
    rows = []
    for name, method, col, o in tqdm(jobs, desc="backtest", disable=not progress):
        y = series[col]
        fc = method(y.iloc[:o], horizon, level=level)
        actual = y.iloc[o:o + horizon].to_numpy(dtype="float64")
        rows.append(fc.assign(series=col, method=name, origin=y.index[o], step=np.arange(1, horizon + 1),
                              actual=actual).rename_axis("month").reset_index())
    out = pd.concat(rows, ignore_index=True)
    out["ape"] = (out["forecast"] - out["actual"]).abs() / out["actual"].abs()
    out["covered"] = out["actual"].between(out["lower"], out["upper"])
    return out[["series", "method", "origin", "month", "step", "actual", "forecast", "lower", "upper",
                "ape", "covered"]]


def accuracy(results: pd.DataFrame) -> pd.DataFrame:
    """Per series and method: points, mape and coverage of the intervals (from :func:`backtest`),
    and mape_vs_benchmark (the method's MAPE / seasonal naive's)."""
    g = results.groupby(["series", "method"], sort=False)
    out = g.agg(points=("ape", "size"), mape=("ape", "mean"), coverage=("covered", "mean"))
    bench = out.xs(BENCHMARK, level="method")["mape"]
    out["mape_vs_benchmark"] = out["mape"] / bench.reindex(out.index.get_level_values("series")).to_numpy()
    return out


def best_methods(acc: pd.DataFrame) -> pd.Series:
    """The method with the lowest backtest MAPE for each series, the benchmark excluded."""
    models = acc.drop(BENCHMARK, level="method")
    return models["mape"].groupby(level="series", sort=False).idxmin().map(lambda key: key[1])


def forecast(series: pd.DataFrame, chosen: Mapping[str, str], horizon: int = 12,
             level: float = LEVEL) -> pd.DataFrame:
    """Each series forecast `horizon` months past its end by its `chosen` method.

    Returns one row per series and month: series, method, month, forecast, lower, upper.
    """
    frames = [METHODS[chosen[col]](series[col], horizon, level=level)
              .assign(series=col, method=chosen[col]).rename_axis("month").reset_index()
              for col in series]
    return pd.concat(frames, ignore_index=True)[["series", "method", "month", "forecast", "lower", "upper"]]


def plot_forecast(history: pd.Series, future: pd.DataFrame, unit: str, title: str,
                  backtest_rows: pd.DataFrame | None = None, level: float = LEVEL, ax=None,
                  legend: str | None = "outside"):
    """History (line), the forecast (dashed) with its interval (band) and, when given, the
    backtest's one-step forecasts with their intervals (points with bars)."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    from crm_helpers import plots

    ax = ax or plt.subplots(figsize=(9, 4))[1]
    ax.plot(history.index, history.to_numpy(), color="C0", marker="o", ms=3, label="actual")
    if backtest_rows is not None and len(backtest_rows):
        b = backtest_rows
        ax.errorbar(b["month"], b["forecast"], yerr=[b["forecast"] - b["lower"], b["upper"] - b["forecast"]],
                    fmt="s", ms=3, color="C2", alpha=0.8, capsize=2, label="backtest forecast (1 month ahead)")
    joined = pd.concat([pd.DataFrame({"month": [history.index[-1]], "forecast": [history.iloc[-1]],
                                      "lower": [history.iloc[-1]], "upper": [history.iloc[-1]]}),
                        future[["month", "forecast", "lower", "upper"]]], ignore_index=True)
    ax.plot(joined["month"], joined["forecast"], color="C1", ls="--", label="forecast")
    ax.fill_between(joined["month"], joined["lower"], joined["upper"], color="C1", alpha=0.25,
                    label=f"{level:.0%} prediction interval")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(mdates.YearLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
    ax.xaxis.set_minor_locator(mdates.MonthLocator())
    return plots.finish(ax, title, x="month", y=SERIES_NAMES.get(history.name, history.name).lower(), yunit=unit,
                        legend=legend)


def plot_forecasts(series: pd.DataFrame, future: pd.DataFrame, results: pd.DataFrame | None,
                   chosen: Mapping[str, str], units: Mapping[str, str] | None = None):
    """One panel per series (:func:`plot_forecast`), each titled with the change of the forecast
    months against as many months before; the backtest rows of the chosen method are shown."""
    import matplotlib.pyplot as plt

    units = units or SERIES_UNITS
    last = len(series.columns) - 1
    fig, axes = plt.subplots(len(series.columns), 1, figsize=(9, 3.4 * len(series.columns) + 0.8), squeeze=False)
    for i, (name, ax) in enumerate(zip(series.columns, axes[:, 0])):
        rows = future[future["series"] == name]
        past = None if results is None else results[(results["series"] == name) & (results["method"] == chosen[name])]
        change = rows["forecast"].sum() / series[name].iloc[-len(rows):].sum() - 1
        title = (f"{SERIES_NAMES.get(name, name)}: {'up' if change > 0 else 'down'} {abs(change):.0%} "
                 f"over the next {len(rows)} months ({chosen[name]})")
        plot_forecast(series[name], rows, units.get(name, "count"), title, past, ax=ax,
                      legend="below" if i == last else None)
    fig.tight_layout()
    return fig


def missing_months(series: pd.DataFrame) -> list[str]:
    """Months between the first and last of `series` that it does not hold, as labels
    (a forecast needs every month: a gap shifts the seasons)."""
    full = pd.date_range(series.index.min(), series.index.max(), freq="MS")
    return [m.strftime("%Y-%m") for m in full.difference(series.index)]


def backtest_sentence(acc: pd.DataFrame, best: pd.Series, names: Mapping[str, str] | None = None) -> str:
    """Each series' best method, its MAPE and how it compares with seasonal naive, in words."""
    parts = []
    for series, method in best.items():
        row, bench = acc.loc[(series, method)], acc.loc[(series, BENCHMARK)]
        name = (names or SERIES_NAMES).get(series, series.replace("_", " ")).lower()
        parts.append(f"{name}: **{method}**, off by {row['mape']:.1%} on average against {bench['mape']:.1%} "
                     f"for seasonal naive ({row['mape_vs_benchmark']:.2f} of its error), its "
                     f"{LEVEL:.0%} intervals holding {row['coverage']:.0%} of the actuals")
    return "One month ahead, the best method for " + "; for ".join(parts) + "."


def outlook_sentence(series: pd.DataFrame, future: pd.DataFrame, money) -> str:
    """The next `len(future)` months against the last as many, per series, in words."""
    parts, n = [], int(future.groupby("series").size().max())
    for name, rows in future.groupby("series", sort=False):
        before = series[name].iloc[-n:]
        total = name == "revenue" or name == "new_customers"
        now, then = (rows["forecast"].sum(), before.sum()) if total else (rows["forecast"].mean(), before.mean())
        shown = money if name == "revenue" else (lambda v: f"{v:,.0f}")
        what = {"revenue": "revenue", "new_customers": "new customers"}.get(name, "active customers per month on average")
        word = "up" if now > then else "down"
        parts.append(f"{what} {shown(now)} ({word} {abs(now / then - 1):.0%} on the last {n} months; "
                     f"{LEVEL:.0%} interval of the first month {shown(rows['lower'].iloc[0])} to "
                     f"{shown(rows['upper'].iloc[0])})")
    return f"Over the next {n} months: " + "; ".join(parts) + "."


# --- the periodic report: this year's forecast against the actuals so far -----------------------

def revenue_outlook(con, period_end, level: float = LEVEL, **kpi_filters) -> tuple[pd.Series, pd.DataFrame | None]:
    """Monthly revenue up to `period_end` and the year's forecast made at its start.

    Holt-Winters (:func:`holt_winters`) is fitted on the months before January of `period_end`'s
    year and forecasts that year's twelve months: the forecast a plan would have used. Returns
    (history: revenue per month up to `period_end`; outlook: month, forecast, lower, upper,
    actual (NaN for months after `period_end`), or None when fewer than two years of months, or a
    month without revenue, come before the year). `kpi_filters`: a slice, as
    :func:`crm_helpers.information.kpis.kpi_table` takes it.
    """
    end = pd.Timestamp(periods.as_date(period_end))
    table = kpis.kpi_table(con, "month", end=end.replace(day=1), **kpi_filters)
    history = table.set_index("period_start")["revenue"].rename("revenue")
    history.index = pd.DatetimeIndex(history.index, name="month")
    origin = pd.Timestamp(end.year, 1, 1)
    before = history[history.index < origin]
    if len(before) < 2 * SEASON or missing_months(before.to_frame()) or (before <= 0).any():
        return history, None
    out = holt_winters(before, SEASON, level=level).rename_axis("month").reset_index()
    out["actual"] = out["month"].map(history[history.index >= origin])
    return history, out


def report_outlook(warehouse, bounds: periods.PeriodBounds, where) -> tuple[pd.Series, pd.DataFrame | None]:
    """The periodic report's forecast section: :func:`revenue_outlook` of the report's slice
    (``where``, :class:`crm_helpers.information.report.Slice`) to the end of its period (``bounds``),
    read in one short visit to the warehouse. Self-contained, so the report can run it in a second
    process (:func:`crm_helpers.reports.in_background`)."""
    from crm_helpers.information import report

    with wh.reading(warehouse) as con:
        return revenue_outlook(con, bounds.end, **report.slice_filters(con, bounds, where))


def outlook_words(outlook: pd.DataFrame | None, money, level: float = LEVEL) -> str:
    """This year's actual revenue so far against the forecast made at its start, in words."""
    if outlook is None:
        return "No forecast: fewer than two complete years of months come before this year."
    done = outlook.dropna(subset=["actual"])
    year = outlook["month"].iloc[0].year
    inside = done["actual"].between(done["lower"], done["upper"])
    actual, planned = done["actual"].sum(), done["forecast"].sum()
    rest = outlook[outlook["actual"].isna()]
    words = (f"{year} so far ({len(done)} months): revenue {money(actual)} against {money(planned)} forecast at "
             f"the start of the year ({'above' if actual > planned else 'below'} by "
             f"{abs(actual / planned - 1):.1%}); {int(inside.sum())} of the {len(done)} months fell inside the "
             f"{level:.0%} interval")
    if len(inside) and not inside.iloc[-1]:
        words += f", not the latest ({done['month'].iloc[-1]:%Y-%m})"
    if len(rest):
        what = "The last month is" if len(rest) == 1 else f"The remaining {len(rest)} months are"
        words += f". {what} forecast at {money(rest['forecast'].sum())}"
    return words + "."


def plot_outlook(history: pd.Series, outlook: pd.DataFrame, unit: str = "money", level: float = LEVEL, ax=None):
    """The months before the year and its actuals (line) against the year's forecast (dashed)
    and its interval (band)."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    from crm_helpers import plots

    ax = ax or plt.subplots(figsize=(10, 4))[1]
    shown = history[history.index >= outlook["month"].iloc[0] - pd.DateOffset(months=SEASON)]
    ax.plot(shown.index, shown.to_numpy(), color="C0", marker="o", ms=3, label="actual")
    ax.plot(outlook["month"], outlook["forecast"], color="C1", ls="--", marker="s", ms=3,
            label="forecast made at the start of the year")
    ax.fill_between(outlook["month"], outlook["lower"], outlook["upper"], color="C1", alpha=0.25,
                    label=f"{level:.0%} prediction interval")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 7)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    done = outlook.dropna(subset=["actual"])
    direction = "above" if done["actual"].sum() > done["forecast"].sum() else "below"
    title = f"Revenue so far in {outlook['month'].iloc[0].year}: {direction} the forecast made at the start of the year"
    return plots.finish(ax, title, x="month", y="revenue", yunit=unit)
