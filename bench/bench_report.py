"""Benchmark of the periodic report (issue 8): one report against an empty papermill run, and a backfill.

    python bench/bench_report.py --customers 20000 --runs 3 --backfill-runs 2

Builds a sample world (sample, collect, integrate) in a temporary folder, then measures, each in
its own process and in the same session:

- the floor: papermill running a notebook with only a parameters cell (kernel start and teardown);
- the same floor without jsonschema's RFC 3987 grammar, which `crm report` skips (crm_helpers.reports):
  the part of the floor that papermill's command pays and the report does not;
- one report: ``crm report --period <last month>``;
- a 12-month backfill, serial (``--workers 1``) and parallel (default: one worker per core).

Appends a section to bench/RESULTS.md with the medians, the goals and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import machine, median_of, run_measured

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"


def crm(*args: str) -> list[str]:
    return [sys.executable, "-m", "crm_helpers.cli", *args]


def empty_notebook(path: Path) -> Path:
    """A notebook with a parameters cell and nothing else: what every papermill run costs."""
    import nbformat

    from crm_helpers import reports

    cell = nbformat.v4.new_code_cell("period = None")
    cell.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = reports.KERNELSPEC
    nbformat.write(nb, path)
    return path


#: papermill's command as ``crm report`` imports it: without jsonschema's RFC 3987 grammar.
LEAN_PAPERMILL = ("import sys; sys.modules['rfc3987_syntax'] = None; "
                  "from papermill.cli import papermill; papermill(prog_name='papermill')")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backfill-runs", type=int, default=2)
    parser.add_argument("--year", default="2025")
    args = parser.parse_args()

    env = {"PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    base = Path(tempfile.mkdtemp(prefix="crm-bench-report-"))
    try:
        for step in (crm("sample", "--customers", str(args.customers), "--out", str(base)),
                     crm("collect", "--data", str(base)), crm("integrate", "--data", str(base))):
            run_measured(step, env)
        warehouse = str(base / "warehouse.duckdb")
        load_before = os.getloadavg()
        notebook = empty_notebook(base / "empty.ipynb")
        floors, leans, ones = [], [], []
        for i in range(args.runs):  # interleaved, so that a change in the machine's load hits each alike
            empty = [str(notebook), str(base / f"empty_out{i}.ipynb"), "-p", "period", "x", "--no-progress-bar"]
            floors.append(run_measured([sys.executable, "-m", "papermill", *empty], env))
            leans.append(run_measured([sys.executable, "-c", LEAN_PAPERMILL, *empty], env))
            ones.append(run_measured(crm("report", "--period", f"{args.year}-11", "--warehouse", warehouse,
                                         "--out", str(base / f"one{i}")), env))
        floor, lean, one = median_of(floors), median_of(leans), median_of(ones)
        backfill = ["report", "--from", f"{args.year}-01", "--to", f"{args.year}-12", "--warehouse", warehouse]
        serial = median_of([run_measured(crm(*backfill, "--workers", "1", "--out", str(base / f"serial{i}")), env)
                            for i in range(args.backfill_runs)])
        parallel = median_of([run_measured(crm(*backfill, "--out", str(base / f"parallel{i}")), env)
                              for i in range(args.backfill_runs)])
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(base, ignore_errors=True)

    cores = os.cpu_count() or 1
    ideal = 12 * one[0] / min(cores, 12)
    section = f"""
## Periodic report: one report and a 12-month backfill (issue 8)

`bench/bench_report.py --customers {args.customers:,} --runs {args.runs} --backfill-runs {args.backfill_runs}`:
each command in its own process, on one sample world, in the same session. The floor is papermill
running a notebook with only a parameters cell (Python start, kernel start and shutdown).

Machine: {machine()}. Load average (1, 5, 15 min) before the timings {load_before[0]:.2f}, {load_before[1]:.2f},
{load_before[2]:.2f}; after {load_after[0]:.2f}, {load_after[1]:.2f}, {load_after[2]:.2f}.

| what | runs | wall time (s, median) | peak memory of the parent process (MB) |
|---|---:|---:|---:|
| empty notebook, papermill (floor) | {args.runs} | {floor[0]:.1f} | {floor[1]:,.0f} |
| the same without jsonschema's RFC 3987 grammar | {args.runs} | {lean[0]:.1f} | {lean[1]:,.0f} |
| `crm report --period {args.year}-11` | {args.runs} | {one[0]:.1f} | {one[1]:,.0f} |
| backfill {args.year}-01..12, serial (`--workers 1`) | {args.backfill_runs} | {serial[0]:.1f} | {serial[1]:,.0f} |
| backfill {args.year}-01..12, parallel ({cores} workers) | {args.backfill_runs} | {parallel[0]:.1f} | {parallel[1]:,.0f} |

- One report / floor: **{one[0] / floor[0]:.2f}×** (goal ≤ 3×); against the floor without the
  RFC 3987 grammar: {one[0] / lean[0]:.2f}×.
- Parallel backfill / (12 × one report ÷ {cores} cores = {ideal:.1f} s): **{parallel[0] / ideal:.2f}×**
  (goal ≤ 1.2×); serial / parallel: {serial[0] / parallel[0]:.2f}×.
"""
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(section)
    print(section)


if __name__ == "__main__":
    main()
