"""Identity resolution: which customer records belong to one person.

The third step of integration (see :mod:`crm_helpers.information.integrate`). Splink scores pairs of
standardised records with a Fellegi-Sunter model it estimates from the data, and the pairs at or
above the match threshold are one customer. The model uses only the identifiers the data have:
a blocking rule or comparison on a column that is empty everywhere is left out, so a shop whose
files hold only e-mail addresses and names integrates as well as one with phones and postcodes.

When Splink cannot estimate a model (too few records, no pairs to learn from), records are matched
deterministically instead: exact e-mail, exact E.164 phone, exact name with postcode or birth date,
whichever exist. :func:`resolve_identities` says which method ran and why, for ``integration_log``.

Till sources keep no personal data, only the loyalty card: :func:`card_identities` gives each card
the customer of the record it was issued on.
"""

from __future__ import annotations

import logging

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis import _

from crm_helpers import config

#: The standardised columns that can identify a person, in the order the model lists them.
IDENTIFIERS = ("first_name", "last_name", "email", "phone", "postcode", "birth_date")
#: Candidate pairs: records sharing one of these (all columns present in the data) are compared.
BLOCKING_RULES = (("email",), ("phone",), ("last_name", "postcode"), ("first_name", "postcode"),
                  ("first_name", "last_name", "birth_date"))
#: Expectation-maximisation sessions, the first three usable: each estimates the other columns.
EM_SESSIONS = (("phone",), ("email",), ("last_name", "postcode"), ("first_name", "last_name"))
#: Deterministic matching when no model can be estimated: records equal on one of these are one person.
EXACT_KEYS = (("email",), ("phone",), ("first_name", "last_name", "postcode"),
              ("first_name", "last_name", "birth_date"))
#: Below this many records the model's estimates are noise: match deterministically.
MIN_RECORDS_FOR_MODEL = 500
#: A value shared by more records than this ("0000 000000", "noemail@shop") is a placeholder.
MAX_RECORDS_PER_KEY = 10


class NoModel(Exception):
    """Splink cannot estimate a model from these records; the message says why."""


def identifiers_present(records: pd.DataFrame) -> list[str]:
    """The identifying columns with at least one value in ``records``."""
    return [c for c in IDENTIFIERS if c in records and records[c].notna().any()]


def usable(rules, present) -> list[tuple[str, ...]]:
    """The rules (tuples of columns) whose columns all have data."""
    return [rule for rule in rules if set(rule) <= set(present)]


def splink_settings(present: list[str]):
    """Splink model over the identifiers ``present``: which pairs to compare and how to compare them."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    comparisons = []
    if {"first_name", "last_name"} <= set(present):
        comparisons.append(cl.ForenameSurnameComparison("first_name", "last_name",
                                                        forename_surname_concat_col_name="full_name"))
    else:
        comparisons += [cl.NameComparison(c) for c in ("first_name", "last_name") if c in present]
    per_column = {"email": lambda: cl.EmailComparison("email"),
                  "phone": lambda: cl.LevenshteinAtThresholds("phone", 1),
                  "postcode": lambda: cl.ExactMatch("postcode"),
                  "birth_date": lambda: cl.ExactMatch("birth_date")}
    comparisons += [make() for column, make in per_column.items() if column in present]
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[block_on(*rule) for rule in usable(BLOCKING_RULES, present)],
        comparisons=comparisons,
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


def _duckdb_api():
    """Splink's DuckDB backend on a fresh in-memory database, with the workbook's memory cap."""
    import duckdb
    from splink import DuckDBAPI

    return DuckDBAPI(connection=duckdb.connect(config={"memory_limit": config.memory_limit()}))


def splink_clusters(records: pd.DataFrame, threshold: float, seed: int) -> pd.DataFrame:
    """Clusters of ``records`` by a Splink model estimated from them; raises :class:`NoModel`.

    Args:
        records: one row per record: unique_id and the standardised identifiers.
        threshold: match probability at or above which a pair is one person.
        seed: seed of the random sample that estimates the u probabilities.
    Returns:
        unique_id and cluster_id.
    """
    from splink import Linker, block_on
    from splink.internals.exceptions import SplinkException

    present = identifiers_present(records)
    if len(records) < MIN_RECORDS_FOR_MODEL:
        raise NoModel(f"{len(records):,} records, fewer than the {MIN_RECORDS_FOR_MODEL:,} a model needs")
    sessions = usable(EM_SESSIONS, present)[:3]
    blocking = usable(BLOCKING_RULES, present)
    if not sessions or not blocking:
        raise NoModel(f"identifiers {', '.join(present) or 'none'} give no pairs of records to learn from")
    records = records.assign(full_name=records.first_name.fillna("") + " " + records.last_name.fillna(""),
                             birth_date=records.birth_date.astype("string"))
    linker = Linker(_duckdb_api().register(records), splink_settings(present), log_level=logging.ERROR)
    try:
        linker.training.estimate_probability_two_random_records_match(
            [block_on(*rule) for rule in (usable([("email",), ("phone",)], present) or blocking[:1])], recall=0.8)
        linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=seed)
        for rule in sessions:
            linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule),
                                                                               record_sample_proportion=1.0)
    except (SplinkException, ZeroDivisionError) as err:
        raise NoModel(f"Splink: {str(err).strip().splitlines()[0].split(".  ")[0]}") from err
    pairs = linker.inference.predict(threshold_match_probability=min(0.2, threshold))
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pairs, threshold)
    return clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]


def exact_match_clusters(records: pd.DataFrame, keys: list[tuple[str, ...]]) -> pd.DataFrame:
    """Clusters of ``records`` linked by equal values of any of ``keys`` (connected components).

    A key value shared by more than :data:`MAX_RECORDS_PER_KEY` records is a placeholder and links
    nothing. Returns unique_id and cluster_id.
    """
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    edges = []
    for key in keys:
        keyed = records.dropna(subset=list(key))
        size = keyed.groupby(list(key)).unique_id.transform("size")
        first = keyed.groupby(list(key)).unique_id.transform("min")
        linked = (size > 1) & (size <= MAX_RECORDS_PER_KEY) & (first != keyed.unique_id)
        edges.append(pd.DataFrame({"unique_id_l": first[linked], "unique_id_r": keyed.unique_id[linked]}))
    edges = pd.concat(edges, ignore_index=True) if edges else pd.DataFrame(columns=["unique_id_l", "unique_id_r"])
    clusters = cluster_pairwise_predictions_at_threshold(
        records[["unique_id"]], edges.astype("string"), db_api=_duckdb_api(), node_id_column_name="unique_id")
    return clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]


def resolve_identities(records: pd.DataFrame, threshold: float = config.Settings.match_threshold,
                       seed: int = config.DEFAULT_SEED) -> tuple[pd.DataFrame, str]:
    """Cluster customer records into people: Splink when it can estimate a model, else exact matching.

    Args:
        records: one row per (non-junk) record: unique_id, first_name, last_name, email, phone,
            postcode, birth_date (standardised; columns empty everywhere are ignored).
        threshold: Splink match probability at or above which a pair is one person.
        seed: seed of Splink's random sampling.
    Returns:
        (clusters with unique_id and cluster_id, one sentence saying which method ran and why).
    """
    present = identifiers_present(records)
    try:
        clusters = splink_clusters(records, threshold, seed)
        return clusters, (f"Splink model on {', '.join(present)}: pairs at match probability "
                          f">= {threshold:g} are one customer")
    except NoModel as why:
        keys = usable(EXACT_KEYS, present)
        clusters = exact_match_clusters(records, keys)
        method = ("exact " + "; exact ".join(" + ".join(k) for k in keys)) if keys else \
            "no identifier to match on, each record is its own customer"
        return clusters, f"deterministic matching ({method}): no Splink model, {why}"


def customer_ids(records: ir.Table, clusters: pd.DataFrame) -> ir.Table:
    """``records`` with their ``customer_id``: clusters numbered 1, 2, ... by their smallest unique_id.

    The numbering depends only on the records, so the same data give the same ids.
    """
    clusters_t = ibis.memtable(clusters)
    numbered = (clusters_t.group_by("cluster_id").aggregate(first_id=clusters_t.unique_id.min())
                .mutate(customer_id=(ibis.row_number().over(order_by="first_id") + 1).cast("int64")))
    return records.join(clusters_t, "unique_id").join(numbered, "cluster_id").drop("cluster_id", "first_id")


def card_identities(resolved: ir.Table, till_sources: list[str], master: str | None) -> list[ir.Table]:
    """Identity rows for loyalty cards: each till source's card number points to its holder.

    Tills record no personal data, only the card; a card is issued on a record of the customer
    master (``master``; any source's record when none is declared), so the card takes that record's
    customer_id.
    """
    issued = resolved.filter(resolved.loyalty_card.notnull())
    if master is not None:
        issued = issued.filter(issued.source == master)
    cards = issued.group_by("loyalty_card").aggregate(customer_id=_.customer_id.min())
    return [cards.select(source=ibis.literal(src), source_record_id="loyalty_card", customer_id="customer_id")
            for src in till_sources]


def cluster_profile(con) -> pd.DataFrame:
    """How many customers have 1, 2, 3, ... source customer records (loyalty cards not counted)."""
    records = con.table("identity_map").semi_join(con.table("customer_record"), ["source", "source_record_id"])
    per_customer = records.group_by("customer_id").aggregate(records_per_customer=_.count())
    return (per_customer.group_by("records_per_customer").aggregate(customers=_.count())
            .order_by("records_per_customer").to_pandas())
