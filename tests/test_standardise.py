"""Standardise: e-mail, names, postcodes, phone numbers in E.164, newest row per key, junk."""

import random

import ibis
import pytest

from crm_helpers.config import Settings
from crm_helpers.information import standardise


def _run(expr):
    return expr.execute()  # on Ibis' default backend (DuckDB), where cache() keeps its tables


def _e164(phones, countries):
    t = ibis.memtable({"n": list(range(len(phones))), "phone": phones, "country": countries},
                      schema={"n": "int64", "phone": "string", "country": "string"})
    out = _run(standardise.e164_phones(t).order_by("n")).phone
    return out.astype(object).where(out.notna(), None).tolist()


@pytest.mark.parametrize("raw", ["07700 900123", "+44 7700 900123", "(0)7700-900-123", "447700900123",
                                 "+44 (0)7700 900 123", "7700900123", "0044 7700 900123"])
def test_british_spellings_become_one_e164_number(raw):
    assert _e164([raw], ["GB"]) == ["+447700900123"]


@pytest.mark.parametrize("raw", ["06 12 34 56 78", "+33 6 12 34 56 78", "0033 6 12 34 56 78", "+33 (0)6 12 34 56 78",
                                 "33612345678", "612345678"])
def test_french_spellings_become_one_e164_number(raw):
    assert _e164([raw], ["FR"]) == ["+33612345678"]


def test_each_record_is_read_in_its_own_country():
    """The same digits are a British number in a British file and a French one in a French file;
    a foreign number in international form keeps its own country."""
    phones = ["01 23 45 67 89", "01234 567890", "+33 6 12 34 56 78", "+44 7911 123456"]
    assert _e164(phones, ["FR", "GB", "GB", "FR"]) == ["+33123456789", "+441234567890", "+33612345678",
                                                       "+447911123456"]


def test_numbers_of_the_wrong_shape_are_dropped():
    assert _e164(["12345", None, "", "077009001234567", "n/a", "0000"], ["GB"] * 6) == [None] * 6


def test_the_engine_agrees_with_phonenumbers():
    """Wherever the engine places a number itself, phonenumbers reads it the same way; what the
    engine leaves (foreign numbers, other shapes) is left to phonenumbers."""
    rng = random.Random(3)
    rows = []
    for country in ("GB", "FR", "US", "DE", "IT", "NL", "AR", "CH"):
        code = standardise.numbering_plan(country).calling_code
        for _ in range(150):
            d = str(rng.randint(10**6, 10**10))
            rows += [(s, country) for s in (d, "0" + d, f"+{code} {d}", f"00{code}{d}", code + d,
                                             f"+{code} (0){d}", "1" + d, "+1" + d, d[:-1])]
    t = ibis.memtable({"phone": [r[0] for r in rows], "country": [r[1] for r in rows]})
    digits, plus = t.phone.re_replace(r"[^0-9]", ""), t.phone.startswith("+")
    engine = _run(t.mutate(e164=ibis.cases(*[(t.country == c, standardise.e164_in_engine(digits, plus, c))
                                            for c in ("GB", "FR", "US", "DE", "IT", "NL", "AR", "CH")])))
    library = [standardise.e164_by_library(p, c) for p, c in rows]
    placed = engine.e164.notna()
    assert placed.mean() > 0.3
    assert (engine.e164[placed] == [x for x, p in zip(library, placed) if p]).all()


def test_the_library_reads_each_distinct_leftover_once(monkeypatch):
    calls = []
    read = standardise.e164_by_library
    monkeypatch.setattr(standardise, "e164_by_library", lambda p, c: calls.append(p) or read(p, c))
    phones = ["+33 6 12 34 56 78"] * 500 + ["07911 123456"] * 500 + ["ext 12"] * 100
    out = _e164(phones, ["GB"] * len(phones))
    assert out[:1] == ["+33612345678"] and out[500:501] == ["+447911123456"] and out[-1] is None
    assert sorted(calls) == ["+33 6 12 34 56 78", "ext 12"]


def test_standard_email_and_names():
    t = ibis.memtable({"email": ["  Anna.Smith@Mail.COM ", "not-an-email", None],
                       "name": ["  Zoë ", "O'Brien-Smith", "José!"]})
    assert list(_run(standardise.standard_email(t.email)).fillna("<NA>")) == ["anna.smith@mail.com", "<NA>", "<NA>"]
    assert list(_run(standardise.standard_name(t.name))) == ["zoe", "o'brien-smith", "jose"]


def test_split_full_name_handles_both_orders():
    t = ibis.memtable({"full": ["SMITH, Anna", "Anna Smith", "Mary Ann Jones"]})
    first, last = standardise.split_full_name(t.full)
    out = _run(t.select(first=first.strip(), last=last.strip()))
    assert out.values.tolist() == [["Anna", "SMITH"], ["Anna", "Smith"], ["Mary", "Ann Jones"]]


def test_first_per_key_keeps_the_newest_staged_row_or_the_given_order():
    t = ibis.memtable({"sku": ["A", "A", "A", "B"], "file": ["2024-01.csv", "2024-02.csv", "2024-02.csv", "x.csv"],
                       "record_no": [9, 2, 3, 2], "price": [1, 2, 3, 4]})
    newest = _run(standardise.first_per_key(t, "sku").order_by("sku"))
    assert newest.price.tolist() == [3, 4]
    cheapest = _run(standardise.first_per_key(t, "sku", order_by=["price"]).order_by("sku"))
    assert cheapest.price.tolist() == [1, 4]


def test_junk_lists_come_from_the_settings():
    t = ibis.memtable({"first_name": ["test", "marie", "jean", "anna"], "last_name": ["user", "dubois", "essai", "lee"],
                       "email": ["a@b.fr", "marie@exemple.fr", "j@b.fr", "essai12@b.fr"]})
    sample = _run(standardise.is_junk_record(t, Settings())).tolist()
    french = _run(standardise.is_junk_record(t, Settings(junk_names=("essai",), junk_email_domains=("exemple.fr",),
                                                         junk_email_local_parts=("essai",)))).tolist()
    assert sample == [True, False, False, False]
    assert french == [False, True, True, True]
