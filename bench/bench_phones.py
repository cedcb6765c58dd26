"""Benchmark of phone standardisation: a million customer records' phone numbers to E.164.

The records are written as people write them (the sample world's five British spellings, a few
foreign numbers, extensions and junk), nearly all distinct, in a DuckDB table.
``standardise.e164_phones`` places them: the engine the usual spellings, ``phonenumbers`` the rest,
each distinct spelling once. Also timed: ``phonenumbers`` alone on a slice, scaled to the whole,
for comparison. Usage:

    .venv/bin/python bench/bench_phones.py --records 1000000 --runs 3

Results are printed as Markdown to paste into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import machine  # noqa: E402


def phone_spellings(n: int, seed: int = 42) -> pd.DataFrame:
    """``n`` phone numbers as typed into British customer files, nearly all distinct.

    90% British mobiles in the sample's five spellings (``07700 900123``, ``+44 7700 900123``,
    ``(0)7700-900-123``, ``447700900123``, ``07700900123``), 4% London landlines, 2% French and 1%
    Irish numbers in international form, 1% with an extension, 2% junk ("123456", "n/a", "").
    """
    from crm_helpers.sample.text import phone_formats

    rng = np.random.default_rng(seed)
    kind = rng.choice(6, n, p=[0.90, 0.04, 0.02, 0.01, 0.01, 0.02])
    subscriber = rng.integers(10**8, 10**9, n).astype(str)
    mobiles = phone_formats(np.char.add("07", subscriber))[rng.integers(0, 5, n), np.arange(n)]
    eight = np.char.zfill(rng.integers(0, 10**8, n).astype(str), 8)
    phones = np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3, kind == 4],
        [mobiles,
         np.char.add("020 ", eight),
         np.char.add("+33 6 ", eight),
         np.char.add("+353 87 ", np.char.zfill(rng.integers(0, 10**7, n).astype(str), 7)),
         np.char.add(mobiles, " ext. 12")],
        default=rng.choice(["123456", "n/a", "", "0000"], n))
    return pd.DataFrame({"phone": phones, "country": "GB"})


def one_run(con, n: int) -> dict:
    """Standardise the ``phones`` table into a new table; seconds and how the numbers were placed."""
    from crm_helpers.information import standardise

    started = time.perf_counter()
    out = con.create_table("e164", standardise.e164_phones(con.table("phones")), overwrite=True)
    seconds = time.perf_counter() - started
    raw = con.table("phones")
    placed = raw.mutate(fast=standardise.e164_in_engine(raw.phone.re_replace(r"[^0-9]", ""),
                                                        raw.phone.strip().startswith("+"), "GB"))
    return {"seconds": seconds, "standardised": int(out.phone.notnull().sum().execute()),
            "by_engine": int(placed.fast.notnull().sum().execute())}


def library_alone(phones: pd.DataFrame, sample: int = 20_000) -> float:
    """Seconds ``phonenumbers`` would take for every record, one call each, from a timed slice."""
    from crm_helpers.information.standardise import e164_by_library

    part = phones.head(sample)
    started = time.perf_counter()
    for phone, country in zip(part.phone, part.country):
        e164_by_library(phone, country)
    return (time.perf_counter() - started) * len(phones) / len(part)


def main() -> None:
    import ibis

    from crm_helpers import config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    phones = phone_spellings(args.records)
    con = ibis.duckdb.connect(memory_limit=config.memory_limit())
    con.create_table("phones", phones)
    distinct = phones.phone.nunique()
    runs = [one_run(con, args.records) for _ in range(args.runs)]
    seconds = statistics.median(r["seconds"] for r in runs)
    library = library_alone(phones)
    r = runs[0]
    print(f"Machine: {machine()}\n")
    print("| records | distinct spellings | runs | standardised to E.164 | placed by the engine | "
          "wall time (s, median) | phonenumbers alone, one call per record (s, extrapolated) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.records:,} | {distinct:,} | {args.runs} | {r['standardised']:,} | {r['by_engine']:,} | "
          f"{seconds:.1f} | {library:.0f} |")
    print(f"\nruns: {', '.join(f'{x['seconds']:.1f}' for x in runs)} s")


if __name__ == "__main__":
    main()
