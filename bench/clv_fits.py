"""Benchmark: BG/NBD and Gamma-Gamma fit times (CDNOW and a warehouse), and notebook 05's run time.

Each fit measurement runs in a fresh process (``--child``), which imports the stack, then fits
BG/NBD and Gamma-Gamma twice: the first fit pays PyTensor's graph compilation (from an empty
temporary ``base_compiledir``: cold; or from the persistent one, already filled: warm), the
second shows the in-process cost once compiled. Median of ``--runs`` runs; results as a Markdown
table on stdout, ready for ``bench/RESULTS.md``.

    .venv/bin/python bench/clv_fits.py --world /work/worlds/w20k --runs 3 [--notebook]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(dataset: str, warehouse: str | None) -> dict:
    """One fresh process: import, then fit BG/NBD and Gamma-Gamma twice each; seconds per step."""
    started = time.perf_counter()
    from crm_helpers.knowledge import clv  # pymc-marketing, PyMC, PyTensor
    out = {"import": time.perf_counter() - started}
    if dataset == "cdnow":
        from crm_helpers.information import cdnow

        tx = cdnow.read_cdnow("sample").rename(columns={"date": "order_date", "dollar_value": "spend"})
        days = tx.groupby(["customer_id", "order_date"], as_index=False)["spend"].sum()
        summary = clv.rfm_split(days, cdnow.CALIBRATION_END, cdnow.HOLDOUT_END)
    else:
        from crm_helpers import warehouse as wh

        with wh.reading(warehouse) as con:
            summary = clv.calibration_holdout(con, *clv.default_split(con))
    out["customers"] = len(summary)
    for attempt in ("first", "second"):
        for name, fit in (("bgnbd", clv.fit_bgnbd), ("gamma_gamma", clv.fit_gamma_gamma)):
            t = time.perf_counter()
            fit(summary)
            out[f"{name}_{attempt}"] = time.perf_counter() - t
    return out


def run_child(dataset: str, warehouse: str | None, compiledir: str) -> dict:
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={compiledir}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, __file__, "--child", dataset] + (["--warehouse", warehouse] if warehouse else [])
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def notebook_seconds(world: Path) -> float:
    """Notebook 05 through papermill on a copy of ``world``'s warehouse (it writes customer_scores)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "warehouse.duckdb"
        shutil.copy(world / "warehouse.duckdb", copy)
        shutil.copy(world / "sources.yml", Path(tmp) / "sources.yml")
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("papermill")), "05_value_and_risk.ipynb",
                        str(Path(tmp) / "05.ipynb"), "-p", "data_dir", tmp, "-p", "warehouse", str(copy),
                        "--no-progress-bar"], cwd=ROOT / "notebooks", check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"})
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["cdnow", "world"])
    parser.add_argument("--warehouse")
    parser.add_argument("--world", type=Path, help="a built world folder (warehouse.duckdb, sources.yml)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--notebook", action="store_true", help="also time notebook 05 on --world")
    parser.add_argument("--compiledir", default=str(ROOT / ".pytensor"), help="the persistent (warm) compile cache")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.warehouse)))
        return
    datasets = [("CDNOW sample", "cdnow", None)]
    if args.world:
        datasets.append((f"world {args.world.name}", "world", str(args.world / "warehouse.duckdb")))
    print("| data | customers | compile cache | import (s) | BG/NBD first fit (s) | Gamma-Gamma first fit (s) "
          "| BG/NBD second fit (s) | Gamma-Gamma second fit (s) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for label, dataset, warehouse in datasets:
        run_child(dataset, warehouse, args.compiledir)  # fill the persistent cache for the warm runs
        for cache in ("cold", "warm"):
            runs = []
            for _ in range(args.runs):
                if cache == "cold":
                    with tempfile.TemporaryDirectory() as empty:
                        runs.append(run_child(dataset, warehouse, empty))
                else:
                    runs.append(run_child(dataset, warehouse, args.compiledir))
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"| {label} | {med['customers']:,.0f} | {cache} | {med['import']:.1f} | {med['bgnbd_first']:.1f} "
                  f"| {med['gamma_gamma_first']:.1f} | {med['bgnbd_second']:.2f} | {med['gamma_gamma_second']:.2f} |",
                  flush=True)
    if args.notebook and args.world:
        times = [notebook_seconds(args.world) for _ in range(args.runs)]
        print(f"\nNotebook 05 on {args.world.name} (papermill, warm compile cache): median {statistics.median(times):.1f} s "
              f"over {args.runs} runs ({', '.join(f'{t:.1f}' for t in times)}).")


if __name__ == "__main__":
    main()
