"""Benchmark: contact optimisation at 20k, 100k and 1M customers x 3 channels x 4 offers.

For each size, a synthetic candidate table (``optimise.synthetic_candidates``: skewed margins,
about one row in eight with negative uplift, ~60% consent per channel) with a budget and a call
capacity that both bind (``optimise.synthetic_limits``). The Lagrangian method runs ``--runs``
times (median wall time; the plan is the same every run); the exact MILP runs once per size up to
``--milp-max`` customers, with a time limit of ``--milp-limit`` seconds, and three times when a run
takes under a minute. Prints a Markdown table for bench/RESULTS.md.

    .venv/bin/python bench/optimise.py --sizes 20000 100000 1000000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import machine  # noqa: E402

from crm_helpers.wisdom import optimise as opt  # noqa: E402


def load() -> str:
    return "{:.2f}".format(os.getloadavg()[0])


def bench_size(n: int, runs: int, milp_max: int, milp_limit: float, seed: int = 42) -> dict:
    candidates = opt.synthetic_candidates(n, seed=seed)
    budget, capacity = opt.synthetic_limits(candidates)
    eligible = int(opt._eligible(candidates).sum())
    out = {"customers": n, "rows": len(candidates), "eligible": eligible, "budget": budget, "calls": capacity["call"],
           "load_before": load()}
    times, plan = [], None
    for _ in range(runs):
        plan = opt.optimise(candidates, budget, capacity, method="lagrangian", progress=True)
        times.append(plan.seconds)
        assert opt.violations(plan, budget, capacity) == []
    out |= {"lag_seconds": statistics.median(times), "lag_runs": runs, "lag_objective": plan.objective,
            "lag_bound": plan.bound, "lag_gap": plan.gap, "lag_iterations": plan.details["iterations"],
            "prices": plan.details["prices"]}
    if n <= milp_max:
        times, exact = [], None
        for i in range(runs):
            try:
                exact = opt.optimise(candidates, budget, capacity, method="milp", time_limit=milp_limit)
            except TimeoutError as e:
                out["milp_note"] = str(e)
                break
            times.append(exact.seconds)
            if exact.seconds > 60:
                break
        if exact is not None:
            out |= {"milp_seconds": statistics.median(times), "milp_runs": len(times), "milp_objective": exact.objective,
                    "milp_bound": exact.bound, "milp_status": exact.details["status"],
                    "lag_vs_milp": (exact.objective - plan.objective) / exact.objective}
    out["load_after"] = load()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--milp-max", type=int, default=100_000, help="largest size the MILP is tried on")
    parser.add_argument("--milp-limit", type=float, default=600)
    args = parser.parse_args()
    print(f"Machine: {machine()}")
    results = []
    for n in args.sizes:
        r = bench_size(n, args.runs, args.milp_max, args.milp_limit)
        results.append(r)
        print(r, flush=True)
    print()
    print("| customers | candidate rows | eligible rows | Lagrangian s (median, runs) | iterations | objective | bound "
          "| gap vs bound | MILP s (runs) | MILP objective | Lagrangian below MILP | load before → after |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        milp = (f"{r['milp_seconds']:.1f} ({r['milp_runs']}) | {r['milp_objective']:,.0f} | {r['lag_vs_milp']:.4%}"
                if "milp_seconds" in r else f"not run | – | –")
        print(f"| {r['customers']:,} | {r['rows']:,} | {r['eligible']:,} | {r['lag_seconds']:.2f} ({r['lag_runs']}) "
              f"| {r['lag_iterations']} | {r['lag_objective']:,.0f} | {r['lag_bound']:,.0f} | {r['lag_gap']:.4%} "
              f"| {milp} | {r['load_before']} → {r['load_after']} |")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"\nTotal {time.perf_counter() - started:.0f} s")
