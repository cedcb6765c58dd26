"""Checking the workbook against the sample world's ground truth.

The pipeline never reads ``truth/``; these functions do, to show (in notebooks and tests) how
close each method comes to the truth the simulation knows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crm_helpers import config


def read_truth(name: str, truth_dir: Path | None = None) -> pd.DataFrame:
    """One ground-truth table, e.g. ``read_truth("identity")`` for ``truth/identity.csv``."""
    return pd.read_csv(Path(truth_dir or config.truth_dir()) / f"{name}.csv",
                       dtype={"source_record_id": str, "person_id": str, "order_id": str})


def _pairs(sizes: pd.Series) -> int:
    """Number of record pairs inside clusters of the given sizes."""
    return int((sizes * (sizes - 1) // 2).sum())


def pairwise_quality(predicted: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Pairwise precision and recall of a clustering of customer records against the truth.

    Args:
        predicted: source, source_record_id, customer_id (a cluster label per record).
        truth: source, source_record_id, person_id (empty for test and junk records).
    Returns:
        precision (share of predicted same-customer pairs that are one person), recall (share
        of true same-person pairs that were found), f1 and the pair counts. Only real people's
        records count; a real record missing from ``predicted`` is a cluster of its own.
    """
    real = truth.dropna(subset=["person_id"])
    merged = real.merge(predicted, on=["source", "source_record_id"], how="left")
    missing = merged.customer_id.isna()
    merged["customer_id"] = merged.customer_id.astype(str).where(~missing, "missing:" + merged.source + ":" + merged.source_record_id)
    true_pairs = _pairs(merged.groupby("person_id").size())
    found_pairs = _pairs(merged.groupby("customer_id").size())
    correct = _pairs(merged.groupby(["customer_id", "person_id"]).size())
    precision = correct / found_pairs if found_pairs else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "true_pairs": true_pairs, "predicted_pairs": found_pairs, "correct_pairs": correct,
            "records": len(merged), "records_missing": int(missing.sum())}


def email_only_clusters(records: pd.DataFrame) -> pd.DataFrame:
    """Baseline identity resolution: records with the same standardised e-mail are one person.

    Records without an e-mail stay on their own.
    """
    key = records.email.where(records.email.notna(), "record:" + records.source + ":" + records.source_record_id)
    return records.assign(customer_id=key)[["source", "source_record_id", "customer_id"]]


def identity_report(con, truth_dir: Path | None = None) -> pd.DataFrame:
    """Precision and recall of ``identity_map`` and of the e-mail-only baseline, side by side."""
    identity = read_truth("identity", truth_dir)
    predicted = con.table("identity_map").to_pandas()
    records = con.table("customer_record").filter(~con.table("customer_record").is_junk).select(
        "source", "source_record_id", "email").to_pandas()
    rows = {"Splink (identity_map)": pairwise_quality(predicted, identity),
            "e-mail only": pairwise_quality(email_only_clusters(records), identity)}
    return pd.DataFrame(rows).T[["precision", "recall", "f1", "true_pairs", "predicted_pairs", "correct_pairs"]]


def customer_persons(con, truth_dir: Path | None = None) -> pd.Series:
    """The true person behind each warehouse customer_id: the person most of its source records
    belong to (records of test and junk entries carry no person)."""
    identity = read_truth("identity", truth_dir).dropna(subset=["person_id"])
    mapped = con.table("identity_map").to_pandas().merge(identity, on=["source", "source_record_id"])
    counts = mapped.groupby(["customer_id", "person_id"]).size().rename("n").reset_index()
    best = counts.sort_values(["customer_id", "n", "person_id"], ascending=[True, False, True])
    return best.drop_duplicates("customer_id").set_index("customer_id")["person_id"]
