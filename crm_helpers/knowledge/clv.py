"""Customer lifetime: BG/NBD (buy-till-you-die) with pymc-marketing, fitted and checked on a holdout.

The warehouse starts at its first export month, but many customers signed up before it: their
earlier purchases are invisible. Such a customer who is still buying was alive on the first day
of data, and under BG/NBD (Poisson purchases, leaving only right after a purchase) a customer
alive at a moment behaves from then on like one who has just bought. So for customers signed up
before the data start, the day before it counts as their (unobserved) first purchase and every
observed purchase is a repeat; for the others the first observed purchase is the first purchase.
Customers without a purchase in the calibration period are left out (nothing to fit on).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from ibis.backends import BaseBackend
from pymc_marketing.clv import BetaGeoModel
from pymc_marketing.clv.utils import rfm_train_test_split
from sklearn.metrics import roc_auc_score

from crm_helpers import warehouse as wh
from crm_helpers.information import star

#: Time unit of the fit in days (weeks: parameters of a readable size for the default priors).
WEEK_DAYS = 7
SUMMARY_COLUMNS = ["customer_id", "frequency", "recency", "T"]


def purchase_days(con: BaseBackend | str | Path | None = None) -> pd.DataFrame:
    """Each identified customer's purchase days with their sign-up date, from the warehouse.

    Returns customer_id, order_date (a purchase day: returns are not purchases, several orders
    on one day count once) and signup_date, as pandas (one row per customer and day).
    """
    con = wh.as_connection(con)
    lines = star.customer_lines(con)
    days = lines.filter(lines.is_purchase).select("customer_id", "order_date").distinct()
    signup = con.table("dim_customer").select("customer_id", "signup_date")
    out = days.left_join(signup, "customer_id").select(
        "customer_id", "order_date", signup_date=signup.signup_date.cast("date"))
    return out.order_by(["customer_id", "order_date"]).execute()


def rfm_split(purchases: pd.DataFrame, calibration_end, holdout_end,
              data_start=None) -> pd.DataFrame:
    """Frequency, recency and T in the calibration period and purchases in the holdout.

    purchases: customer_id, order_date and (optional) signup_date, one row per purchase day;
    calibration_end / holdout_end: last days of the two periods; data_start: first day of data
    (default: the first purchase day). Customers signed up before data_start are born the day
    before it (module docstring). Durations are in weeks. Returns customer_id, frequency,
    recency, T, test_frequency (repeat purchase days in the holdout), test_T and existing_base.
    """
    tx = purchases[["customer_id", "order_date"]].assign(
        order_date=pd.to_datetime(purchases["order_date"]))
    start = pd.Timestamp(data_start) if data_start is not None else tx["order_date"].min()
    existing = pd.Index([], dtype=tx["customer_id"].dtype)
    if "signup_date" in purchases:
        early = pd.to_datetime(purchases["signup_date"]) < start
        in_calibration = tx["order_date"] <= pd.Timestamp(calibration_end)
        existing = pd.Index(tx.loc[early.to_numpy() & in_calibration.to_numpy(),
                                   "customer_id"].unique())
        birth = pd.DataFrame({"customer_id": existing,
                              "order_date": start - pd.Timedelta(days=1)})
        tx = pd.concat([birth, tx], ignore_index=True)
    out = rfm_train_test_split(tx, "customer_id", "order_date",
                               train_period_end=pd.Timestamp(calibration_end),
                               test_period_end=pd.Timestamp(holdout_end),
                               time_unit="D", time_scaler=WEEK_DAYS)
    out["existing_base"] = out["customer_id"].isin(existing)
    return out


def fit_bgnbd(summary: pd.DataFrame, random_seed: int = 0) -> BetaGeoModel:
    """BG/NBD fitted by maximum a posteriori on customer_id, frequency, recency, T."""
    model = BetaGeoModel()
    model.fit(summary[SUMMARY_COLUMNS], method="map", progressbar=False,
              random_seed=random_seed)
    return model


def predictions(model: BetaGeoModel, summary: pd.DataFrame) -> pd.DataFrame:
    """Per customer: expected repeat purchases over the holdout (test_T) and P(alive) at the
    end of the calibration period, beside the actual holdout purchases."""
    data = summary[SUMMARY_COLUMNS]
    expected = model.expected_purchases(data, future_t=summary["test_T"].to_numpy())
    p_alive = model.expected_probability_alive(data)
    return pd.DataFrame({
        "customer_id": summary["customer_id"].to_numpy(),
        "expected_purchases": np.asarray(expected.mean(("chain", "draw"))),
        "actual_purchases": summary["test_frequency"].to_numpy(),
        "p_alive": np.asarray(p_alive.mean(("chain", "draw"))),
    })


def holdout_check(pred: pd.DataFrame, alive: pd.Series | None = None, deciles: int = 10) -> dict:
    """How well BG/NBD predicted the holdout.

    total_ratio: predicted / actual repeat purchases in total; decile_mape: mean absolute
    percentage error of the mean per decile of predicted purchases; p_alive_auc (when `alive`,
    the true state by customer_id, is given): how well P(alive) ranks those truly still alive.
    """
    decile = pd.qcut(pred["expected_purchases"].rank(method="first"), deciles, labels=False)
    by_decile = pred.groupby(decile)[["expected_purchases", "actual_purchases"]].mean()
    error = (by_decile["expected_purchases"] - by_decile["actual_purchases"]).abs()
    out = {"customers": len(pred),
           "predicted": float(pred["expected_purchases"].sum()),
           "actual": int(pred["actual_purchases"].sum()),
           "decile_mape": float((error / by_decile["actual_purchases"]).mean())}
    out["total_ratio"] = out["predicted"] / out["actual"]
    if alive is not None:
        truth = alive.reindex(pred["customer_id"]).to_numpy(dtype=bool)
        out["p_alive_auc"] = float(roc_auc_score(truth, pred["p_alive"]))
    return out

