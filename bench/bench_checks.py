"""What the integrity checks cost: collect + integrate with the checks, against the same run without them.

The checks are issue 7's rules: row rules (``RULES`` checks in collect's parsing query), key
conflicts (newest version wins, the others quarantined) and the warehouse's contracts after
integrate. The floor switches all three off in the child process (monkeypatched), so the two
variants run the same code otherwise. One world is generated once; each run collects it into a
fresh warehouse and integrates it, alternating the variants so machine noise hits both. Usage:

    .venv/bin/python bench/bench_checks.py --size 100000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import machine, run_measured  # noqa: E402

# Runs one crm command in-process, with the checks switched off when CRM_BENCH_NO_CHECKS is set.
RUNNER = """
import os, sys
import pandas as pd
if os.environ.get("CRM_BENCH_NO_CHECKS"):
    from crm_helpers.data import collect, parsing
    from crm_helpers.information import contracts
    parsing._rule_sql = lambda spec: []
    collect.resolve_key_conflicts = lambda *args, **kwargs: {}
    contracts.check = lambda *args, **kwargs: pd.DataFrame(
        {"contract": ["none checked"], "table": [""], "failures": [0], "example": [""]})
from crm_helpers.cli import app
sys.argv = ["crm", *sys.argv[1:]]
app()
"""


def one_run(data: Path, checks: bool) -> dict[str, float]:
    """Collect ``data`` into a fresh warehouse and integrate it; wall seconds per step."""
    warehouse = data.parent / "bench-checks.duckdb"
    warehouse.unlink(missing_ok=True)
    env = {} if checks else {"CRM_BENCH_NO_CHECKS": "1"}
    steps = {step: [sys.executable, "-c", RUNNER, step, "--data", str(data), "--warehouse", str(warehouse)]
             for step in ("collect", "integrate")}
    # collect exits 1 when it rejected a file (the sample world has some on purpose)
    out = {step: run_measured(cmd, env, ok=(0, 1) if step == "collect" else (0,))[0] for step, cmd in steps.items()}
    warehouse.unlink(missing_ok=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "crm-bench-checks")
    args = parser.parse_args()
    data = args.workdir / f"world-{args.size}"
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "crm_helpers.cli", "sample", "--customers", str(args.size),
                    "--seed", "42", "--out", str(data)], check=True, stdout=subprocess.DEVNULL)
    load = os.getloadavg()[0]
    runs = {True: [], False: []}
    for _ in range(args.runs):
        for checks in (True, False):
            runs[checks].append(one_run(data, checks))
    print(f"Machine: {machine()}; 1-minute load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end\n")
    print(f"| {args.size:,} people, median of {args.runs} | with checks (s) | without (s) | cost of the checks |")
    print("|---|---:|---:|---:|")
    for step in ("collect", "integrate", "total"):
        on, off = (statistics.median(r[step] if step != "total" else sum(r.values()) for r in runs[c])
                   for c in (True, False))
        print(f"| {step} | {on:.1f} | {off:.1f} | {on - off:+.1f} s ({(on - off) / off:+.0%}) |")
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
