"""Benchmark: the per-customer RFM summary on a 5,000,000-row transaction table.

Three implementations, each in its own process, on the same seeded parquet file:

- ``crm``: ``crm_helpers.rfm.rfm_summary`` (Ibis expression run by DuckDB, reading the parquet);
- ``pymc``: ``pymc_marketing.clv.utils.rfm_summary`` (pandas, after ``pd.read_parquet``);
- ``lifetimes``: ``lifetimes.utils.summary_data_from_transaction_data`` (pandas), run from its own
  environment ``bench/.venv-lifetimes`` (lifetimes 0.11.3 with pandas < 2.2 and numpy < 2).

Each child process reports its compute time (read the parquet + summarise, imports excluded), the
CPU time of that work (all threads), and its peak resident memory (``ru_maxrss``); the parent
measures the whole process's wall time. Each implementation runs ``--runs`` times, interleaved
(medians reported).
The three outputs are checked to be equal. Usage::

    .venv/bin/python bench/bench_rfm.py [--rows 5000000] [--runs 3] [--out bench/out]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import machine  # noqa: E402
ROOT = HERE.parent
LIFETIMES_PYTHON = HERE / ".venv-lifetimes" / "bin" / "python"
OBSERVATION_END = "2025-12-31"
IMPLEMENTATIONS = ("crm", "pymc", "lifetimes")


def generate(path: Path, n_rows: int, n_customers: int, seed: int = 42) -> Path:
    """Seeded synthetic transactions: customer_id, datetime (2023-2025, with time of day), amount."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    # heavy-tailed activity: a few customers buy often, most rarely
    weights = rng.gamma(0.6, 1.0, n_customers)
    customer = rng.choice(n_customers, size=n_rows, p=weights / weights.sum()) + 1
    start = pd.Timestamp("2023-01-01").value
    seconds = rng.integers(0, 3 * 365 * 86_400, n_rows)
    ts = pd.to_datetime(start + seconds * 1_000_000_000)
    amount = np.round(rng.gamma(2.0, 25.0, n_rows), 2)
    df = pd.DataFrame({"customer_id": customer.astype("int64"), "datetime": ts, "amount": amount})
    df.to_parquet(path, index=False)
    return path


# --- the three implementations (run in a child process) --------------------------------------------


def load_crm():
    import ibis
    import ibis.backends.duckdb  # noqa: F401  Ibis loads a backend's modules lazily on first connect: an import, not work

    from crm_helpers.information.rfm import rfm_summary

    def run(src: str):
        t = ibis.duckdb.connect().read_parquet(src)
        return rfm_summary(t, "customer_id", "datetime", "amount", OBSERVATION_END, time_unit="D").to_pandas()

    return run


def load_pymc():
    import pandas as pd
    from pymc_marketing.clv.utils import rfm_summary

    def run(src: str):
        df = pd.read_parquet(src)
        return rfm_summary(df, "customer_id", "datetime", "amount", observation_period_end=OBSERVATION_END, time_unit="D")

    return run


def load_lifetimes():
    import pandas as pd
    from lifetimes.utils import summary_data_from_transaction_data

    def run(src: str):
        df = pd.read_parquet(src)
        out = summary_data_from_transaction_data(
            df, "customer_id", "datetime", "amount", observation_period_end=OBSERVATION_END, freq="D"
        )
        return out.reset_index()

    return run


LOADERS = {"crm": load_crm, "pymc": load_pymc, "lifetimes": load_lifetimes}


def child(impl: str, src: str, dst: str, t_process: float) -> None:
    """Run one implementation, write its result and print its measurements as JSON."""
    run = LOADERS[impl]()  # imports are not part of the timed work
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    result = run(src)
    cpu = time.process_time() - cpu0
    compute = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_kib = usage.ru_maxrss
    result.to_parquet(dst, index=False)
    print(json.dumps(dict(impl=impl, compute_s=compute, cpu_s=cpu, process_s=time.time() - t_process,
                          peak_rss_mib=rss_kib / 1024, customers=len(result))))


# --- the parent: runs the children, compares, reports ---------------------------------------------


def spawn(impl: str, src: Path, dst: Path) -> dict:
    python = str(LIFETIMES_PYTHON) if impl == "lifetimes" else sys.executable
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [python, str(Path(__file__).resolve()), "--child", impl, str(src), str(dst), repr(time.time())]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["wall_s"] = wall
    return rec


def compare(paths: dict[str, Path]) -> dict[str, float]:
    """Largest absolute difference of each implementation from ``crm`` (customers must match)."""
    import pandas as pd

    ref = pd.read_parquet(paths["crm"]).sort_values("customer_id", ignore_index=True)
    diffs = {}
    for impl, p in paths.items():
        df = pd.read_parquet(p).sort_values("customer_id", ignore_index=True)
        assert (df["customer_id"].to_numpy() == ref["customer_id"].to_numpy()).all(), impl
        diffs[impl] = max(
            float((df[c].astype(float) - ref[c]).abs().max()) for c in ["frequency", "recency", "T", "monetary_value"]
        )
    return diffs


def versions() -> str:
    import duckdb
    import ibis
    import pandas
    import pymc_marketing

    lt = "not run"
    if LIFETIMES_PYTHON.exists():
        lt = subprocess.run(
            [str(LIFETIMES_PYTHON), "-c", "import lifetimes, pandas, numpy; print(f'lifetimes {lifetimes.__version__} (pandas {pandas.__version__}, numpy {numpy.__version__})')"],
            capture_output=True, text=True,
        ).stdout.strip()
    return (f"duckdb {duckdb.__version__}, ibis {ibis.__version__}, pandas {pandas.__version__}, "
            f"pymc-marketing {pymc_marketing.__version__}; {lt}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--customers", type=int, default=500_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--only", nargs="*", default=list(IMPLEMENTATIONS))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    src = args.out / f"transactions_{args.rows}.parquet"
    if not src.exists():
        print(f"generating {src} ...", flush=True)
        generate(src, args.rows, args.customers)
    impls = [i for i in args.only if i != "lifetimes" or LIFETIMES_PYTHON.exists()]
    results: dict[str, list[dict]] = {i: [] for i in impls}
    for run in range(args.runs):  # interleaved, so drifts in machine load hit all three alike
        for impl in impls:
            rec = spawn(impl, src, args.out / f"rfm_{impl}.parquet")
            results[impl].append(rec)
            print(f"run {run + 1} {impl:9s} wall {rec['wall_s']:7.2f}s  compute {rec['compute_s']:7.2f}s  "
                  f"CPU {rec['cpu_s']:7.2f}s  peak RSS {rec['peak_rss_mib']:8.0f} MiB", flush=True)
    diffs = compare({i: args.out / f"rfm_{i}.parquet" for i in impls})
    summary = {
        i: {k: statistics.median(r[k] for r in recs) for k in ("wall_s", "compute_s", "cpu_s", "peak_rss_mib")}
        | {"customers": recs[0]["customers"], "max_abs_diff_vs_crm": diffs[i]}
        for i, recs in results.items()
    }
    report = dict(rows=args.rows, runs=args.runs, machine=machine(), versions=versions(), results=summary)
    (args.out / "bench_rfm.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    else:
        main()
