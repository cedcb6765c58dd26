"""Benchmark of the foundation: ``crm sample`` + ``crm collect`` + ``crm integrate``.

Each step runs in its own process; wall time and peak memory are measured per step. Usage:

    .venv/bin/python bench/pipeline.py --sizes 20000 100000 1000000 --runs 3

Results are printed as a Markdown table to paste into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import machine, median_of, run_measured  # noqa: E402

CRM = [sys.executable, "-m", "crm_helpers.cli"]  # the crm command of this interpreter and PYTHONPATH


def one_run(size: int, workdir: Path) -> dict[str, tuple[float, float]]:
    """Sample, collect and integrate ``size`` people in a fresh folder; measure each step."""
    data = workdir / f"world-{size}"
    shutil.rmtree(data, ignore_errors=True)
    warehouse = data / "warehouse.duckdb"
    steps = {
        "sample": [*CRM, "sample", "--customers", str(size), "--seed", "42", "--out", str(data)],
        "collect": [*CRM, "collect", "--data", str(data), "--warehouse", str(warehouse)],
        "integrate": [*CRM, "integrate", "--data", str(data), "--warehouse", str(warehouse)],
    }
    load = os.getloadavg()[0]
    result = {name: run_measured(cmd) for name, cmd in steps.items()}
    result["quality"] = identity_quality(data)
    result["load"] = (load, os.getloadavg()[0])
    shutil.rmtree(data, ignore_errors=True)
    return result


def identity_quality(data: Path) -> tuple[float, float]:
    """Pairwise precision and recall of the run's identity_map against the truth (not timed)."""
    from crm_helpers import truth, warehouse

    with warehouse.reading(data / "warehouse.duckdb") as con:
        report = truth.identity_report(con, data / "truth")
    splink = report.iloc[0]  # identity_map; the baselines follow
    return splink["precision"], splink["recall"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "crm-bench")
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print("| people | runs | step | wall time (s, median) | peak memory (MB, median) |")
    print("|---:|---:|---|---:|---:|")
    for size in args.sizes:
        runs = [one_run(size, args.workdir) for _ in range(args.runs)]
        total = 0.0
        for step in ("sample", "collect", "integrate"):
            seconds, peak = median_of([r[step] for r in runs])
            total += seconds
            print(f"| {size:,} | {args.runs} | {step} | {seconds:.1f} | {peak:,.0f} |", flush=True)
        precision, recall = runs[0]["quality"]
        print(f"| {size:,} | {args.runs} | **total** | **{total:.1f}** | identity precision {precision:.4f}, "
              f"recall {recall:.4f} |", flush=True)
        loads = ", ".join(f"{a:.1f} -> {b:.1f}" for a, b in (r["load"] for r in runs))
        print(f"\n{size:,} people: 1-minute load average at the start and end of each run: {loads}", flush=True)


if __name__ == "__main__":
    main()
