"""Customer lifetime value: buy-till-you-die models with pymc-marketing, fitted and checked on a holdout.

Repeat purchases follow BG/NBD (Fader, Hardie & Lee 2005), with the modified BG/NBD and
Pareto/NBD as alternatives; the spend per purchase day follows Gamma-Gamma. Every model is fitted
by maximum a posteriori with flat priors (``HalfFlat``: the MAP is then the maximum-likelihood fit
of the papers), or, with ``method="mcmc"``, by full Bayesian sampling, which gives each customer
a credible interval.

The warehouse starts at its first export month, but many customers signed up before it: their
earlier purchases are invisible. Such a customer who is still buying was alive on the first day
of data, and under BG/NBD (Poisson purchases, leaving only right after a purchase) a customer
alive at a moment behaves from then on like one who has just bought. So for customers signed up
before the data start, the day before it counts as their (unobserved) first purchase and every
observed purchase is a repeat; for the others the first observed purchase is the first purchase.
Customers without a purchase in the calibration period are left out (nothing to fit on).

The split into calibration and holdout periods runs in the engine (Ibis); only the one row per
customer comes back to pandas for the models.
"""

from __future__ import annotations

import time
import warnings
from datetime import timedelta
from pathlib import Path

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pytensor
from ibis.backends import BaseBackend
from pymc_extras.prior import Prior
from pymc_marketing.clv import BetaGeoModel, GammaGammaModel, ModifiedBetaGeoModel, ParetoNBDModel
from sklearn.metrics import roc_auc_score

from crm_helpers import warehouse as wh
from crm_helpers.information import rfm, star

#: Time unit of the fit in days (weeks: parameters of a readable size, as in the papers).
WEEK_DAYS = 7
DAYS_PER_MONTH = 365.25 / 12
SUMMARY_COLUMNS = ["customer_id", "frequency", "recency", "T"]
SPEND_COLUMNS = ["customer_id", "frequency", "monetary_value"]

#: The purchase models, by the name the notebook shows, and the parameters each one fits.
PURCHASE_MODELS = {"BG/NBD": BetaGeoModel, "MBG/NBD": ModifiedBetaGeoModel, "Pareto/NBD": ParetoNBDModel}
#: A customer whose first purchase is the last day of data has T = 0 and tells the fit nothing; he is
#: still scored (as a new customer), so pymc-marketing's warning about him is not news.
warnings.filterwarnings("ignore", message="T=0 is uninformative", category=UserWarning)

PARAMETERS = {"BG/NBD": ("r", "alpha", "a", "b"), "MBG/NBD": ("r", "alpha", "a", "b"),
              "Pareto/NBD": ("r", "alpha", "s", "beta"), "Gamma-Gamma": ("p", "q", "v")}


# --- data: purchase days and the calibration / holdout split, in the engine -----------------------

def purchase_day_table(con: BaseBackend | str | Path | None = None) -> ir.Table:
    """Each identified customer's purchase days as an engine expression.

    Columns: customer_id, order_date (a day with at least one sale line: returns are not
    purchases, several orders on one day count once), spend (the day's sales, gross of returns:
    spend models need positive values) and signup_date (from ``dim_customer``).
    """
    con = wh.as_connection(con)
    lines = star.customer_lines(con)
    buys = lines.filter(lines.is_purchase)
    days = buys.group_by(["customer_id", "order_date"]).aggregate(
        spend=buys.line_amount.sum().cast("float64"))
    signup = con.table("dim_customer").select("customer_id", "signup_date")
    return days.left_join(signup, "customer_id").select(
        "customer_id", "order_date", "spend", signup_date=signup.signup_date.cast("date"))


def purchase_days(con: BaseBackend | str | Path | None = None) -> pd.DataFrame:
    """:func:`purchase_day_table` as pandas (one row per customer and purchase day)."""
    return purchase_day_table(con).order_by(["customer_id", "order_date"]).execute()


def rfm_split(purchases: ir.Table | pd.DataFrame, calibration_end, holdout_end,
              data_start=None) -> pd.DataFrame:
    """Frequency, recency, T and mean spend in the calibration period, and what followed in the holdout.

    purchases: customer_id, order_date, and optionally spend (the day's value) and signup_date,
    one row per purchase day, as an Ibis table (computed in its engine) or a pandas DataFrame
    (computed in an in-memory DuckDB); calibration_end / holdout_end: last days of the two
    periods; data_start: first day of data (default: the first purchase day). Customers signed
    up before data_start are born the day before it (module docstring). Durations are in weeks.

    Returns, one row per customer with a calibration purchase (sorted by customer_id):
    customer_id, frequency, recency, T, monetary_value (mean spend of a repeat day, 0 without
    one), test_frequency (purchase days in the holdout), test_spend (their spend), test_T and
    existing_base.
    """
    t = purchases if isinstance(purchases, ir.Table) else ibis.memtable(purchases)
    spend = t.spend.cast("float64") if "spend" in t.columns else ibis.literal(0.0)
    t = t.mutate(order_date=t.order_date.cast("date"), spend=spend)
    calibration_end, holdout_end = pd.Timestamp(calibration_end).date(), pd.Timestamp(holdout_end).date()
    start = (ibis.literal(pd.Timestamp(data_start).date()) if data_start is not None
             else t.order_date.min().as_scalar())
    calibration = t.filter(t.order_date <= calibration_end)
    days = calibration.select("customer_id", "order_date", "spend")
    if "signup_date" in t.columns:
        early = calibration.filter(calibration.signup_date.cast("date") < start).select("customer_id").distinct()
        birth = early.select("customer_id", order_date=(start - ibis.interval(days=1)).cast("date"),
                             spend=ibis.literal(0.0))
        days = days.union(birth, distinct=False)
    else:
        early = days.select("customer_id").filter(ibis.literal(False))
    early = early.mutate(existing_base=ibis.literal(True))
    summary = rfm.rfm_summary(days, "customer_id", "order_date", "spend", calibration_end,
                              time_unit="D", time_scaler=WEEK_DAYS)
    holdout = t.filter((t.order_date > calibration_end) & (t.order_date <= holdout_end))
    later = holdout.group_by("customer_id").aggregate(test_frequency=holdout.order_date.nunique(),
                                                      test_spend=holdout.spend.sum())
    out = summary.left_join(later, "customer_id").left_join(early, "customer_id").select(
        *summary.columns, test_frequency=later.test_frequency.fill_null(0).cast("int64"),
        test_spend=later.test_spend.fill_null(0.0),
        existing_base=early.existing_base.fill_null(False))
    out = out.order_by("customer_id").execute()
    out.insert(out.columns.get_loc("test_spend") + 1, "test_T",
               float((holdout_end - calibration_end).days) / WEEK_DAYS)
    return out.reset_index(drop=True)


def calibration_holdout(con: BaseBackend | str | Path | None, calibration_end, holdout_end) -> pd.DataFrame:
    """:func:`rfm_split` of the warehouse's purchase days, computed in the engine."""
    return rfm_split(purchase_day_table(con), calibration_end, holdout_end)


def default_split(con: BaseBackend | str | Path | None = None, holdout_days: int = 365):
    """The usual split of the warehouse: the holdout is the last ``holdout_days`` up to the last
    order date, the calibration everything before. Returns (calibration_end, holdout_end) dates."""
    holdout_end = star.latest_order_date(wh.as_connection(con))
    return holdout_end - timedelta(days=holdout_days), holdout_end


# --- fitting -----------------------------------------------------------------------------------

def flat_priors(kind: str) -> dict:
    """``model_config`` with a flat prior (``HalfFlat``) on every parameter of ``kind``, so the
    MAP is the maximum-likelihood fit (``kind``: a key of :data:`PARAMETERS`)."""
    return {name: Prior("HalfFlat") for name in PARAMETERS[kind]}


#: PyTensor's C linker: with the compile cache warm (``base_compiledir``, which the Makefile keeps in
#: ``.pytensor``) a fresh process's first BG/NBD fit takes half the time it takes with the default
#: numba linker, whose functions are compiled again in every process (bench/RESULTS.md, issue 10).
LINKER = "cvm"


def _fit(model, data: pd.DataFrame, method: str, draws: int, chains: int, random_seed: int):
    with pytensor.config.change_flags(linker=LINKER):
        return _fit_with(model, data, method, draws, chains, random_seed)


#: The Pareto/NBD's likelihood holds a hypergeometric function whose gradient PyTensor evaluates by a
#: slow series, so a gradient-based MAP takes many minutes; Powell's method needs no gradient. With
#: flat priors the search escapes to parameters where that function breaks down (r and beta at
#: 10^4 on the sample worlds); pymc-marketing's weakly informative default priors keep it in range,
#: so the Pareto/NBD's MAP uses them (10-15 s on 2k-20k customers; bench/RESULTS.md, issue 10).
PARETO_MAP = {"method": "Powell"}


def default_priors(kind: str, method: str) -> dict:
    """The ``model_config`` a fit uses unless told otherwise: flat priors (the MAP is then the
    maximum-likelihood fit), except the Pareto/NBD's MAP, which keeps the library's defaults."""
    return {} if (kind, method) == ("Pareto/NBD", "map") else flat_priors(kind)


def _fit_with(model, data: pd.DataFrame, method: str, draws: int, chains: int, random_seed: int):
    if method == "map" and isinstance(model, ParetoNBDModel):
        model.fit(data, method="map", progressbar=False, random_seed=random_seed, map_kwargs=PARETO_MAP)
    elif method == "map":
        model.fit(data, method="map", progressbar=False, random_seed=random_seed)
    elif method == "mcmc":
        model.fit(data, method="mcmc", draws=draws, tune=draws, chains=chains, cores=1,
                  progressbar=False, random_seed=random_seed)
    else:
        raise ValueError(f"method must be 'map' or 'mcmc', not {method!r}")
    return model


def fit_purchases(summary: pd.DataFrame, kind: str = "BG/NBD", method: str = "map", draws: int = 500,
                  chains: int = 2, random_seed: int = 0, model_config: dict | None = None):
    """A purchase model (``kind``: BG/NBD, MBG/NBD or Pareto/NBD) fitted on customer_id,
    frequency, recency and T; priors from ``model_config``, else :func:`default_priors`; ``method``
    ``map`` (default) or ``mcmc`` (``draws`` after as many tuning steps, per chain)."""
    config = default_priors(kind, method) if model_config is None else model_config
    model = PURCHASE_MODELS[kind](model_config=config)
    return _fit(model, summary[SUMMARY_COLUMNS], method, draws, chains, random_seed)


def fit_bgnbd(summary: pd.DataFrame, random_seed: int = 0, method: str = "map", **kwargs) -> BetaGeoModel:
    """BG/NBD fitted (by default by maximum a posteriori, flat priors) on customer_id, frequency, recency, T."""
    return fit_purchases(summary, "BG/NBD", method, random_seed=random_seed, **kwargs)


def fit_gamma_gamma(summary: pd.DataFrame, method: str = "map", draws: int = 500, chains: int = 2,
                    random_seed: int = 0, model_config: dict | None = None) -> GammaGammaModel:
    """Gamma-Gamma spend model fitted on the customers with repeat purchases (frequency > 0) and
    their mean repeat spend (monetary_value > 0); flat priors unless ``model_config`` says otherwise."""
    repeaters = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    model = GammaGammaModel(model_config=model_config or flat_priors("Gamma-Gamma"))
    return _fit(model, repeaters[SPEND_COLUMNS], method, draws, chains, random_seed)


def parameters(model) -> pd.Series:
    """The fitted parameters of a model (posterior means for ``mcmc``), named as in the papers."""
    kind = next(k for k, cls in {**PURCHASE_MODELS, "Gamma-Gamma": GammaGammaModel}.items() if type(model) is cls)
    names = PARAMETERS[kind]
    post = model.idata.posterior
    return pd.Series({n: float(post[n].mean()) for n in names}).rename(
        {"v": "gamma"} if isinstance(model, GammaGammaModel) else {})


def spend_independence(summary: pd.DataFrame) -> dict:
    """Gamma-Gamma assumes a customer's mean spend does not depend on how often they buy: the
    Pearson and Spearman correlation of frequency and mean repeat spend among repeat buyers."""
    rep = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    return {"customers": len(rep),
            "pearson": float(rep["frequency"].corr(rep["monetary_value"])),
            "spearman": float(rep["frequency"].corr(rep["monetary_value"], method="spearman"))}


# --- predictions -------------------------------------------------------------------------------

def _mean(x) -> np.ndarray:
    return np.asarray(x.mean(("chain", "draw")))


def _interval(x, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    q = x.quantile([low, high], dim=("chain", "draw"))
    return np.asarray(q.sel(quantile=low)), np.asarray(q.sel(quantile=high))


def predictions(model, summary: pd.DataFrame, spend_model: GammaGammaModel | None = None) -> pd.DataFrame:
    """Per customer: expected repeat purchases over the holdout (test_T) and P(alive) at the end
    of the calibration period, beside the actual holdout purchases; with a ``spend_model``, also
    the expected holdout spend (expected purchases x expected spend per purchase day) beside
    the actual (test_spend)."""
    data = summary[SUMMARY_COLUMNS]
    expected = _mean(model.expected_purchases(data, future_t=summary["test_T"].to_numpy()))
    out = pd.DataFrame({
        "customer_id": summary["customer_id"].to_numpy(),
        "expected_purchases": expected,
        "actual_purchases": summary["test_frequency"].to_numpy(),
        "p_alive": _mean(model.expected_probability_alive(data)),
    })
    if spend_model is not None:
        out["expected_spend"] = expected * expected_spend(spend_model, summary)
        out["actual_spend"] = summary["test_spend"].to_numpy()
    return out


def expected_spend(spend_model: GammaGammaModel, summary: pd.DataFrame) -> np.ndarray:
    """Gamma-Gamma's expected spend per purchase day of each customer (a customer without repeat
    purchases gets the population mean)."""
    data = summary[SPEND_COLUMNS].assign(monetary_value=summary["monetary_value"].where(summary["frequency"] > 0, 0))
    return _mean(spend_model.expected_customer_spend(data))


def customer_values(model, spend_model: GammaGammaModel, summary: pd.DataFrame, horizon_days: int = 365,
                    clv_months: int = 36, annual_discount_rate: float = 0.10,
                    interval: float = 0.90) -> pd.DataFrame:
    """Per customer, at the end of the data in ``summary``: p_alive, expected_purchases_365d (over
    ``horizon_days``), expected_spend (per purchase day) and clv (expected spend over
    ``clv_months``, discounted monthly at ``annual_discount_rate``, by pymc-marketing's
    ``expected_customer_lifetime_value``). A model fitted by ``mcmc`` adds each customer's
    credible interval (``clv_low``, ``clv_high``, ``p_alive_low``, ``p_alive_high``; central
    ``interval``)."""
    data = summary[SUMMARY_COLUMNS]
    alive = model.expected_probability_alive(data)
    purchases = model.expected_purchases(data, future_t=horizon_days / WEEK_DAYS)
    spend_data = summary[SUMMARY_COLUMNS + ["monetary_value"]].assign(
        monetary_value=summary["monetary_value"].where(summary["frequency"] > 0, 0))
    monthly = (1 + annual_discount_rate) ** (1 / 12) - 1
    clv = spend_model.expected_customer_lifetime_value(model, spend_data, future_t=clv_months,
                                                       discount_rate=monthly, time_unit="W")
    out = pd.DataFrame({"customer_id": summary["customer_id"].to_numpy(), "p_alive": _mean(alive),
                        f"expected_purchases_{horizon_days}d": _mean(purchases),
                        "expected_spend": expected_spend(spend_model, summary), "clv": _mean(clv)})
    draws = alive.sizes.get("chain", 1) * alive.sizes.get("draw", 1)
    if draws > 1:
        low, high = (1 - interval) / 2, (1 + interval) / 2
        out["clv_low"], out["clv_high"] = _interval(clv, low, high)
        out["p_alive_low"], out["p_alive_high"] = _interval(alive, low, high)
    return out


# --- checks ------------------------------------------------------------------------------------

def by_decile(pred: pd.DataFrame, expected: str = "expected_purchases", actual: str = "actual_purchases",
              deciles: int = 10) -> pd.DataFrame:
    """Mean expected and actual per decile of ``expected`` (1 = the lowest tenth), with customers."""
    decile = pd.qcut(pred[expected].rank(method="first"), deciles, labels=False) + 1
    out = pred.groupby(decile.rename("decile"))[[expected, actual]].mean()
    return out.rename(columns={expected: "expected", actual: "actual"}).assign(
        customers=pred.groupby(decile).size())


def holdout_check(pred: pd.DataFrame, alive: pd.Series | None = None, deciles: int = 10) -> dict:
    """How well a purchase model predicted the holdout.

    total_ratio: predicted / actual repeat purchases in total; decile_mape: mean absolute
    percentage error of the mean per decile of predicted purchases; p_alive_auc (when `alive`,
    the true state by customer_id, is given): how well P(alive) ranks those truly still alive.
    """
    table = by_decile(pred, deciles=deciles)
    error = (table["expected"] - table["actual"]).abs()
    out = {"customers": len(pred),
           "predicted": float(pred["expected_purchases"].sum()),
           "actual": int(pred["actual_purchases"].sum()),
           "decile_mape": float((error / table["actual"]).mean())}
    out["total_ratio"] = out["predicted"] / out["actual"]
    if alive is not None:
        truth = alive.reindex(pred["customer_id"]).to_numpy(dtype=bool)
        out["p_alive_auc"] = float(roc_auc_score(truth, pred["p_alive"]))
    return out


def compare_purchase_models(summary: pd.DataFrame, kinds=tuple(PURCHASE_MODELS), method: str = "map",
                            alive: pd.Series | None = None, random_seed: int = 0, **fit_options) -> pd.DataFrame:
    """Each purchase model fitted on the calibration period and scored on the holdout
    (:func:`holdout_check`), with its fit time in seconds; one row per model (index ``model``)."""
    rows, models = [], {}
    for kind in kinds:
        started = time.perf_counter()
        models[kind] = fit_purchases(summary, kind, method, random_seed=random_seed, **fit_options)
        seconds = time.perf_counter() - started
        rows.append({"model": kind, **holdout_check(predictions(models[kind], summary), alive),
                     "fit_seconds": seconds})
    out = pd.DataFrame(rows).set_index("model")
    out.attrs["models"] = models
    return out


def expected_by_frequency(pred: pd.DataFrame, summary: pd.DataFrame, top: int = 7) -> pd.DataFrame:
    """Mean expected and actual holdout purchases by calibration frequency (0, 1, ... ``top``+),
    the conditional-expectations check of the BG/NBD paper; with the customers in each group."""
    group = summary["frequency"].clip(upper=top).astype(int).to_numpy()
    out = pred.groupby(group)[["expected_purchases", "actual_purchases"]].mean().rename(
        columns={"expected_purchases": "expected", "actual_purchases": "actual"})
    out["customers"] = pd.Series(group).value_counts().sort_index().to_numpy()
    out.index = [f"{g}+" if g == top else str(g) for g in out.index]
    return out.rename_axis("calibration_frequency")


def cumulative_tracking(model, purchases: pd.DataFrame, holdout_end) -> pd.DataFrame:
    """Week by week, cumulative repeat purchase days of a cohort: actual, and the model's
    expectation for new customers (``expected_purchases_new_customer`` from each customer's first
    purchase). purchases: customer_id, order_date (one row per purchase day, every customer
    born at their first observed purchase, as in CDNOW). Returns week, actual, expected."""
    days = purchases.assign(order_date=pd.to_datetime(purchases["order_date"]))
    first = days.groupby("customer_id")["order_date"].transform("min")
    start = first.min()
    weeks = int(np.ceil((pd.Timestamp(holdout_end) - start).days / WEEK_DAYS))
    repeat_week = np.ceil(((days["order_date"] - start).dt.days[days["order_date"] > first] + 1) / WEEK_DAYS)
    actual = repeat_week.value_counts().reindex(range(1, weeks + 1), fill_value=0).cumsum()
    born = ((first.groupby(days["customer_id"]).first() - start).dt.days / WEEK_DAYS).value_counts()
    grid = np.arange(1, weeks + 1, dtype=float)
    t = np.clip(grid[:, None] - born.index.to_numpy()[None, :], 0, None)  # weeks since each birth day
    cells = pd.DataFrame({"customer_id": np.arange(t.size), "frequency": 0, "recency": 0.0, "T": 1.0})
    per_customer = _mean(model.expected_purchases_new_customer(cells, t=t.ravel())).reshape(t.shape)
    expected = (per_customer * born.to_numpy()[None, :]).sum(axis=1)
    return pd.DataFrame({"week": grid.astype(int), "actual": actual.to_numpy(), "expected": expected})


def alive_matrix(model, what: str = "p_alive", max_frequency: int | None = None, max_recency: int | None = None,
                 T: float | None = None, horizon_weeks: float = 52) -> pd.DataFrame:
    """The frequency/recency matrix of a fitted purchase model for a customer of age ``T`` weeks
    (default: the oldest in the fit): P(alive) (``what="p_alive"``) or the expected purchases over
    ``horizon_weeks`` (``what="expected_purchases"``), rows = recency (weeks, rounded), columns =
    frequency (repeat purchase days)."""
    data = model.data
    max_frequency = int(max_frequency if max_frequency is not None else data["frequency"].quantile(0.99))
    T = float(T if T is not None else data["T"].max())
    max_recency = int(max_recency if max_recency is not None else T)
    freq, rec = np.meshgrid(np.arange(max_frequency + 1), np.arange(max_recency + 1))
    grid = pd.DataFrame({"customer_id": np.arange(freq.size), "frequency": freq.ravel(),
                         "recency": rec.ravel().astype(float), "T": T})
    grid.loc[grid["frequency"] == 0, "recency"] = 0.0  # no repeat purchase: recency is zero by definition
    value = (model.expected_probability_alive(grid) if what == "p_alive"
             else model.expected_purchases(grid, future_t=horizon_weeks))
    out = pd.DataFrame(_mean(value).reshape(freq.shape), index=np.arange(max_recency + 1),
                       columns=np.arange(max_frequency + 1))
    return out.rename_axis(index="recency_weeks", columns="frequency")
