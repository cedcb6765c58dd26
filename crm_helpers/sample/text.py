"""Vectorised text noise: typing errors, phone formats, case and whitespace, identifiers.

All functions take and return numpy unicode arrays (or pyarrow arrays for identifiers) and draw
randomness only from the generator passed in, so results are reproducible.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_LOWER = np.frombuffer("abcdefghijklmnopqrstuvwxyz".encode("utf-32-le"), dtype=np.uint32)


def cat(*parts) -> np.ndarray:
    """Element-wise concatenation of string arrays and scalars."""
    out = np.asarray(parts[0], dtype=str)
    for p in parts[1:]:
        out = np.strings.add(out, np.asarray(p, dtype=str))
    return out


def split_email(emails: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(local part, domain) of e-mail addresses (works for empty arrays too)."""
    emails = np.asarray(emails, dtype=str)
    if not len(emails):
        return emails, emails
    local, _, domain = np.strings.partition(emails, "@")
    return local, domain


def one_char_edit(words: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply one typing error per word: substitution, deletion, transposition or doubling.

    The first character is left alone (people rarely mistype an initial), the result always
    differs from the input, and substituted letters keep the case of the letter they replace.
    Works on a fixed-width code-point matrix so there is no Python loop over words.
    """
    words = np.asarray(words, dtype=str)
    n = len(words)
    if n == 0:
        return words
    width = int(np.strings.str_len(words).max()) + 2
    fixed = words.astype(f"<U{width}")
    m = fixed.view(np.uint32).reshape(n, width)
    length = np.strings.str_len(words)
    pos = 1 + (rng.random(n) * np.maximum(length - 1, 1)).astype(np.int64)
    pos = np.minimum(pos, np.maximum(length - 1, 0))
    op = rng.integers(0, 4, n)
    op[length < 3] = 0  # short words: substitute only
    cols = np.arange(width)[None, :]
    p = pos[:, None]
    src = np.broadcast_to(cols, (n, width)).copy()
    src = np.where((op[:, None] == 1) & (cols >= p), cols + 1, src)  # delete char at pos
    src = np.where((op[:, None] == 3) & (cols > p), cols - 1, src)  # double char at pos
    swap = (op[:, None] == 2)
    q = np.where(pos + 1 < length, pos + 1, pos - 1)[:, None]  # transpose pos and a neighbour
    src = np.where(swap & (cols == p), q, src)
    src = np.where(swap & (cols == q), p, src)
    src = np.minimum(src, width - 1)
    out = np.take_along_axis(m, src, axis=1)
    out[:, -1] = 0
    # Substitution (and fallback where the edit changed nothing, e.g. transposing "ll").
    edited = out.view(f"<U{width}").ravel()
    sub = (op == 0) | (edited == fixed)
    rows = np.flatnonzero(sub)
    if len(rows):
        old = m[rows, pos[rows]]
        letter = _LOWER[rng.integers(0, 26, len(rows))]
        letter = np.where(letter == (old | 0x20), _LOWER[(letter - 97 + 1) % 26], letter)
        is_upper = (old >= 65) & (old <= 90)
        out[rows, pos[rows]] = np.where(is_upper, letter - 32, letter)
    return out.view(f"<U{width}").ravel().astype(str)


def phone_formats(national: np.ndarray) -> np.ndarray:
    """The five ways a UK mobile number gets written, as a (5, n) array.

    0 '07700 900123', 1 '+44 7700 900123', 2 '(0)7700-900-123', 3 '447700900123',
    4 '07700900123'. All normalise to the same digits.
    """
    d = np.asarray(national, dtype=str)
    s = np.strings.slice
    return np.stack([
        cat(s(d, 0, 5), " ", s(d, 5, 11)),
        cat("+44 ", s(d, 1, 5), " ", s(d, 5, 11)),
        cat("(0)", s(d, 1, 5), "-", s(d, 5, 8), "-", s(d, 8, 11)),
        cat("44", s(d, 1, 11)),
        d,
    ])


def pick(variants: np.ndarray, choice: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """variants[choice[i], rows[i]] for a (k, n) variant array."""
    rows = np.arange(variants.shape[1]) if rows is None else rows
    return variants[choice, rows]


def vary_case(text: np.ndarray, rng: np.random.Generator, p_upper: float, p_lower: float,
              p_title: float = 0.0) -> np.ndarray:
    """Randomly upper-, lower- or title-case some values (how people and agents type)."""
    out = np.array(text, dtype=str)  # a copy; only the chosen values are transformed
    u = rng.random(len(out))
    lo = p_upper + p_lower
    for rows, change in ((u < p_upper, np.strings.upper),
                         ((u >= p_upper) & (u < lo), np.strings.lower),
                         ((u >= lo) & (u < lo + p_title), np.strings.title)):
        idx = np.flatnonzero(rows)
        if len(idx):
            out[idx] = change(out[idx])
    return out


def pad_spaces(text: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """Add a leading or trailing space (or both) to a share p of the values."""
    text = np.asarray(text, dtype=str)
    u = rng.random(len(text))
    width = text.dtype.itemsize // 4 + 2
    out = text.astype(f"<U{max(width, 2)}")
    lead = np.flatnonzero(u < p / 3)
    out[lead] = np.strings.add(" ", out[lead])
    trail = np.flatnonzero(u < p)  # includes a few of the leading ones: spaces on both sides
    trail = trail[(u[trail] >= p / 3) | (u[trail] < p / 6)]
    out[trail] = np.strings.add(out[trail], " ")
    return out


def vary_postcode(postcode: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """Postcodes as people type them: some without the space, some in lower case."""
    postcode = np.asarray(postcode, dtype=str)
    u = rng.random(len(postcode))
    if not len(postcode):  # np.strings.replace fails on empty arrays
        return postcode
    out = np.where(u < p / 2, np.strings.replace(postcode, " ", ""), postcode)
    return np.where((u >= p / 2) & (u < p), np.strings.lower(postcode), out)


def ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Identifiers like CM00000001 from integers."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string()),
                          width, "0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


def permuted_digits(index: np.ndarray, modulus: int, multiplier: int, shift: int,
                    width: int) -> np.ndarray:
    """Unique digit strings from unique indices via an affine bijection modulo `modulus`.

    Used for phone and card numbers: distinct people get distinct numbers, yet consecutive
    people do not get consecutive numbers.
    """
    value = (np.asarray(index, dtype=object) * multiplier + shift) % modulus
    return np.strings.zfill(np.asarray(value, dtype=np.int64).astype(str), width)


def transpose_digits(national: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """National phone numbers with two neighbouring digits after the area prefix swapped.

    Where the two digits drawn are equal, the next pair is swapped instead (so nearly every
    number changes; a number with all its later digits equal stays as it is).
    """
    national = np.asarray(national, dtype=str)
    n = len(national)
    if n == 0:
        return national
    width = int(np.strings.str_len(national).max())
    m = national.astype(f"<U{width}").view(np.uint32).reshape(n, width).copy()
    length = np.strings.str_len(national)
    rows = np.arange(n)
    pos = 2 + (rng.random(n) * np.maximum(length - 3, 1)).astype(np.int64)
    for _ in range(width):
        nxt = np.minimum(pos + 1, width - 1)
        same = (m[rows, pos] == m[rows, nxt]) & (pos + 2 < length)
        if not same.any():
            break
        pos = np.where(same, pos + 1, pos)
    nxt = np.minimum(pos + 1, width - 1)
    ok = nxt < length
    a, b = m[rows, pos].copy(), m[rows, nxt].copy()
    m[rows[ok], pos[ok]], m[rows[ok], nxt[ok]] = b[ok], a[ok]
    return m.view(f"<U{width}").ravel().astype(str)


def swap_day_and_month(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dates (days since 1970-01-01) with day and month swapped where that is another valid date.

    Returns (the dates, whether each was swapped): only days 1-12 other than the month itself
    can be read the other way round.
    """
    dates = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    months = dates.astype("datetime64[M]")
    years = dates.astype("datetime64[Y]")
    day = (dates - months.astype("datetime64[D]")).astype(np.int64) + 1
    month = (months - years.astype("datetime64[M]")).astype(np.int64) + 1
    ok = (day <= 12) & (day != month)
    swapped = (years.astype("datetime64[M]") + np.where(ok, day - 1, 0)).astype("datetime64[D]") \
        + np.where(ok, month - 1, 0)
    out = np.where(ok, swapped.astype(np.int64), np.asarray(days, dtype=np.int64))
    return out, ok


def initials(first_names: np.ndarray) -> np.ndarray:
    """First initials as agents and forms record them ("J" for John)."""
    return np.strings.upper(np.strings.slice(np.asarray(first_names, dtype=str), 0, 1))
