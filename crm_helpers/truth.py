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


def identity_methods(con) -> dict:
    """The clusterings to compare, as engine expressions (source, source_record_id, customer_id):
    ``identity_map`` (Splink) and the deterministic baselines of
    :data:`crm_helpers.information.identity.BASELINES`."""
    from crm_helpers.information import identity

    records = con.table("customer_record")
    real = records.filter(~records.is_junk)
    methods = {"Splink": con.table("identity_map").select("source", "source_record_id", "customer_id")}
    present = set(identity.identifiers_present(real.select(*identity.IDENTIFIERS).limit(10_000).to_pandas()))
    for name, columns in identity.BASELINES.items():
        if set(columns) <= present:
            methods[name] = identity.baseline_links(real, columns)
    return methods


def _truth_table(con, name: str, truth_dir: Path | None):
    """A truth table as an engine table (registered in memory for this connection)."""
    import ibis

    frame = read_truth(name, truth_dir)
    return con.create_table(f"_truth_{name}", ibis.memtable(frame.astype(object).where(frame.notna(), None)),
                            temp=True, overwrite=True)


def identity_report(con, truth_dir: Path | None = None) -> pd.DataFrame:
    """Pairwise precision and recall of ``identity_map`` (Splink) and of the baselines, side by side.

    The baselines: e-mail only, and exact first name + last name + postcode (where the data have
    those columns); computed in the engine (:func:`crm_helpers.information.identity.pairwise_quality`).
    """
    from crm_helpers.information import identity

    truth = _truth_table(con, "identity", truth_dir).select("source", "source_record_id", "person_id")
    rows = {name: identity.pairwise_quality(predicted, truth) for name, predicted in identity_methods(con).items()}
    return pd.DataFrame(rows).T[["precision", "recall", "f1", "true_pairs", "predicted_pairs", "correct_pairs"]]


def _customers_of_records(predicted, truth_dir: Path | None) -> pd.DataFrame:
    """Each real record with its person, variation and the customer ``predicted`` gives it (pandas:
    one row per customer record)."""
    truth = read_truth("identity", truth_dir).dropna(subset=["person_id"])
    found = predicted.to_pandas().astype({"customer_id": str})
    merged = truth.merge(found, on=["source", "source_record_id"], how="left")
    alone = merged.customer_id.isna()
    merged.loc[alone, "customer_id"] = "missing:" + merged.source + ":" + merged.source_record_id
    return merged


def household_confusion(con, truth_dir: Path | None = None) -> pd.DataFrame:
    """How many households each method wrongly made one customer, by what the two people share.

    A household (truth/households.csv: two people at one address, partners or namesakes) is
    merged when some record of one person and some record of the other end in one customer.
    Returns one row per kind of household (namesakes; partners sharing a landline, an e-mail,
    only the address) with the number of households and, per method, how many were merged.
    """
    households = read_truth("households", truth_dir)
    kind = pd.Series(pd.NA, index=households.index, dtype="object")
    both = households.shares_phone.astype(str).str.lower() == "true"
    mail = households.shares_email.astype(str).str.lower() == "true"
    kind[households.relation == "namesake"] = "Namesakes (same name)"
    partners = households.relation == "partner"
    kind[partners & both & mail] = "Partners: landline and e-mail"
    kind[partners & both & ~mail] = "Partners: landline"
    kind[partners & ~both & mail] = "Partners: e-mail"
    kind[partners & ~both & ~mail] = "Partners: address only"
    households = households.assign(kind=kind)
    per_kind = households.drop_duplicates("household_id").set_index("household_id").kind
    out = pd.DataFrame({"households": per_kind.value_counts()})
    for name, predicted in identity_methods(con).items():
        records = _customers_of_records(predicted, truth_dir)[["person_id", "customer_id"]].drop_duplicates()
        shared = records.merge(households[["household_id", "person_id"]], on="person_id")
        together = shared.groupby(["household_id", "customer_id"]).person_id.nunique()
        merged = together[together > 1].reset_index().household_id.unique()
        out[name] = per_kind[per_kind.index.isin(merged)].value_counts().reindex(out.index, fill_value=0)
    return out.rename_axis("household").sort_index()


#: What each variation code of truth/identity.csv means (README, "Identities and duplicates").
VARIATIONS = {
    "none": "none (as on the person's first record)", "typo": "a typing error in the name",
    "nickname": "a nickname (Bill for William)", "initial": "an initial for the first name",
    "names_swapped": "first name and surname swapped", "new_surname": "a new surname (marriage)",
    "new_email": "a new e-mail address", "alternate_email": "a second e-mail address",
    "household_email": "the household's shared e-mail", "transposed_phone": "two phone digits swapped",
    "moved": "a new address (moved house)", "swapped_birth_date": "day and month of birth swapped",
}


def missed_by_variation(con, truth_dir: Path | None = None) -> pd.DataFrame:
    """Records split from their person, by kind of variation, for each method.

    A person's customer is the one holding most of their records; a record elsewhere is split
    off (a missed duplicate). Records are counted under each variation they carry
    (``variation`` in truth/identity.csv: nickname, moved, new_surname, ...; "none" for records
    without one). Returns one row per variation code: its description, the records, and per
    method the records split off.
    """
    out = None
    for name, predicted in identity_methods(con).items():
        records = _customers_of_records(predicted, truth_dir)
        main = records.groupby(["person_id", "customer_id"]).size().rename("n").reset_index() \
            .sort_values(["person_id", "n", "customer_id"], ascending=[True, False, True]).drop_duplicates("person_id")
        records = records.merge(main[["person_id", "customer_id"]].rename(columns={"customer_id": "main"}), on="person_id")
        records["split"] = records.customer_id != records.main
        kinds = records.assign(variation=records.variation.fillna("").replace("", "none").str.split(";")).explode("variation")
        counts = kinds.groupby("variation").agg(records=("split", "size"), split=("split", "sum"))
        if out is None:
            out = counts[["records"]].copy()
        out[name] = counts.split.astype(int)
    out.insert(0, "description", [VARIATIONS.get(v, v) for v in out.index])
    return out.rename_axis("variation").sort_values("records", ascending=False)


def customer_persons(con, truth_dir: Path | None = None) -> pd.Series:
    """The true person behind each warehouse customer_id: the person most of its source records
    belong to (records of test and junk entries carry no person)."""
    identity = read_truth("identity", truth_dir).dropna(subset=["person_id"])
    mapped = con.table("identity_map").to_pandas().merge(identity, on=["source", "source_record_id"])
    counts = mapped.groupby(["customer_id", "person_id"]).size().rename("n").reset_index()
    best = counts.sort_values(["customer_id", "n", "person_id"], ascending=[True, False, True])
    return best.drop_duplicates("customer_id").set_index("customer_id")["person_id"]


# --------------------------------------------------------------------------------------------
# Display: the tables and sentences notebook 02 shows (keys stay those of identity_methods)
# --------------------------------------------------------------------------------------------

def quality_table(quality: pd.DataFrame):
    """:func:`identity_report` as a reader sees it: one row per method, rates as percentages, pair counts."""
    from crm_helpers import display

    shown = quality.rename_axis("method").reset_index()
    return display.table(shown, {"precision": "rate", "recall": "rate", "f1": "rate"}, index="method",
                         names={"f1": "F1", "true_pairs": "True same-person pairs", "predicted_pairs": "Pairs linked",
                                "correct_pairs": "Pairs linked rightly"})


def households_table(households: pd.DataFrame):
    """:func:`household_confusion` as a reader sees it: per kind of household, how many each method
    wrongly made one customer, with a row for all households."""
    from crm_helpers import display

    shown = pd.concat([households, households.sum().to_frame("All households").T])
    shown = shown.rename_axis("household").reset_index()
    return display.table(shown, index="household", names={"household": "Kind of household"},
                         caption="Households wrongly made one customer")


def missed_table(missed: pd.DataFrame):
    """:func:`missed_by_variation` as a reader sees it: per variation, the records carrying it and how
    many of them each method left apart from their person's customer."""
    from crm_helpers import display

    shown = missed.assign(description=missed.description.str[:1].str.upper() + missed.description.str[1:])
    return display.table(shown, index="description", columns=[c for c in shown.columns if c != "description"],
                         names={"description": "Variation the record carries", "records": "Records with it"},
                         caption="Records left apart from their person, by variation")


def error_findings(households: pd.DataFrame, missed: pd.DataFrame, splink: str = "Splink",
                   name_postcode: str = "Exact name + postcode") -> list[str]:
    """Markdown bullets on where the methods go wrong, computed from :func:`household_confusion`
    and :func:`missed_by_variation`: households Splink merged, those exact name + postcode merged
    (and how many were namesakes), and the varied records Splink left apart, naming the variation
    it misses at the highest rate (or saying it missed none)."""
    from crm_helpers.display import count_of, fmt

    lines = [f"- Splink wrongly merged {fmt(households[splink].sum(), 'count')} of "
             f"{count_of(households.households.sum(), 'household')}."]
    if name_postcode in households:
        namesakes = households.loc["Namesakes (same name)", name_postcode] if "Namesakes (same name)" in households.index else 0
        lines.append(f"- Exact name + postcode merged {fmt(households[name_postcode].sum(), 'count')}, "
                     f"{fmt(namesakes, 'count')} of them namesakes.")
    varied = missed.drop(index="none", errors="ignore")
    left = varied[splink].sum()
    if left == 0:
        lines.append(f"- Splink left none of the {count_of(varied.records.sum(), 'varied record')} apart from their person.")
        return lines
    worst = varied[splink].div(varied.records).idxmax()
    lines.append(f"- Splink left {count_of(left, 'varied record')} apart from their person; the variation it misses "
                 f"at the highest rate: {varied.description[worst]} ({fmt(varied.loc[worst, splink], 'count')} of "
                 f"{fmt(varied.loc[worst, 'records'], 'count')}).")
    return lines


def quality_findings(quality: pd.DataFrame, no_email: float) -> str:
    """One paragraph on :func:`identity_report`: how much e-mail alone finds (``no_email``: the
    share of records without an address), how precise exact name + postcode is (when the data
    have those columns) and what Splink finds."""
    from crm_helpers.display import fmt

    splink, email = quality.loc["Splink"], quality.loc["E-mail only"]
    lines = [f"E-mail alone finds {fmt(email.recall, 'rate')} of the true pairs: people change and add "
             f"addresses, and {fmt(no_email, 'rate')} of the records carry none."]
    if "Exact name + postcode" in quality.index:
        lines.append(f"Exact name + postcode links pairs of which only "
                     f"{fmt(quality.loc['Exact name + postcode'].precision, 'rate')} are one person: "
                     "namesakes at one address are two people.")
    lines.append(f"Splink finds {fmt(splink.recall, 'rate')} with {fmt(splink.precision, 'rate')} right.")
    return " ".join(lines)


# --------------------------------------------------------------------------------------------
# Segments and tiers (notebook 04): how close the behavioural segments and the tier migration
# come to the designed ones
# --------------------------------------------------------------------------------------------

def segment_recovery(con, truth_dir: Path | None, clusters: pd.Series, elite=None) -> dict:
    """How well `clusters` (a Series: customer_id -> segment or cluster label) recover the designed
    segments of truth/people.csv: the adjusted Rand index, and the precision and recall of the
    predicted elite segment against the true elite. `elite`: the predicted elite label; default
    the label an elite name starts with (:func:`crm_helpers.knowledge.segments.is_elite`), else
    cluster 1 (:func:`~crm_helpers.knowledge.segments.cluster_customers` numbers clusters by
    falling purchase rate). Returns ari, precision, recall, customers (those with a true person).
    """
    from sklearn.metrics import adjusted_rand_score, precision_score, recall_score

    from crm_helpers.knowledge.segments import is_elite

    person = customer_persons(con, truth_dir).reindex(clusters.index)
    segment = read_truth("people", truth_dir).set_index("person_id")["segment"]
    true = segment.reindex(person.dropna()).to_numpy()
    predicted = clusters[person.notna()]
    if elite is not None:
        top = (predicted == elite).to_numpy()
    elif is_elite(predicted).any():
        top = is_elite(predicted)
    else:
        top = (predicted == 1).to_numpy()
    elite_true = true == "elite"
    return {"ari": adjusted_rand_score(true, predicted.astype(str)), "precision": precision_score(elite_true, top, zero_division=0),
            "recall": recall_score(elite_true, top, zero_division=0), "customers": len(predicted)}


def tier_transitions(truth_dir: Path | None = None, tiers: list[str] | None = None) -> pd.DataFrame:
    """The designed tier moves quarter by quarter (truth/tiers.csv: each person's tier at the end
    of every quarter they were a customer in): one row per (from_quarter, from_tier, to_tier)
    with the people moving and their share of the from_tier row (``share``), for people present
    in both consecutive quarters. `tiers` orders the tiers (default: as the file sorts them)."""
    table = read_truth("tiers", truth_dir)
    quarters = sorted(table["quarter"].unique())
    nxt = dict(zip(quarters[:-1], quarters[1:], strict=False))
    later = table.assign(quarter=table["quarter"].map({b: a for a, b in nxt.items()})).dropna(subset=["quarter"])
    pairs = table.merge(later, on=["person_id", "quarter"], suffixes=("_from", "_to"))
    counts = pairs.groupby(["quarter", "tier_from", "tier_to"]).size().rename("customers").reset_index()
    counts.columns = ["from_quarter", "from_tier", "to_tier", "customers"]
    counts["share"] = counts["customers"] / counts.groupby(["from_quarter", "from_tier"])["customers"].transform("sum")
    if tiers is not None:
        for col in ("from_tier", "to_tier"):
            counts[col] = pd.Categorical(counts[col], categories=tiers, ordered=True)
    return counts.sort_values(["from_quarter", "from_tier", "to_tier"], ignore_index=True)
