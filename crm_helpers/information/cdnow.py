"""The CDNOW purchase data (``data/external/cdnow``): the standard CLV benchmark, as an Ibis table.

See ``data/external/cdnow/README.md``. Columns after loading: customer_id (int), date (date),
number_of_cds (int), dollar_value (float); the 1/10 sample also keeps ``sample_customer_id``.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis.backends import BaseBackend

from crm_helpers import config

FILES = {"master": "CDNOW_master.txt", "sample": "CDNOW_sample.txt"}
#: The calibration period of the published BG/NBD and Gamma-Gamma results (39 weeks).
CALIBRATION_END = "1997-09-30"
HOLDOUT_END = "1998-06-30"


def read_cdnow(which: str = "master", directory=None) -> pd.DataFrame:
    """CDNOW transactions as a pandas DataFrame (``which`` = ``master`` or ``sample``)."""
    path = (directory or config.cdnow_dir()) / FILES[which]
    if which == "master":
        names = ["customer_id", "date", "number_of_cds", "dollar_value"]
        df = pd.read_csv(path, sep=r"\s+", skiprows=1, names=names, dtype={"date": str})
    else:
        names = ["customer_id", "sample_customer_id", "date", "number_of_cds", "dollar_value"]
        df = pd.read_csv(path, sep=r"\s+", header=None, names=names, dtype={"date": str})
    df["date"] = pd.to_datetime(df["date"], format="%Y%m%d")
    return df


def cdnow_table(which: str = "master", con: BaseBackend | None = None, directory=None) -> ir.Table:
    """CDNOW transactions loaded into a DuckDB connection (default a new in-memory one)."""
    con = con or ibis.duckdb.connect()
    df = read_cdnow(which, directory)
    t = con.create_table(f"cdnow_{which}", df, overwrite=True)
    return t.mutate(date=t.date.cast("date"))
