"""Raw records of the operational systems for one chunk: CRM master, tills, web shop, call centre.

Each builder returns plain columns (numpy / pyarrow) plus what the truth needs. Text noise
(typos, formats, case, whitespace) and missing values are applied here at the configured rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import world as w
from .clock import DAY, END_S, START_S
from .people import People, as_of, at_local_time
from .text import (cat, initials, one_char_edit, pad_spaces, phone_formats, split_email,
                   swap_day_and_month, transpose_digits, vary_case, vary_postcode)

YN = np.array(["N", "Y"])
JUNK_NAMES = np.array([("Test", "Test"), ("test", "test"), ("asdf", "asdf"), ("Test", "User"),
                       ("Mickey", "Mouse"), ("xxx", "xxx"), ("Donald", "Duck"), ("Qa", "Tester")])
JUNK_EMAILS = np.array(["test@example.com", "asdf@test.invalid", "noreply@example.com",
                        "a@test.invalid", "", "test.user@example.com"])
JUNK_PHONES = np.array(["", "00000 000000", "07000 000000", "123456", "01234 567890"])
QA_NAMES = np.array([("QA", "Tester"), ("Test", "Order"), ("qa", "qa")])


def money(pence: np.ndarray) -> pa.Array:
    """Pence as exact decimal text with two places ('-12.50')."""
    pence = np.asarray(pence, dtype=np.int64)
    a = np.abs(pence)
    pounds = pc.cast(pa.array(a // 100), pa.string())
    cents = pc.utf8_lpad(pc.cast(pa.array(a % 100), pa.string()), 2, "0")
    text = pc.binary_join_element_wise(pounds, cents, ".")
    return pc.if_else(pa.array(pence < 0), pc.binary_join_element_wise("-", text, ""), text)


def _restrictive_split(rng, truth_restrictive: np.ndarray, has_dup: np.ndarray):
    """Which record(s) carry a restrictive consent value; the truth is the most restrictive.

    Returns (primary_restrictive, duplicate_restrictive). People without a duplicate have
    exactly the truth; with a duplicate, one record may be more permissive than the truth.
    """
    u = rng.random(len(truth_restrictive))
    split = truth_restrictive & has_dup
    primary = truth_restrictive & ~(split & (u < 0.15))
    dup = truth_restrictive & ~(split & (u >= 0.15) & (u < 0.30))
    return primary, dup


@dataclass
class Master:
    """CRM master records of a chunk (all columns as text) and per-person links."""

    table: pd.DataFrame  # raw columns + signup_s + person (-1 = junk) + kind
    email_on_file: np.ndarray  # per person: some master record has an e-mail address
    phone_on_file: np.ndarray  # per person: some master record has a phone number
    has_dup: np.ndarray
    dup_t: np.ndarray
    dup_new_card: np.ndarray


def build_master(rng: np.random.Generator, p: People, rates) -> Master:
    """Primary record per person, re-registrations for a share, and test/junk records.

    A share ``rates.duplicate_person`` re-registers once, ``rates.second_duplicate_person`` of
    all people a second time (up to three master records each); ``dup_t`` and ``dup_new_card``
    describe each person's first re-registration. The primary record of a household partner who
    shares an e-mail carries the household's address (people["home_email"]).
    """
    n = len(p)
    phones = p.phone_variants()
    email = np.where(p["home_email"] != "", p["home_email"], p["email"])
    acq_ch = p["acq_channel"]
    # Primary record: e-mail sometimes not captured in store/by phone; never both e-mail and
    # phone missing.
    no_email = (acq_ch != 1) & (rng.random(n) < rates.master_missing_email)
    no_phone = ~no_email & (rng.random(n) < rates.master_missing_phone)
    p_fmt = np.where(rng.random(n) < 0.8, 0, 4)
    has_dup = rng.random(n) < rates.duplicate_person
    consent = {}
    for col, restrictive_is_true in (("email_opt_in", False), ("sms_opt_in", False),
                                     ("do_not_contact", True)):
        truth = p[col]
        restrictive = truth if restrictive_is_true else ~truth
        a, b = _restrictive_split(rng, restrictive, has_dup)
        consent[col] = (a, b) if restrictive_is_true else (~a, ~b)
    missing = {f: rng.random(n) < r for f, r in (("street", rates.missing_address),
                                                  ("city", rates.missing_address),
                                                  ("postcode", rates.missing_postcode),
                                                  ("birth_date", rates.missing_birth_date))}
    primary = pd.DataFrame({
        "first_name": vary_case(p["first_name"], rng, 0.02, 0.02),
        "last_name": vary_case(p["last_name"], rng, 0.03, 0.02),
        "email": np.where(no_email, "", vary_case(email, rng, 0.0, 0.0, 0.05)),
        "phone": np.where(no_phone, "", phones[p_fmt, np.arange(n)]),
        "street": np.where(missing["street"], "", p["street"]),
        "postcode": np.where(missing["postcode"], "", p["postcode"]),
        "city": np.where(missing["city"], "", p["city"]),
        "birth_day": np.where(missing["birth_date"], -10**6, p["birth_day"]),
        "signup_s": p["acq_t"],
        "signup_channel": np.array(w.ACQUISITION_CHANNELS)[acq_ch],
        "loyalty_card": p["card"],
        **{c: YN[v[0].astype(int)] for c, v in consent.items()},
        "person": np.arange(n), "kind": "primary",
        "variation": np.where((p["home_email"] != "") & ~no_email, "household_email", ""),
    })
    d = np.flatnonzero(has_dup)
    dup, dup_t, new_card = _duplicates(rng, p, d, primary, p_fmt, rates)
    again = rng.random(len(d)) < rates.second_duplicate_person / max(rates.duplicate_person, 1e-9)
    dup2, _, _ = _duplicates(rng, p, d[again], primary, p_fmt, rates, after=dup_t[again])
    dup2["loyalty_card"] = ""  # a replacement card is issued once, on the first re-registration
    for c, v in consent.items():
        dup[c] = YN[v[1][d].astype(int)]
        dup2[c] = dup[c].to_numpy()[again]
    junk = _junk(rng, rng.binomial(n, rates.test_master_record))
    table = pd.concat([primary, dup, dup2, junk], ignore_index=True)
    table["variation"] = table["variation"].fillna("")
    table = table.sort_values(["signup_s", "kind", "person"], kind="stable", ignore_index=True)
    full_dup_t = np.full(n, np.iinfo(np.int64).max)
    full_dup_t[d] = dup_t
    full_new_card = np.zeros(n, dtype=bool)
    full_new_card[d] = new_card
    email_on_file, phone_on_file = ~no_email, ~no_phone
    for extra, who in ((dup, d), (dup2, d[again])):
        email_on_file[who] |= extra["email"].to_numpy(dtype=str) != ""
        phone_on_file[who] |= extra["phone"].to_numpy(dtype=str) != ""
    return Master(table, email_on_file, phone_on_file, has_dup, full_dup_t, full_new_card)


def variation_labels(**flags: np.ndarray) -> np.ndarray:
    """Per record, the names of the flags set, joined by ';' ("" when none), for the truth."""
    k = len(next(iter(flags.values())))
    out = np.full(k, "")
    for name, flag in flags.items():
        out = np.where(flag, cat(out, name, ";"), out)
    return np.strings.rstrip(out, ";").astype(object) if k else out.astype(object)


def _duplicates(rng, p, d, primary, p_fmt, rates, after=None):
    """Re-registrations of people d (after the instants ``after``, if given) with typical variations.

    Variations are drawn as flags first: a typo, nickname, initial or swapped first and last
    name; no, another, the household's or (after a change) the new e-mail; no or a transposed
    phone; no or a day-month swapped birth date. The surname, e-mail and address are those of
    the record's time (after a marriage, a move, an e-mail change: the new ones). Then every
    record is made to keep at least two of {phone, e-mail, name (up to a typo), postcode, birth
    date} in common with the person's primary record, by undoing variations where needed (a
    new surname or address is a fact and stays): only then are the values written.
    """
    k = len(d)
    acq = p["acq_t"][d]
    lo = acq if after is None else after
    channel = rng.choice(3, k, p=w.ACQUISITION_P)
    t = lo + (rng.random(k) * np.maximum(END_S - lo, 0)).astype(np.int64)
    t = np.clip(at_local_time(rng, t, channel), acq + 3600, END_S - 60)
    if after is not None:
        t = np.maximum(t, after)
    typo = rng.random(k) < 0.3
    on_first = rng.random(k) < 0.5
    swapped = rng.random(k) < 0.06
    nick = (p["nickname"][d] != "") & (rng.random(k) < rates.nickname)
    init = ~nick & (rng.random(k) < rates.initial)
    u = rng.random(k)
    email_missing = u < 0.2
    use_alt = (u >= 0.2) & (u < 0.3) & (p["alt_email"][d] != "")
    use_home = (p["home_email"][d] != "") & (rng.random(k) < 0.5)
    phone_missing = (rng.random(k) < 0.2) & ~email_missing
    transposed = ~phone_missing & (rng.random(k) < rates.transposed_phone)
    dob_missing = rng.random(k) < 0.15
    birth, can_swap = swap_day_and_month(p["birth_day"][d])
    dob_swap = ~dob_missing & can_swap & (rng.random(k) < rates.swapped_birth_date)
    new_surname = t >= p["name_change_t"][d]
    moved = t >= p["move_t"][d]
    new_email = ~use_home & (t >= p["email_change_t"][d])
    prim = primary.iloc[d]
    prim_phone = prim["phone"].to_numpy(dtype=str) != ""
    prim_email = prim["email"].to_numpy(dtype=str) != ""
    prim_home = p["home_email"][d] != ""
    prim_postcode = prim["postcode"].to_numpy(dtype=str) != ""
    prim_dob = prim["birth_day"].to_numpy() > -10**6
    for fix in ("phone", "email", "dob", "name"):
        same_email = ~email_missing & ~use_alt & ~new_email & (use_home == prim_home)
        shared = ((~phone_missing & ~transposed & prim_phone).astype(int)
                  + (same_email & prim_email) + (~swapped & ~nick & ~init & ~new_surname)
                  + (~moved & prim_postcode) + (~dob_missing & ~dob_swap & prim_dob))
        short = shared < 2
        if fix == "phone":
            phone_missing &= ~short
            transposed &= ~short
        elif fix == "email":
            email_missing &= ~short
            use_alt &= ~short
            new_email &= ~short
            use_home = np.where(short, prim_home, use_home)
        elif fix == "dob":
            dob_missing &= ~short
            dob_swap &= ~short
        else:
            swapped &= ~short
            nick &= ~short
            init &= ~short
    first = np.where(nick, p["nickname"][d], p["first_name"][d])
    last = as_of(p, d, t, "last_name", "new_last_name", "name_change_t")
    first = np.where(typo & on_first & ~nick, one_char_edit(first, rng), first)
    last = np.where(typo & ~on_first, one_char_edit(last, rng), last)
    first = np.where(init, initials(first), first)
    first, last = np.where(swapped, last, first), np.where(swapped, first, last)
    first = pad_spaces(vary_case(first, rng, 0.08, 0.08), rng, 0.1)
    last = pad_spaces(vary_case(last, rng, 0.10, 0.08), rng, 0.1)
    email = np.where(new_email, p["new_email"][d], p["email"][d])
    email = np.where(use_home, p["home_email"][d], np.where(use_alt, p["alt_email"][d], email))
    email = pad_spaces(vary_case(email, rng, 0.05, 0.0, 0.15), rng, 0.05)
    email = np.where(email_missing, "", email)
    national = np.where(transposed, transpose_digits(p["phone"][d], rng), p["phone"][d])
    fmt = (p_fmt[d] + rng.integers(1, 5, k)) % 5  # always another format than the primary
    phone = np.where(phone_missing, "", phone_formats(national)[fmt, np.arange(k)]) if k else \
        np.full(0, "")
    postcode = vary_postcode(as_of(p, d, t, "postcode", "new_postcode", "move_t"), rng, 0.25)
    new_card = p["has_card"][d] & (rng.random(k) < 0.3)
    table = pd.DataFrame({
        "first_name": first, "last_name": last, "email": email, "phone": phone,
        "street": as_of(p, d, t, "street", "new_street", "move_t"), "postcode": postcode,
        "city": p["city"][d],
        "birth_day": np.where(dob_missing, -10**6, np.where(dob_swap, birth, p["birth_day"][d])),
        "signup_s": t, "signup_channel": np.array(w.ACQUISITION_CHANNELS)[channel],
        "loyalty_card": np.where(new_card, p["new_card"][d], ""),
        "person": d, "kind": "duplicate",
        "variation": variation_labels(
            typo=typo & ~(on_first & (nick | init)), nickname=nick, initial=init, names_swapped=swapped,
            new_surname=new_surname, new_email=new_email & ~email_missing,
            alternate_email=use_alt & ~email_missing, household_email=use_home & ~email_missing,
            transposed_phone=transposed, moved=moved, swapped_birth_date=dob_swap),
    })
    return table, t, new_card


def _junk(rng: np.random.Generator, k: int) -> pd.DataFrame:
    """Test and junk sign-ups (staff trying the form, keyboard mashing)."""
    names = JUNK_NAMES[rng.integers(0, len(JUNK_NAMES), k)]
    email = JUNK_EMAILS[rng.integers(0, len(JUNK_EMAILS), k)]
    numbered = rng.random(k) < 0.5
    local, domain = split_email(email)
    email = np.where(numbered & (email != ""),
                     cat(local, rng.integers(1, 999, k).astype(str), "@", domain), email)
    t = START_S + (rng.random(k) * (END_S - START_S - DAY)).astype(np.int64)
    return pd.DataFrame({
        "first_name": names[:, 0], "last_name": names[:, 1], "email": email,
        "phone": JUNK_PHONES[rng.integers(0, len(JUNK_PHONES), k)],
        "street": np.where(rng.random(k) < 0.5, "1 Test Street", ""),
        "postcode": np.array(["", "XX1 1XX", "AB1 2CD"])[rng.integers(0, 3, k)],
        "city": np.where(rng.random(k) < 0.5, "Testville", ""),
        "birth_day": np.where(rng.random(k) < 0.5, -25567, -10**6),  # 01/01/1900 or empty
        "signup_s": at_local_time(rng, t, rng.integers(0, 3, k)),
        "signup_channel": np.array(w.ACQUISITION_CHANNELS)[rng.integers(0, 3, k)],
        "loyalty_card": "",
        "email_opt_in": YN[rng.integers(0, 2, k)], "sms_opt_in": YN[rng.integers(0, 2, k)],
        "do_not_contact": "N", "person": -1, "kind": "junk",
    })


def typed_emails(rng: np.random.Generator, email: np.ndarray) -> np.ndarray:
    """E-mail addresses as typed: case and surrounding spaces vary."""
    return pad_spaces(vary_case(email, rng, 0.04, 0.0, 0.12), rng, 0.08)


def _variants(*forms: np.ndarray) -> pa.Array:
    """Several written forms of a per-person value, flattened form-major for pa.take."""
    return pa.array(np.concatenate(forms), pa.string())


def _pick(rng, k: int, probs) -> np.ndarray:
    return rng.choice(len(probs), k, p=np.asarray(probs) / np.sum(probs))


def web_customer_fields(rng, p: People, person: np.ndarray, rates, t=None) -> dict:
    """Customer fields typed on each web order of the given people (pyarrow arrays).

    Each field has a few written forms per person (e.g. the e-mail as is, Title-cased, upper
    case, with a leading or trailing space); each order picks one, so the work per order is an
    index computation and one take. With the orders' instants ``t``, an order placed after a
    person's e-mail change, marriage or move carries the new e-mail, surname or address. A
    share ``rates.nickname`` of the orders of people with a short name use it. A household's
    shared e-mail is never used here: shop accounts are keyed by e-mail, so each person orders
    with their own.
    """
    n, k = p.n, len(person)
    t = np.zeros(k, dtype=np.int64) if t is None else np.asarray(t)
    main, alt, new = p["email"], p["alt_email"], p["new_email"]
    email_forms = _variants(*(f(e) for e in (main, alt, new) for f in (
        lambda e: e, np.strings.title, np.strings.upper, lambda e: cat(" ", e),
        lambda e: cat(e, " "))))
    use_alt = (alt[person] != "") & (rng.random(k) < rates.alternate_email_order_share)
    changed = ~use_alt & (t >= p["email_change_t"][person])
    form = _pick(rng, k, [0.76, 0.12, 0.04, 0.04, 0.04]) + 5 * use_alt + 10 * changed
    phones = p.phone_variants()
    phone_forms = _variants(phones[0], phones[1], phones[4], np.full(n, ""))
    phone = np.where(rng.random(k) < rates.missing_web_phone, 3, _pick(rng, k, [1, 1, 1]))
    first, nick, last, new_last = p["first_name"], p["nickname"], p["last_name"], p["new_last_name"]
    lower = (rng.random(k) < 0.04).astype(np.int64)
    use_nick = (nick[person] != "") & (rng.random(k) < rates.nickname)
    married = t >= p["name_change_t"][person]
    moved = (t >= p["move_t"][person]).astype(np.int64)
    postcode, new_postcode = p["postcode"], p["new_postcode"]
    pc_form = _pick(rng, k, [0.9, 0.05, 0.05]) + 3 * moved
    return {
        "email": email_forms.take(pa.array(form * n + person)),
        "first_name": _variants(first, np.strings.lower(first), nick, np.strings.lower(nick))
        .take(pa.array((lower + 2 * use_nick) * n + person)),
        "last_name": _variants(last, np.strings.lower(last), new_last, np.strings.lower(new_last))
        .take(pa.array((lower + 2 * married) * n + person)),
        "phone": phone_forms.take(pa.array(phone * n + person)),
        "street": _variants(p["street"], p["new_street"]).take(pa.array(moved * n + person)),
        "postcode": _variants(*(f(c) for c in (postcode, new_postcode) for f in (
            lambda c: c, lambda c: np.strings.replace(c, " ", ""), np.strings.lower)))
        .take(pa.array(pc_form * n + person)),
        "city": pa.array(p["city"], pa.string()).take(pa.array(person)),
        "marketing_opt_in": p["email_opt_in"][person],
    }


def qa_customer_fields(rng, k: int) -> dict:
    """Customer fields of web test orders placed by the QA team."""
    names = QA_NAMES[rng.integers(0, len(QA_NAMES), k)]
    plus = rng.random(k) < 0.5
    email = np.where(plus, cat("qa+", rng.integers(1, 30, k).astype(str), "@", w.SHOP_DOMAIN),
                     f"qa@{w.SHOP_DOMAIN}")
    text = {"email": typed_emails(rng, email), "first_name": names[:, 0],
            "last_name": names[:, 1], "phone": np.full(k, ""),
            "street": np.full(k, "1 Test Street"), "postcode": np.full(k, "ZZ99 9ZZ"),
            "city": np.full(k, "Testville")}
    out = {c: pa.array(v, pa.string()) for c, v in text.items()}
    out["marketing_opt_in"] = np.zeros(k, dtype=bool)
    return out


def tickets(rng: np.random.Generator, p: People, person: np.ndarray, rates,
            t=None) -> pd.DataFrame:
    """Caller details as typed by call-centre agents, at the calls' instants ``t``.

    Agents mistype names, write an initial only or the name the caller goes by (Bill); the
    surname, e-mail and postcode are those of the call's time (new after a marriage, an e-mail
    change, a move); a household partner often gives the shared e-mail; some phone numbers get
    two digits swapped. Returns the four caller fields, name_typo and the variations (truth).
    """
    k = len(person)
    t = np.zeros(k, dtype=np.int64) if t is None else np.asarray(t)
    first = p["first_name"][person]
    nick = (p["nickname"][person] != "") & (rng.random(k) < rates.nickname)
    init = ~nick & (rng.random(k) < rates.initial)
    first = np.where(nick, p["nickname"][person], first)
    last = as_of(p, person, t, "last_name", "new_last_name", "name_change_t")
    typo = rng.random(k) < rates.callcentre_name_typo
    on_first = (rng.random(k) < 0.5) & ~init
    first, last = first.astype(object), last.astype(object)  # typos may lengthen a name
    first[typo & on_first] = one_char_edit(first[typo & on_first], rng)
    last[typo & ~on_first] = one_char_edit(last[typo & ~on_first], rng)
    first = np.where(init, initials(first.astype(str)), first.astype(str))
    last = last.astype(str)
    surname_first = rng.random(k) < 0.5
    name = np.where(surname_first, cat(np.strings.upper(last), ", ", first), cat(first, " ", last))
    alt = p["alt_email"][person]
    use_alt = (alt != "") & (rng.random(k) < 0.15)
    use_home = ~use_alt & (p["home_email"][person] != "") & (rng.random(k) < 0.7)
    new_email = ~use_alt & ~use_home & (t >= p["email_change_t"][person])
    email = np.where(new_email, p["new_email"][person], p["email"][person])
    email = np.where(use_alt, alt, np.where(use_home, p["home_email"][person], email))
    no_email = rng.random(k) < rates.callcentre_missing_email
    email = np.where(no_email, "", vary_case(email, rng, 0.05, 0.0, 0.10))
    transposed = rng.random(k) < rates.transposed_phone
    national = np.where(transposed, transpose_digits(p["phone"][person], rng), p["phone"][person])
    phone = phone_formats(national)[rng.integers(0, 5, k), np.arange(k)] if k else np.full(0, "")
    no_phone = ~no_email & (rng.random(k) < 0.03)
    phone = np.where(no_phone, "", phone)
    moved = t >= p["move_t"][person]
    postcode = vary_postcode(as_of(p, person, t, "postcode", "new_postcode", "move_t"), rng, 0.3)
    no_postcode = rng.random(k) < rates.callcentre_missing_postcode
    postcode = np.where(no_postcode, "", postcode)
    variation = variation_labels(
        typo=typo, nickname=nick, initial=init, new_surname=t >= p["name_change_t"][person],
        new_email=new_email & ~no_email, alternate_email=use_alt & ~no_email,
        household_email=use_home & ~no_email, transposed_phone=transposed & ~no_phone,
        moved=moved & ~no_postcode)
    return pd.DataFrame({"caller_name": name, "caller_email": email, "caller_phone": phone,
                         "caller_postcode": postcode, "name_typo": typo, "variation": variation})
