"""Standardise: one spelling for every value, and the test records marked as junk.

The first two steps of integration (see :mod:`crm_helpers.information.integrate`):

- **Standardise** every customer record: e-mail in lower case, phone numbers in E.164
  (``+447700900123``) for each source's declared country, "LAST, First" names split, names without
  accents or punctuation, postcodes without spaces. A record staged several times (a web-shop
  customer on every order line) keeps its newest row.
- **Junk**: test records, recognised by the names, e-mail domains and e-mail local parts of the
  organisation's :class:`~crm_helpers.config.Settings`.

Everything is an Ibis expression run by the engine. Phone numbers are the one exception that needs a
library: the engine places the common spellings of the declared country's numbers itself (with the
numbering plan of ``phonenumbers``), and only the few distinct spellings it cannot place (foreign
numbers, extensions, typos) go through ``phonenumbers`` in Python, each once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import ibis
import ibis.expr.types as ir
import pandas as pd

from crm_helpers import warehouse as wh
from crm_helpers.config import Settings

#: Order of staged rows, newest first: the later file, then the later line of that file.
NEWEST_STAGED_FIRST = (ibis.desc("file"), ibis.desc("record_no"))


def first_per_key(t: ir.Table, key: str | list[str], order_by=NEWEST_STAGED_FIRST) -> ir.Table:
    """The first row of each value of ``key`` in the order ``order_by`` (by default the newest staged row).

    The one definition of "newest row per key" (a product, store or campaign restated in a later
    file; a customer seen on several order lines) and of "top row per group" (a customer's main
    region).
    """
    ranked = t.mutate(_rank=ibis.row_number().over(group_by=key, order_by=list(order_by)))
    return ranked.filter(ranked._rank == 0).drop("_rank")


# --------------------------------------------------------------------------------------------
# Names, e-mail, postcodes
# --------------------------------------------------------------------------------------------

def standard_email(email: ir.StringValue) -> ir.StringValue:
    """Lower-case, trimmed e-mail; NULL when empty or without an @."""
    e = email.strip().lower()
    return ibis.ifelse(e.contains("@"), e, ibis.null(str))


def standard_name(name: ir.StringValue) -> ir.StringValue:
    """Lower-case name with accents, punctuation and surrounding blanks removed."""
    return _strip_accents(name).lower().re_replace(r"[^a-z' -]", "").strip().nullif("")


@ibis.udf.scalar.builtin(name="strip_accents")
def _strip_accents(text: str) -> str:
    """DuckDB's strip_accents (é -> e)."""


def split_full_name(full_name: ir.StringValue) -> tuple[ir.StringValue, ir.StringValue]:
    """First and last name from "LAST, First" or "First Last" as typed by an agent."""
    has_comma = full_name.contains(",")
    before, after = full_name.re_extract(r"^([^,]*),(.*)$", 1), full_name.re_extract(r"^([^,]*),(.*)$", 2)
    first_word = full_name.strip().re_extract(r"^(\S+)\s*(.*)$", 1)
    rest = full_name.strip().re_extract(r"^(\S+)\s*(.*)$", 2)
    first = ibis.ifelse(has_comma, after, first_word)
    last = ibis.ifelse(has_comma, before, rest)
    return first, last


def standard_postcode(postcode: ir.StringValue) -> ir.StringValue:
    """Upper-case postcode without blanks or punctuation (``sw1a 1aa`` -> ``SW1A1AA``)."""
    return postcode.upper().re_replace(r"[^A-Z0-9]", "").nullif("")


# --------------------------------------------------------------------------------------------
# Phone numbers to E.164
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NumberingPlan:
    """What the engine needs to place a country's phone numbers, from ``phonenumbers``' metadata.

    ``pattern`` is the general shape of the country's national numbers (length and leading digits),
    so a number in a range allocated after the library's last update still passes, while "12345"
    does not; ``trunk_prefix`` is dialled before a national number ("0" in GB and FR) and
    ``exit_code`` before an international one ("00", "011"). A prefix that is not plain digits (it
    depends on the number) is left to the library, as are the national spellings of countries where
    the library rewrites the number (``national_spellings`` false).
    """

    country: str
    calling_code: str
    pattern: str
    trunk_prefix: str | None
    exit_code: str | None
    national_spellings: bool


@lru_cache
def numbering_plan(country: str) -> NumberingPlan:
    """The numbering plan of an ISO 3166 country code (``GB``, ``FR``), from ``phonenumbers``."""
    import phonenumbers

    meta = phonenumbers.PhoneMetadata.metadata_for_region(country.upper())
    if meta is None:
        raise ValueError(f"unknown country {country!r} for phone numbers (an ISO 3166 code such as FR)")

    def digits_only(prefix):
        return prefix if prefix and prefix.isdigit() else None

    return NumberingPlan(country=country.upper(), calling_code=str(meta.country_code),
                         pattern=f"^(?:{meta.general_desc.national_number_pattern})$",
                         trunk_prefix=digits_only(meta.national_prefix),
                         exit_code=digits_only(meta.international_prefix),
                         national_spellings=meta.national_prefix_transform_rule is None)


def _without(digits: ir.StringValue, prefix: str | None) -> ir.StringValue:
    """``digits`` without a leading ``prefix``; NULL when it does not start with it."""
    if not prefix:
        return digits
    return ibis.ifelse(digits.startswith(prefix), digits.substr(len(prefix)), ibis.null(str))


def e164_in_engine(digits: ir.StringValue, plus: ir.BooleanValue, country: str) -> ir.StringValue:
    """E.164 form of the usual spellings of ``country``'s numbers, as an engine expression; else NULL.

    ``digits`` are the number's digits alone and ``plus`` whether it was written with a leading
    "+" (see :func:`e164_phones`). For GB, "07700 900123", "+44 7700 900123", "0044 7700 900123",
    "+44 (0)7700 900123", "447700900123" and "7700900123" all become ``+447700900123``: drop an
    exit code and the country's calling code, or the trunk prefix, and keep the first reading whose
    national number has the shape of the numbering plan. Other countries' numbers, extensions and
    numbers of another shape come out NULL: :func:`e164_by_library` decides those.
    """
    plan = numbering_plan(country)
    if plan.exit_code:
        international = plus | digits.startswith(plan.exit_code)
        own_code = _without(ibis.ifelse(plus, digits, _without(digits, plan.exit_code)), plan.calling_code)
    else:
        international, own_code = plus, _without(digits, plan.calling_code)
    readings = [own_code, _without(own_code, plan.trunk_prefix)]  # "+44 (0)7700 ..." keeps a trunk 0
    national = [_without(digits, plan.trunk_prefix), digits,  # "07700 ...", "7700 ..."
                _without(digits, plan.calling_code),  # "447700 ..." without the +
                _without(_without(digits, plan.calling_code), plan.trunk_prefix)]

    def first_valid(candidates):
        return ibis.coalesce(*[ibis.ifelse(c.re_search(plan.pattern), c, ibis.null(str)) for c in candidates])

    nsn = ibis.ifelse(international, first_valid(readings),
                      first_valid(national) if plan.national_spellings else ibis.null(str))
    return "+" + ibis.literal(plan.calling_code) + nsn


def e164_by_library(phone: str | None, country: str | None) -> str | None:
    """E.164 form of one phone number as written in ``country``, by ``phonenumbers``; None if it is none.

    The number may be of any country ("+33 6 12 34 56 78" in a British file); it is kept when its
    national number has the shape of its own country's plan, as in :func:`e164_in_engine`.
    """
    import re

    import phonenumbers

    try:
        number = phonenumbers.parse(phone, country)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_country_code(number.country_code)
    if phonenumbers.PhoneMetadata.metadata_for_region(region) is None:  # satellite, UIFN: no customer's
        return None
    national = phonenumbers.national_significant_number(number)
    return f"+{number.country_code}{national}" if re.match(numbering_plan(region).pattern, national) else None


def e164_phones(t: ir.Table, phone: str = "phone", country: str = "country") -> ir.Table:
    """``t`` with its ``phone`` column in E.164, each row read in the country of its ``country`` column.

    The engine places the usual spellings (:func:`e164_in_engine`); the distinct (phone, country)
    pairs it leaves are parsed by ``phonenumbers`` once each and joined back. Runs the engine part
    (into a temporary table, :func:`crm_helpers.warehouse.temporary`) to find that remainder;
    returns an expression.
    """
    digits = wh.temporary(t.mutate(_digits=t[phone].re_replace(r"[^0-9]", ""), _plus=t[phone].strip().startswith("+")))
    countries = sorted(digits.select(country).distinct().to_pandas()[country].dropna())
    fast = ibis.cases(*[(digits[country] == c, e164_in_engine(digits._digits, digits._plus, c)) for c in countries],
                      else_=ibis.null(str)) if countries else ibis.null(str)
    placed = wh.temporary(digits.mutate(_e164=fast).drop("_digits", "_plus"))
    digits.get_backend().drop_table(digits.op().name)  # placed holds all it needs
    rest = (placed.filter(placed._e164.isnull() & (placed[phone].strip().length() > 0))
            .select(_raw=placed[phone], _country=placed[country]).distinct().to_pandas())
    parsed = ibis.memtable(pd.DataFrame({
        "_raw": rest._raw, "_country": rest._country,
        "_parsed": [e164_by_library(p, c) for p, c in zip(rest._raw, rest._country)]}),
        schema={"_raw": "string", "_country": "string", "_parsed": "string"})
    joined = placed.left_join(parsed, [placed[phone] == parsed._raw, placed[country] == parsed._country])
    return joined.mutate(**{phone: ibis.coalesce(joined._e164, joined._parsed)}).drop(
        "_e164", "_raw", "_country", "_parsed")


# --------------------------------------------------------------------------------------------
# Customer records
# --------------------------------------------------------------------------------------------

def standardised_customers(con, countries: dict[str, str], default_country: str) -> ir.Table:
    """One standardised row per source customer record (the newest row of each record).

    Args:
        con: the warehouse connection (reads ``stg_customer``).
        countries: each source's declared country (ISO code), for its phone numbers.
        default_country: the country of sources that declare none (``Settings.country``).
    Returns:
        An expression with unique_id (``source:source_record_id``), the standardised identifiers
        (first_name, last_name, email, phone in E.164, postcode, street, city, birth_date) and the
        record's sign-up, loyalty card and consent fields.
    """
    stg = con.table("stg_customer")
    newest = first_per_key(stg, ["source", "source_record_id"],
                           order_by=[ibis.desc(stg.signup_ts), *NEWEST_STAGED_FIRST])
    country = ibis.cases(*[(newest.source == s, c) for s, c in sorted(countries.items())],
                         else_=default_country) if countries else ibis.literal(default_country)
    split_first, split_last = split_full_name(newest.full_name)
    records = newest.select(
        "source", "source_record_id",
        unique_id=newest.source + ":" + newest.source_record_id,
        first_name=standard_name(newest.first_name.fill_null(split_first)),
        last_name=standard_name(newest.last_name.fill_null(split_last)),
        email=standard_email(newest.email),
        phone=newest.phone,
        country=country,
        postcode=standard_postcode(newest.postcode),
        street=newest.street.strip().nullif(""),
        city=newest.city.strip().nullif(""),
        birth_date=newest.birth_date,
        signup_ts=newest.signup_ts,
        signup_channel=newest.signup_channel,
        loyalty_card=newest.loyalty_card.strip().nullif(""),
        email_opt_in=newest.email_opt_in,
        sms_opt_in=newest.sms_opt_in,
        do_not_contact=newest.do_not_contact,
    )
    return e164_phones(records).drop("country")


# --------------------------------------------------------------------------------------------
# Junk
# --------------------------------------------------------------------------------------------

def is_junk_record(t: ir.Table, settings: Settings) -> ir.BooleanValue:
    """Test and junk customer records: the settings' test names, e-mail domains or e-mail local parts.

    Names are compared after standardisation (lower case), e-mail local parts without trailing
    digits or separators ("test123" counts as "test").
    """
    names = [n.lower() for n in settings.junk_names]
    domain = t.email.re_extract(r"@(.*)$", 1)
    local = t.email.re_extract(r"^([^@+]*)", 1).re_replace(r"[0-9._-]+$", "")
    full = (t.first_name.fill_null("") + " " + t.last_name.fill_null("")).strip()
    return (t.first_name.isin(names) | t.last_name.isin(names) | full.isin(names)
            | domain.isin([d.lower() for d in settings.junk_email_domains])
            | local.isin([p.lower() for p in settings.junk_email_local_parts])).fill_null(False)


# The business columns of a staged order line: rows equal in all of them are exact duplicates.
ORDER_LINE_COLUMNS = ["source", "order_id", "line_no", "order_ts", "customer_ref", "store_id", "channel",
                      "sku", "quantity", "unit_price", "line_amount"]


def distinct_order_lines(con) -> ir.Table:
    """Staged order lines with exact duplicate rows (same values in every business column) removed."""
    return con.table("stg_order_line").select(ORDER_LINE_COLUMNS).distinct()
