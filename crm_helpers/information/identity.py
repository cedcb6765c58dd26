"""Identity resolution: which customer records belong to one person.

The third step of integration (see :mod:`crm_helpers.information.integrate`). Splink scores pairs of
standardised records with a Fellegi-Sunter model it estimates from the data, and the pairs at or
above the match threshold are one customer. The model uses only the identifiers the data have:
a blocking rule or comparison on a column that is empty everywhere is left out, so a shop whose
files hold only e-mail addresses and names integrates as well as one with phones and postcodes.

The model knows what makes customer records hard: nicknames and initials (a first-name key from
:data:`NICKNAMES`, an initial level), names typed the wrong way round, transposed phone digits,
day and month of birth swapped, common names (term-frequency adjustments). A household shares a
phone, an e-mail or an address, so agreeing on those is not enough: a linked pair must also agree
on the first name (up to a nickname, initial or typo) or on the birth date
(:func:`household_rule`).

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
                  ("first_name", "last_name", "birth_date"), ("first_name", "birth_date"))
#: Common English short forms of first names (standardised, lower case): both sides of a pair
#: compare equal on their first-name key (``bill`` and ``william`` -> ``william``). A name with
#: several full forms (``alex``) keeps its first.
NICKNAMES = {
    "william": ("bill", "will", "billy", "liam", "willy"), "elizabeth": ("liz", "beth", "lizzie", "eliza", "betty", "libby"),
    "robert": ("bob", "rob", "bobby", "robbie", "bert"), "richard": ("rick", "dick", "rich", "ricky", "richie"),
    "james": ("jim", "jimmy", "jamie", "jem"), "john": ("jack", "johnny", "jon"), "michael": ("mike", "mick", "mikey", "mickey"),
    "christopher": ("chris", "kit", "topher"), "matthew": ("matt", "matty"), "anthony": ("tony", "ant"),
    "andrew": ("andy", "drew"), "stephen": ("steve", "stevie"), "steven": ("steve",), "peter": ("pete",),
    "david": ("dave", "davey"), "daniel": ("dan", "danny"), "samuel": ("sam", "sammy"), "joseph": ("joe", "joey"),
    "thomas": ("tom", "tommy"), "benjamin": ("ben", "benny"), "alexander": ("alex", "sandy", "xander", "al"),
    "edward": ("ed", "ted", "eddie", "ned"), "henry": ("harry", "hal", "hank"), "nicholas": ("nick", "nicky"),
    "philip": ("phil", "pip"), "joshua": ("josh",), "zachary": ("zach", "zack"), "sebastian": ("seb", "bas"),
    "frederick": ("fred", "freddie", "freddy"), "jacob": ("jake",), "nathan": ("nate",), "nathaniel": ("nate", "nat"),
    "isaac": ("ike",), "oliver": ("ollie", "olly"), "charles": ("charlie", "chuck", "chas"),
    "charlotte": ("lottie", "charlie", "lotte"), "catherine": ("kate", "cathy", "cat", "katie", "kath"),
    "katherine": ("kate", "kathy", "katie", "kath"), "margaret": ("maggie", "peggy", "meg", "madge", "rita"),
    "patricia": ("pat", "patty", "tricia", "trish"), "jennifer": ("jen", "jenny"), "rebecca": ("becky", "becca", "bex"),
    "victoria": ("vicky", "tori", "vic"), "samantha": ("sam", "sammy"), "jessica": ("jess", "jessie"),
    "deborah": ("debbie", "deb", "debs"), "susan": ("sue", "susie", "suzy"), "barbara": ("barb", "babs"),
    "isabella": ("bella", "izzy", "isa"), "isabelle": ("izzy", "belle"), "amelia": ("millie", "amy"),
    "florence": ("flo", "florrie"), "penelope": ("penny",), "philippa": ("pippa", "pip"), "harriet": ("hattie",),
    "matilda": ("tilly", "tilda"), "eleanor": ("ellie", "nell", "nora"), "abigail": ("abby", "abi"),
    "josephine": ("jo", "josie"), "joanne": ("jo",), "nicola": ("nicky", "nic"), "alexandra": ("alex", "sasha", "lexi"),
    "gwendolyn": ("gwen",), "winifred": ("winnie",), "wilhelmina": ("mina", "minnie"), "constance": ("connie",),
    "rosalind": ("ros",), "katarzyna": ("kasia",), "aleksandra": ("ola",), "magdalena": ("magda",),
    "francesca": ("fran", "frankie"), "giovanni": ("gianni",), "tomasz": ("tomek",), "anthea": ("thea",),
    "theodore": ("theo", "ted"), "timothy": ("tim",), "gregory": ("greg",), "jonathan": ("jon", "jonny"),
    "kenneth": ("ken", "kenny"), "ronald": ("ron", "ronnie"), "donald": ("don",), "gerald": ("gerry",),
    "raymond": ("ray",), "lawrence": ("larry", "laurie"), "terence": ("terry",), "susanna": ("sue", "susie"),
}
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


def first_name_key(first_name: pd.Series) -> pd.Series:
    """The full form of each standardised first name that is a known short form (:data:`NICKNAMES`)."""
    full_form = {}
    for full, short_forms in NICKNAMES.items():
        for short in short_forms:
            full_form.setdefault(short, full)
    return first_name.map(full_form).fillna(first_name).astype("string")


def first_name_comparison(present):
    """First names: exact (term-frequency adjusted), typed as the surname and vice versa, equal up to a
    nickname, close (a typo), one an initial of the other, else different."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    levels = [cll.NullLevel("first_name"), cll.ExactMatchLevel("first_name", term_frequency_adjustments=True)]
    if "last_name" in present:
        levels.append(cll.ColumnsReversedLevel("first_name", "last_name").configure(label_for_charts="names swapped"))
    levels += [cll.ExactMatchLevel("first_name_key").configure(label_for_charts="nickname"),
               cll.JaroWinklerLevel("first_name", 0.88),
               cll.CustomLevel("(length(first_name_l) = 1 OR length(first_name_r) = 1) AND "
                               "substr(first_name_l, 1, 1) = substr(first_name_r, 1, 1)", "initial"),
               cll.ElseLevel()]
    return cl.CustomComparison(levels, output_column_name="first_name")


def last_name_comparison(present):
    """Surnames: exact (term-frequency adjusted), typed as the first name, close (a typo), else."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    levels = [cll.NullLevel("last_name"), cll.ExactMatchLevel("last_name", term_frequency_adjustments=True)]
    if "first_name" in present:
        levels.append(cll.ColumnsReversedLevel("last_name", "first_name").configure(label_for_charts="names swapped"))
    levels += [cll.JaroWinklerLevel("last_name", 0.88), cll.ElseLevel()]
    return cl.CustomComparison(levels, output_column_name="last_name")


def birth_date_comparison():
    """Birth dates (ISO text): exact, day and month swapped (05/03 typed for 03/05), else."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    swapped = ("substr(birth_date_l, 1, 4) = substr(birth_date_r, 1, 4) AND "
               "substr(birth_date_l, 6, 2) = substr(birth_date_r, 9, 2) AND "
               "substr(birth_date_l, 9, 2) = substr(birth_date_r, 6, 2)")
    return cl.CustomComparison([cll.NullLevel("birth_date"), cll.ExactMatchLevel("birth_date"),
                                cll.CustomLevel(swapped, "day and month swapped"), cll.ElseLevel()],
                               output_column_name="birth_date")


def splink_settings(present: list[str]):
    """Splink model over the identifiers ``present``: which pairs to compare and how to compare them."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    comparisons = []
    if "first_name" in present:
        comparisons.append(first_name_comparison(present))
    if "last_name" in present:
        comparisons.append(last_name_comparison(present))
    per_column = {"email": lambda: cl.EmailComparison("email"),
                  "phone": lambda: cl.DamerauLevenshteinAtThresholds("phone", 1),  # a transposition
                  "postcode": lambda: cl.ExactMatch("postcode"),
                  "birth_date": birth_date_comparison}
    comparisons += [make() for column, make in per_column.items() if column in present]
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[block_on(*rule) for rule in usable(BLOCKING_RULES, present)],
        comparisons=comparisons,
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=True,  # with the comparison levels (gamma_*) the household rule reads
    )


def household_rule(pairs: pd.DataFrame) -> pd.Series:
    """Which scored pairs may be one person, given that people of one household look alike.

    Two people at one address share the postcode and street, often the surname, sometimes a
    landline or an e-mail, and a father and son may share the name too; a Fellegi-Sunter model
    adds up those agreements as if they were independent evidence of one person. So a pair is
    kept only when its personal identifiers do not contradict it:

    - the first names agree at some level of :func:`first_name_comparison` (exact, nickname,
      initial, typo, swapped with the surname) or one is missing, or the birth dates agree
      (exactly or with day and month swapped);
    - the birth dates do not disagree (both known and different);
    - the phone numbers do not disagree (both known, not one transposition apart) unless the
      e-mail or the birth date agrees.

    ``pairs`` are Splink's predictions with the comparison levels (``gamma_<comparison>``: -1
    missing, 0 different, higher for closer agreement); comparisons the model lacks are ignored.
    """
    def level(name):
        column = f"gamma_{name}"
        return pairs[column] if column in pairs else pd.Series(-1, index=pairs.index)

    first, birth, phone, email = level("first_name"), level("birth_date"), level("phone"), level("email")
    name_or_birth = (first != 0) | (birth > 0)
    phone_clash = (phone == 0) & (email <= 0) & (birth <= 0)
    return name_or_birth & (birth != 0) & ~phone_clash


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
    records = records.assign(first_name_key=first_name_key(records.first_name.astype("string")),
                             birth_date=records.birth_date.astype("string"))
    db_api = _duckdb_api()
    linker = Linker(db_api.register(records), splink_settings(present), log_level=logging.ERROR)
    try:
        linker.training.estimate_probability_two_random_records_match(
            [block_on(*rule) for rule in (usable([("email",), ("phone",)], present) or blocking[:1])], recall=0.8)
        linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=seed)
        for rule in sessions:
            linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule),
                                                                               record_sample_proportion=1.0)
    except (SplinkException, ZeroDivisionError) as err:
        raise NoModel(f"Splink: {str(err).strip().splitlines()[0].split(".  ")[0]}") from err
    predicted = linker.inference.predict(threshold_match_probability=threshold).as_duckdbpyrelation()
    levels = [c for c in predicted.columns if c.startswith("gamma_")]  # not the names: memory stays small
    pairs = predicted.select(*[f'"{c}"' for c in ["unique_id_l", "unique_id_r", "match_probability", *levels]]).df()
    pairs = pairs[household_rule(pairs)][["unique_id_l", "unique_id_r", "match_probability"]]
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    clusters = cluster_pairwise_predictions_at_threshold(records[["unique_id"]], pairs, db_api=db_api,
                                                         node_id_column_name="unique_id",
                                                         threshold_match_probability=threshold)
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


# --------------------------------------------------------------------------------------------
# Baselines and pairwise quality (what notebook 02 compares Splink with)
# --------------------------------------------------------------------------------------------

#: Deterministic baselines: records equal on all of a key's columns are one customer.
BASELINES = {"E-mail only": ("email",), "Exact name + postcode": ("first_name", "last_name", "postcode")}


def baseline_links(records: ir.Table, columns: tuple[str, ...]) -> ir.Table:
    """A baseline clustering: records with equal, non-empty ``columns`` are one customer.

    Args:
        records: standardised customer records (``customer_record`` without junk): source,
            source_record_id and the columns.
        columns: the key, e.g. ``("email",)`` or ``("first_name", "last_name", "postcode")``.
    Returns:
        source, source_record_id and customer_id (the key's values; a record missing one of
        them is a customer of its own).
    """
    complete = ibis.and_(*[records[c].notnull() for c in columns])
    key = ibis.literal("|").join([records[c].cast("string") for c in columns])
    own = "record:" + records.source + ":" + records.source_record_id
    return records.select("source", "source_record_id",
                          customer_id=ibis.ifelse(complete, "key:" + key, own))


def pairwise_quality(predicted: ir.Table, truth: ir.Table) -> dict:
    """Pairwise precision and recall of a clustering of customer records against the truth, in the engine.

    Args:
        predicted: source, source_record_id, customer_id (a cluster label per record).
        truth: source, source_record_id, person_id (empty or NULL for test and junk records).
    Returns:
        precision (share of the record pairs put together that are one person), recall (share
        of the true same-person pairs put together), f1 and the pair counts. Only real people's
        records count; a real record missing from ``predicted`` is a customer of its own.
    """
    real = truth.filter(truth.person_id.notnull() & (truth.person_id != ""))
    joined = real.left_join(predicted.select("source", "source_record_id", "customer_id"),
                            ["source", "source_record_id"])
    joined = joined.mutate(cluster=ibis.coalesce(joined.customer_id.cast("string"),
                                                 "missing:" + joined.source + ":" + joined.source_record_id))

    def pairs(*keys) -> int:
        sizes = joined.group_by(list(keys)).aggregate(n=_.count())
        return int((sizes.n * (sizes.n - 1) / 2).sum().execute() or 0)

    true, found, correct = pairs("person_id"), pairs("cluster"), pairs("cluster", "person_id")
    precision = correct / found if found else 1.0
    recall = correct / true if true else 1.0
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "true_pairs": true, "predicted_pairs": found, "correct_pairs": correct}
