"""Benchmark: churn scoring (issue 10) on a built warehouse, each step timed in one process.

Steps, in order, at the default cut-off: the features and the label (Ibis queries run by the
engine, the customer table back in pandas), the calibrated gradient-boosted fit on the training
customers, the BG/NBD baseline (fit included), and the permutation importance on the test
customers. Each step runs ``--runs`` times (the median is reported, with the test AUCs, which
must not change between runs). Usage::

    .venv/bin/python bench/bench_churn.py data/warehouse.duckdb [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import machine  # noqa: E402


def one_run(warehouse: Path) -> dict:
    """Seconds of each step and the test AUCs of one run."""
    from crm_helpers import warehouse as wh
    from crm_helpers.knowledge import churn

    times = {}
    with wh.reading(warehouse) as con:
        start = time.perf_counter()
        cut = churn.default_cut_off(con)
        x, y = churn.features(con, cut), churn.labels(con, cut)
        times["features + label"] = time.perf_counter() - start
        start = time.perf_counter()
        btyd = churn.btyd_churn(con, cut)
        times["BG/NBD baseline"] = time.perf_counter() - start
    train, test = churn.split(y)
    start = time.perf_counter()
    model = churn.fit(x.loc[train], y)
    times["fit (calibrated boosting)"] = time.perf_counter() - start
    start = time.perf_counter()
    churn.importance(model, x.loc[test], y)
    times["permutation importance"] = time.perf_counter() - start
    rfm = churn.fit_rfm_baseline(x.loc[train], y)
    aucs = churn.compare(y.loc[test], {"gbm": churn.score(model, x.loc[test]), "rfm": churn.score(rfm, x.loc[test]),
                                       "btyd": btyd.reindex(test)})["auc"].round(4).to_dict()
    return {"times": times, "aucs": aucs, "customers": len(y), "features": x.shape[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [one_run(args.warehouse) for _ in range(args.runs)]
    assert all(r["aucs"] == runs[0]["aucs"] for r in runs), "the AUCs changed between runs"
    print(machine())
    print(f"{runs[0]['customers']:,} customers, {runs[0]['features']} features; test AUCs {runs[0]['aucs']}")
    print(f"| step, median of {args.runs} | seconds |\n|---|---:|")
    for step in runs[0]["times"]:
        print(f"| {step} | {statistics.median(r['times'][step] for r in runs):.1f} |")


if __name__ == "__main__":
    main()
