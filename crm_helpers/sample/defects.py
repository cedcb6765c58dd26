"""Known data-quality defects: their rates and the row-level injections shared by sources."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class DefectRates:
    """Rates of the defects injected into the raw files (all recorded in truth/defects.csv).

    Shares are per person, per record or per line as named; the defaults describe a typical
    mid-sized retailer's exports.
    """

    duplicate_person: float = 0.08  # people with a second CRM master record (re-registration)
    alternate_email: float = 0.15  # people who sometimes type a second address (typo/provider)
    alternate_email_order_share: float = 0.35  # their web orders placed with the second address
    test_master_record: float = 0.003  # test/junk sign-ups per person
    test_web_order: float = 0.002  # QA test orders per web order
    training_receipt: float = 0.001  # training-till receipts per store receipt
    duplicate_row: float = 0.005  # POS and web lines exported twice
    return_line: float = 0.05  # lines returned later
    master_missing_email: float = 0.10  # store/phone sign-ups without an e-mail address
    master_missing_phone: float = 0.03
    missing_address: float = 0.02  # street, city (each)
    missing_postcode: float = 0.01
    missing_birth_date: float = 0.05
    missing_web_phone: float = 0.10
    # Identity hazards (README, "Identities and duplicates"): shares of people unless named.
    household: float = 0.14  # people living with another customer (pairs; same address)
    household_shared_phone: float = 0.5  # of those pairs: one landline on both people's records
    household_shared_email: float = 0.35  # of those pairs: the second gives the first's e-mail
    namesake: float = 0.04  # people living with a namesake (same first and last name, e.g. father and son)
    second_duplicate_person: float = 0.025  # people with a third CRM master record
    name_change: float = 0.03  # people whose surname changes during the window (marriage)
    move: float = 0.08  # people who move house during the window
    email_change: float = 0.15  # people who change e-mail address during the window
    nickname: float = 0.4  # records of people with a short name (Bill for William) that use it
    initial: float = 0.10  # re-registrations and tickets with the first initial only ("J Smith")
    transposed_phone: float = 0.04  # re-registrations and tickets with two neighbouring digits swapped
    swapped_birth_date: float = 0.15  # re-registrations born on days 1-12: day and month swapped
    callcentre_missing_email: float = 0.65
    callcentre_missing_postcode: float = 0.10
    callcentre_name_typo: float = 0.05
    impossible_date: float = 0.00005  # order lines with an impossible timestamp
    impossible_birth_date: float = 0.002  # master records with a birth date like 31/02/1985
    malformed_line: float = 0.00002  # POS lines with a missing field / truncated JSON lines

    def as_dict(self) -> dict:
        """Plain dict for truth/config.json."""
        return asdict(self)


def duplicate_rows(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Row order with a share of rows written twice in a row (a double export).

    Returns (take indices into the original rows, original indices that were doubled).
    """
    doubled = rng.random(n) < rate
    return np.repeat(np.arange(n), 1 + doubled), np.flatnonzero(doubled)


def pick_defect_rows(rng: np.random.Generator, candidates: np.ndarray, rate: float, n_rows: int,
                     at_least_one: bool) -> np.ndarray:
    """A binomial number of rows drawn from the candidates (at least one if asked)."""
    k = rng.binomial(n_rows, rate) if n_rows else 0
    if at_least_one:
        k = max(k, 1)
    k = min(k, len(candidates))
    return np.sort(rng.choice(candidates, k, replace=False)) if k else np.empty(0, np.int64)


def impossible_timestamps(rng: np.random.Generator, text: np.ndarray, style: str) -> np.ndarray:
    """Corrupt timestamps: 30/31 February or the year 2099, in the file's own format."""
    text = np.asarray(text, dtype=str)
    s = np.strings.slice
    feb = rng.random(len(text)) < 0.5
    day = np.where(rng.random(len(text)) < 0.5, "30", "31")
    if style == "uk":  # dd/mm/yyyy HH:MM:SS
        bad_feb = np.strings.add(np.strings.add(day, "/02"), s(text, 5, None))
        y2099 = np.strings.add(np.strings.add(s(text, 0, 6), "2099"), s(text, 10, None))
    else:  # yyyy-mm-ddTHH:MM:SSZ
        bad_feb = np.strings.add(np.strings.add(np.strings.add(s(text, 0, 5), "02-"), day),
                                 s(text, 10, None))
        y2099 = np.strings.add("2099", s(text, 4, None))
    return np.where(feb, bad_feb, y2099)


def set_values(arr: pa.Array, rows: np.ndarray, values: np.ndarray) -> pa.Array:
    """Copy of a string array with some positions replaced."""
    if not len(rows):
        return arr
    out = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)
    out[rows] = values
    return pa.array(out, pa.string())


def defect_frame(source: str, files: np.ndarray, keys, defect) -> dict:
    """Columns of truth/defects.csv."""
    keys = np.asarray(keys.to_numpy(zero_copy_only=False) if isinstance(keys, pa.Array) else keys,
                      dtype=object)
    return {"source": np.full(len(keys), source, dtype=object), "file": np.asarray(files, object),
            "record_key": keys,
            "defect": np.broadcast_to(np.asarray(defect, dtype=object), len(keys))}


def key_with_line(order_id: pa.Array, line_no: np.ndarray) -> pa.Array:
    """Record key 'order_id:line_no' of an order line."""
    return pc.binary_join_element_wise(order_id, pc.cast(pa.array(line_no), pa.string()), ":")
