"""Drawing the customers of one chunk: segment, place, acquisition, consent and contact details."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import world as w
from .clock import DAY, END_S, START_S, local_to_utc, to_local
from .text import cat, one_char_edit, permuted_digits, phone_formats, split_email

ACQUISITION_GROWTH = 1.5  # sign-ups per day at the end of the window = (1 + growth) x at start


class EmailRegistry:
    """Hashes of every e-mail address handed out so far, so addresses are unique across chunks.

    Normalised e-mails identify web-shop customers; two people sharing one would make the
    identity truth ambiguous. Memory is 8 bytes per address.
    """

    def __init__(self) -> None:
        self._hashes = np.empty(0, dtype=np.uint64)

    @staticmethod
    def _hash(emails: np.ndarray) -> np.ndarray:
        return pd.util.hash_array(np.asarray(emails, dtype=object))

    def make_unique(self, emails: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Append digits to addresses already taken (before the '@') until all are unique."""
        emails = np.asarray(emails, dtype=str).copy()
        for _ in range(20):
            h = self._hash(emails)
            _, first = np.unique(h, return_index=True)
            dup_in_chunk = np.ones(len(h), dtype=bool)
            dup_in_chunk[first] = False
            clash = dup_in_chunk | np.isin(h, self._hashes)
            if not clash.any():
                break
            local, domain = split_email(emails[clash])
            suffix = rng.integers(1, 1000, clash.sum()).astype(str)
            emails[clash] = cat(local, suffix, "@", domain)
        self._hashes = np.union1d(self._hashes, self._hash(emails))
        return emails


def existing_base_share(years: float = w.EXISTING_BASE_YEARS,
                        growth: float = ACQUISITION_GROWTH) -> float:
    """Share of the N people signed up before the window.

    Intake is constant for `years` before the window at the window's starting rate, then grows
    linearly to (1 + growth) x that rate at the window's end, so the share is
    years / (years + window years x (1 + growth / 2)).
    """
    window_years = (END_S - START_S) / DAY / 365.25
    return years / (years + window_years * (1 + growth / 2))


def acquisition_times(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sign-up instants: the existing base uniformly over the years before the window, the rest
    over the window with linearly growing intake (inverse-CDF sampling)."""
    g = ACQUISITION_GROWTH
    share = existing_base_share()
    u = rng.random(n)
    before = u < share
    v = np.where(before, 0.0, (u - share) / (1 - share))
    frac = (np.sqrt(1 + 2 * g * v * (1 + g / 2)) - 1) / g
    in_window = START_S + frac * (END_S - START_S - DAY)
    span = w.EXISTING_BASE_YEARS * 365.25 * DAY
    earlier = START_S - span + (u / share) * span
    return np.where(before, np.minimum(earlier, START_S - DAY), in_window)


def time_of_day(rng: np.random.Generator, channel: np.ndarray) -> np.ndarray:
    """Seconds after local midnight: stores 09-20h, call centre 08-20h, web mostly evenings."""
    n = len(channel)
    store = 9 * 3600 + rng.beta(2.2, 2.0, n) * 11 * 3600
    office = 8 * 3600 + rng.random(n) * 12 * 3600
    web = (7 * 3600 + rng.beta(3.0, 1.6, n) * 17 * 3600) % DAY
    out = np.where(channel == 0, store, np.where(channel == 2, office, web))
    return out.astype(np.int64)


def at_local_time(rng: np.random.Generator, utc_s: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """Move instants to a plausible local time of day on the same London date."""
    day = to_local(np.asarray(utc_s, dtype=np.int64)) // DAY
    return local_to_utc(day * DAY + time_of_day(rng, channel))


class People:
    """Columns (numpy arrays) describing the people of one chunk."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._columns: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]

    def __setitem__(self, name: str, values) -> None:
        values = np.asarray(values)
        if values.shape != (self.n,):
            raise ValueError(f"column {name} has shape {values.shape}, expected ({self.n},)")
        self._columns[name] = values

    def __len__(self) -> int:
        return self.n

    def phone_variants(self) -> np.ndarray:
        """The five written forms of each person's phone number, shape (5, n) (cached)."""
        if "_phones" not in self._columns:
            self._columns["_phones"] = phone_formats(self["phone"])
        return self._columns["_phones"]


def draw_people(rng: np.random.Generator, first_index: int, n: int, names: w.NameBook,
                emails: EmailRegistry) -> People:
    """Latent attributes and contact details of n people with global indices from first_index."""
    p = People(n)
    p["pidx"] = np.arange(first_index, first_index + n, dtype=np.int64)
    p["person_id"] = cat("P", np.strings.zfill((p["pidx"] + 1).astype(str), 7))
    seg = rng.choice(len(w.SEGMENTS), n, p=w.SEGMENT_SHARE)
    p["segment"] = seg
    p["rate"] = rng.gamma(w.RATE_SHAPE[seg], w.RATE_SCALE[seg])
    p["dropout_prob"] = rng.beta(w.DROPOUT_A[seg], w.DROPOUT_B[seg])
    p["call_rate"] = rng.gamma(3.0, w.CALL_RATE[seg] / 3.0)
    acq = rng.choice(3, n, p=w.ACQUISITION_P)
    p["acq_channel"] = acq
    p["acq_t"] = at_local_time(rng, acquisition_times(rng, n), acq)
    card_p = w.SEGMENT_CARD_WEIGHT * w.SEGMENT_CARD_P[seg] + (1 - w.SEGMENT_CARD_WEIGHT) * w.CARD_P[acq]
    p["has_card"] = rng.random(n) < card_p
    mean = (w.SEGMENT_STORE_WEIGHT * w.SEGMENT_STORE_PREFERENCE[seg]
            + (1 - w.SEGMENT_STORE_WEIGHT) * w.STORE_PREFERENCE[acq])
    k = w.STORE_PREFERENCE_CONCENTRATION
    p["p_store"] = np.where(p["has_card"], rng.beta(k * mean, k * (1 - mean)), 0.0)
    p["email_opt_in"] = rng.random(n) < w.EMAIL_OPT_IN_P + 0.1 * (acq == 1)
    p["sms_opt_in"] = rng.random(n) < w.SMS_OPT_IN_P
    p["do_not_contact"] = rng.random(n) < w.DO_NOT_CONTACT_P
    tier0 = (rng.random(n)[:, None] > w.INITIAL_TIER_P[seg].cumsum(axis=1)).sum(axis=1)
    p["tier0"] = np.minimum(tier0, 2)
    _add_place(p, rng)
    _add_identity(p, rng, names, emails)
    return p


def _add_place(p: People, rng: np.random.Generator) -> None:
    """Region, city, address, postcode and home store."""
    n = len(p)
    region = rng.choice(len(w.REGIONS), n, p=w.REGION_P)
    city_region = np.array([c[1] for c in w.CITIES])
    city = np.empty(n, dtype=np.int64)
    for r in range(len(w.REGIONS)):  # 6 regions, vectorised within each
        rows = np.flatnonzero(region == r)
        options = np.flatnonzero(city_region == r)
        weights = np.linspace(2.0, 1.0, len(options))  # first city is the largest
        city[rows] = rng.choice(options, len(rows), p=weights / weights.sum())
    p["region"] = region
    p["city_idx"] = city
    p["city"] = np.array([c[0] for c in w.CITIES])[city]
    p["postcode"] = random_postcodes(rng, city)
    p["street"] = random_streets(rng, n)
    store_region = np.array([s[2] for s in w.STORES])
    home = np.empty(n, dtype=np.int64)
    for r in range(len(w.REGIONS)):
        rows = np.flatnonzero(region == r)
        home[rows] = rng.choice(np.flatnonzero(store_region == r), len(rows))
    p["home_store"] = home


def random_postcodes(rng: np.random.Generator, city: np.ndarray) -> np.ndarray:
    """Plausible UK postcodes in the city's postcode areas, e.g. 'LS12 3AB'."""
    n = len(city)
    areas = [c[2] for c in w.CITIES]
    n_areas = np.array([len(a) for a in areas])
    flat = np.array([a for group in areas for a in group])
    offset = np.concatenate([[0], np.cumsum(n_areas)[:-1]])
    area = flat[offset[city] + (rng.random(n) * n_areas[city]).astype(np.int64)]
    district = rng.integers(1, 30, n).astype(str)
    sector = rng.integers(0, 10, n).astype(str)
    letters = w.POSTCODE_UNIT_LETTERS
    unit = cat(letters[rng.integers(0, len(letters), n)], letters[rng.integers(0, len(letters), n)])
    return cat(area, district, " ", sector, unit)


def random_streets(rng: np.random.Generator, n: int) -> np.ndarray:
    """House number and street name."""
    stems = np.array(w.STREET_STEMS)[rng.integers(0, len(w.STREET_STEMS), n)]
    suffix = np.array(w.STREET_SUFFIXES)[rng.integers(0, len(w.STREET_SUFFIXES), n)]
    number = (1 + rng.geometric(1 / 40, n)).astype(str)
    return cat(number, " ", stems, " ", suffix)


def _add_identity(p: People, rng: np.random.Generator, names: w.NameBook,
                  emails: EmailRegistry) -> None:
    """Names, birth date, unique phone and e-mail, loyalty card."""
    n = len(p)
    fi = rng.choice(len(names.first), n, p=names.first_p)
    li = rng.choice(len(names.last), n, p=names.last_p)
    p["first_name"], p["last_name"] = names.first[fi], names.last[li]
    age_days = (np.clip(rng.normal(44, 15, n), 18, 88) * 365.25).astype(np.int64)
    p["birth_day"] = p["acq_t"] // DAY - age_days
    # Phones: a bijection of the global index, so unique without any lookup across chunks.
    subscriber = (p["pidx"] * 982_451_653 + 123_456_789) % 900_000_000 + 10**8
    p["phone"] = cat("07", subscriber.astype(str))
    core = permuted_digits(2 * p["pidx"], 10**12, 723_340_112_091, 40_193, 12)
    p["card"] = np.where(p["has_card"], cat("6335", core), "")
    p["new_card"] = cat("6335", permuted_digits(2 * p["pidx"] + 1, 10**12,
                                                   723_340_112_091, 40_193, 12))
    birth_year = (1970 + p["birth_day"] // 365.25).astype(np.int64)
    main = email_addresses(rng, names.first_ascii[fi], names.last_ascii[li], birth_year)
    p["email"] = emails.make_unique(main, rng)
    p["alt_email"] = np.full(n, "")


def email_addresses(rng: np.random.Generator, first: np.ndarray, last: np.ndarray,
                    birth_year: np.ndarray) -> np.ndarray:
    """Addresses in the usual patterns (first.last, flast84, ...) at common UK providers."""
    n = len(first)
    yy = np.strings.zfill((birth_year % 100).astype(str), 2)
    num = rng.integers(1, 9999, n).astype(str)
    initial = np.strings.slice(first, 0, 1)
    patterns = np.stack([
        cat(first, ".", last), cat(first, last), cat(initial, ".", last), cat(first, "_", last),
        cat(first, ".", last, yy), cat(last, ".", first), cat(initial, last, yy), cat(first, num),
    ])
    local = patterns[rng.choice(8, n, p=[0.28, 0.12, 0.12, 0.06, 0.14, 0.08, 0.12, 0.08]),
                     np.arange(n)]
    domain = np.array(w.EMAIL_PROVIDERS)[rng.choice(len(w.EMAIL_PROVIDERS), n,
                                                    p=w.EMAIL_PROVIDER_P)]
    return cat(local, "@", domain)


def add_alt_emails(p: People, rng: np.random.Generator, share: float,
                   emails: EmailRegistry) -> None:
    """A second address for a share of people: a typo of the first one or another provider."""
    rows = np.flatnonzero(rng.random(len(p)) < share)
    if not len(rows):
        return
    local, domain = split_email(p["email"][rows])
    typo = rng.random(len(rows)) < 0.5
    other = np.array(w.EMAIL_PROVIDERS)[rng.choice(len(w.EMAIL_PROVIDERS), len(rows),
                                                   p=w.EMAIL_PROVIDER_P)]
    other = np.where(other == domain, "gmail.com", other)
    other = np.where(other == domain, "outlook.com", other)
    alt = np.where(typo, cat(one_char_edit(local, rng), "@", domain), cat(local, "@", other))
    alt_col = p["alt_email"].astype(object)
    alt_col[rows] = emails.make_unique(alt, rng)
    p["alt_email"] = alt_col.astype(str)
