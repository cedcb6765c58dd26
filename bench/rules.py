"""Rule mining: the engine's co-occurrence counts against mlxtend on the one-hot basket matrix.

For each warehouse given, in one run, median of `--runs`:

- *engine*: ``rules.itemset_counts`` (item, pair and triple counts by self-joins of the basket
  lines in DuckDB through Ibis, filtered by min support; only the frequent itemsets come back)
  followed by mlxtend's ``association_rules`` on that small table;
- *mlxtend apriori* and *mlxtend fpgrowth*: the basket lines fetched to pandas, pivoted to the
  full one-hot basket matrix (baskets x items, booleans), then the frequent itemsets and the
  same ``association_rules``. The one-hot step is timed apart (it is part of the cost).

Both find the same itemsets (checked on every run). Usage::

    python bench/rules.py /work/worlds/w20k/warehouse.duckdb /work/worlds/w100k/warehouse.duckdb --runs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from mlxtend.frequent_patterns import apriori, association_rules, fpgrowth

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.measure import machine  # noqa: E402
from crm_helpers import warehouse as wh  # noqa: E402
from crm_helpers.knowledge import rules  # noqa: E402


def timed(name: str, fn):
    """(wall seconds, result) of ``fn()``; the process's CPU seconds are added to CPU[name]."""
    started, cpu = time.perf_counter(), time.process_time()
    out = fn()
    CPU[name] = CPU.get(name, 0.0) + time.process_time() - cpu
    return time.perf_counter() - started, out


CPU: dict[str, float] = {}


def one_run(path: Path, level: str, min_support: float, max_len: int) -> dict:
    """Seconds of each way on one warehouse; raises if the itemsets differ."""
    with wh.reading(path) as con:
        items = rules.basket_items(con, level)

        def engine():
            sets, n = rules.itemset_counts(items, min_support=min_support, max_size=max_len)
            rules.mine_rules(sets, n)
            return sets, n

        t_engine, (sets, baskets) = timed("engine", engine)

        def onehot():
            pairs = items.select("order_id", "item").execute()
            baskets_, orders = pd.factorize(pairs["order_id"])
            kinds, names = pd.factorize(pairs["item"])
            matrix = np.zeros((len(orders), len(names)), dtype=bool)
            matrix[baskets_, kinds] = True
            return pd.DataFrame(matrix, columns=names)

        t_onehot, matrix = timed("one-hot matrix", onehot)
    out = {"baskets": baskets, "items": matrix.shape[1], "itemsets": len(sets), "engine": t_engine,
           "one-hot matrix": t_onehot}
    for name, miner in (("apriori", apriori), ("fpgrowth", fpgrowth)):
        def mine():
            found = miner(matrix, min_support=min_support, use_colnames=True, max_len=max_len)
            association_rules(found, num_itemsets=len(matrix), metric="confidence", min_threshold=0.0)
            return found

        try:
            seconds, found = timed(name, mine)
        except MemoryError as err:  # apriori's candidate array is baskets x candidates x size
            print(f"{name} on {path}: out of memory ({err})", flush=True)
            out[name] = float("nan")
            continue
        if set(found["itemsets"]) != set(sets["itemsets"]):
            raise RuntimeError(f"{name} found other itemsets than the engine on {path}")
        out[name] = seconds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouses", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--level", default="category", choices=sorted(rules.LEVELS))
    parser.add_argument("--min-support", type=float, default=rules.MIN_SUPPORT)
    parser.add_argument("--max-len", type=int, default=rules.MAX_SIZE)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(machine(), "| load average at the start:", os.getloadavg())
    rows = []
    for path in args.warehouses:
        runs = [one_run(path, args.level, args.min_support, args.max_len) for _ in range(args.runs)]
        row = {"warehouse": str(path), **{k: runs[0][k] for k in ("baskets", "items", "itemsets")}}
        for key in ("engine", "one-hot matrix", "apriori", "fpgrowth"):
            row[key] = statistics.median(r[key] for r in runs)  # NaN: out of memory
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False), flush=True)
    print("load average at the end:", os.getloadavg(), "| CPU seconds (all runs, all warehouses):",
          {k: round(v, 1) for k, v in CPU.items()})
    table = pd.DataFrame(rows)
    table["apriori total"] = table["one-hot matrix"] + table["apriori"]
    table["fpgrowth total"] = table["one-hot matrix"] + table["fpgrowth"]
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int)
                                else str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
