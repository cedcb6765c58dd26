"""The display layer: every number a reader sees, in its unit.

A column's *unit* says how its values read: ``count`` (a whole number with thousands separators),
``money`` (the declared currency, by babel, in the settings' locale), ``rate`` (a fraction shown as
a percentage: 0.488 -> 48.8%), ``days``, ``date``, ``number`` and ``text``. :func:`fmt` formats one
value for a sentence, :func:`table` a whole table (pandas ``Styler``: units applied, a readable
index, only the columns asked for, readable headers, ``–`` for missing values) and :func:`change`
states a movement in words. Settings (currency, locale) come from
:func:`crm_helpers.plots.current_settings`, which :func:`crm_helpers.setup_notebook` sets from the
warehouse.
"""

from __future__ import annotations

import hashlib
import math
import textwrap
from datetime import date, datetime

import numpy as np
import pandas as pd

from crm_helpers.config import with_decimals

COUNT, MONEY, RATE, DAYS, DATE, NUMBER, TEXT = "count", "money", "rate", "days", "date", "number", "text"
UNITS = (COUNT, MONEY, RATE, DAYS, DATE, NUMBER, TEXT)
MISSING = "–"

#: Columns a reader never needs (engine bookkeeping).
INTERNAL_COLUMNS = ("grouping_id",)

#: Headers that are not simply the column name with spaces and a capital.
HEADERS = {
    "aov": "Average order value",
    "rfm": "RFM",
    "top20_revenue_share": "Revenue share of top 20% customers",
    "clv": "CLV",
    "kpi": "KPI",
    "email_opt_in": "E-mail opt-in",
    "sms_opt_in": "SMS opt-in",
    "email": "E-mail",
}
_ACRONYMS = {"id": "ID", "rfm": "RFM", "kpi": "KPI", "aov": "AOV", "clv": "CLV", "url": "URL", "pct": "%"}


def unit_of(unit: str | None) -> str:
    """A display unit from any unit the package declares: ``%`` -> rate, ``¤ ...`` -> money, else count/number.

    ``kpis.KPI_UNITS`` and ``olap.MEASURES`` write money as ``star.MONEY`` (``¤``) and rates as
    ``%``; counted things ("customers", "orders") are counts; "orders per customer" is a number.
    """
    if not unit:
        return NUMBER
    if unit in UNITS:
        return unit
    if unit == "%":
        return RATE
    if unit.startswith("¤"):
        return MONEY
    return NUMBER if " per " in unit else COUNT


def _settings():
    from crm_helpers.plots import current_settings

    return current_settings()


def _missing(value) -> bool:
    try:
        return value is None or value is pd.NA or value is pd.NaT or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _number(value: float, decimals: int) -> str:
    from babel.numbers import format_decimal

    return format_decimal(value, format=with_decimals("#,##0", decimals), locale=_settings().locale)


def money_decimals(values) -> int:
    """Decimals for amounts: none once the largest is 1,000 or more (``£1,234``), else two (``£12.50``)."""
    arr = pd.to_numeric(pd.Series(np.atleast_1d(values)), errors="coerce").abs()
    return 0 if arr.max(skipna=True) >= 1_000 else 2


def fmt(value, unit: str, decimals: int | None = None) -> str:
    """One value as a reader expects it in a sentence: ``£1,234``, ``48.8%``, ``1,234``, ``12 days``.

    ``unit`` is one of :data:`UNITS` (or a package unit such as ``%``, see :func:`unit_of`);
    ``decimals`` overrides the unit's default (count 0, money 0 from 1,000 else 2, rate 1,
    days 0, number 2). Missing values are ``–``. Separators and the currency follow the settings'
    locale (``1 234,50 €`` in ``fr_FR``).
    """
    unit = unit_of(unit)
    if _missing(value):
        return MISSING
    if unit == TEXT:
        return str(value)
    if unit == DATE:
        return _date(value)
    if unit == MONEY:
        return _settings().money(float(value), money_decimals(value) if decimals is None else decimals)
    if unit == RATE:
        from babel import Locale
        from babel.numbers import format_percent

        locale = _settings().locale
        pattern = with_decimals(Locale.parse(locale).percent_formats[None].pattern, 1 if decimals is None else decimals)
        return format_percent(float(value), format=pattern, locale=locale)
    if unit == DAYS:
        text = _number(float(value), decimals or 0)
        return f"{text} day" if float(value) == 1 else f"{text} days"
    if unit == COUNT:
        return _number(round(float(value), decimals or 0), decimals or 0)
    return _number(float(value), 2 if decimals is None else decimals)


def _date(value) -> str:
    """A date as ``3 Nov 2025`` (the settings' locale); a period label such as ``2025-11`` unchanged."""
    from babel.dates import format_date

    if isinstance(value, str):
        return value
    if isinstance(value, pd.Period):
        return str(value)
    if isinstance(value, (pd.Timestamp, datetime)):
        value = value.date()
    if isinstance(value, date):
        return format_date(value, format="medium", locale=_settings().locale)
    return str(value)


def header(name) -> str:
    """A column name as a header: ``revenue_share`` -> ``Revenue share``, ``customer_id`` -> ``Customer ID``."""
    name = str(name)
    if name in HEADERS:
        return HEADERS[name]
    words = [_ACRONYMS.get(w, w) for w in name.split("_") if w]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _infer_unit(series: pd.Series) -> str:
    """The unit of a column nobody declared: whole numbers are counts, dates dates, text text."""
    if pd.api.types.is_bool_dtype(series):
        return TEXT
    if pd.api.types.is_datetime64_any_dtype(series):
        return DATE
    if pd.api.types.is_integer_dtype(series):
        return COUNT
    if pd.api.types.is_numeric_dtype(series):
        values = series.dropna().to_numpy(dtype=float)
        return COUNT if values.size and np.all(np.isfinite(values)) and np.all(values == np.round(values)) else NUMBER
    return TEXT


def _formatter(series: pd.Series, unit: str, decimals: int | None):
    """A one-argument formatter for a whole column (money decimals chosen once for the column)."""
    if unit == MONEY and decimals is None:
        decimals = money_decimals(series) if series.notna().any() else 2
    if pd.api.types.is_bool_dtype(series):
        return lambda v: MISSING if _missing(v) else ("yes" if v else "no")
    if unit == DAYS:  # the header says days; each cell is just the number
        return lambda v: MISSING if _missing(v) else _number(float(v), decimals or 0)
    return lambda v: fmt(v, unit, decimals)


def table(df: pd.DataFrame, units: dict[str, str] | None = None, index=None, columns=None, names=None,
          caption: str | None = None, decimals=None):
    """A table as a reader sees it: each column in its unit, a readable index, readable headers.

    ``units`` maps column -> unit (:data:`UNITS` or a package unit, see :func:`unit_of`); an
    undeclared column is a count when all its numbers are whole, else a number (dates and text
    as such). ``index``: the column(s) that identify a row, shown as the index (a plain 0..n
    index is hidden); ``columns``: the columns shown, in order (default: all but
    :data:`INTERNAL_COLUMNS`); ``names``: header overrides (default :func:`header`);
    ``decimals``: one number for every column, or a column -> decimals mapping. Missing values
    are ``–``; long text wraps. Returns a pandas ``Styler``.
    """
    units = {k: unit_of(v) for k, v in (units or {}).items()}
    data = df.copy()
    index = [index] if isinstance(index, str) else list(index or [])
    if index:
        data = data.set_index(index)
    shown = list(columns) if columns is not None else [c for c in data.columns if c not in INTERNAL_COLUMNS
                                                         and not str(c).startswith("_")]
    data = data[shown]
    places = decimals if isinstance(decimals, dict) else dict.fromkeys(data.columns, decimals)
    formats, text = {}, []
    for col in data.columns:
        key = col[0] if isinstance(col, tuple) else col  # a pivot's columns: (measure, member)
        unit = units.get(col) or units.get(key) or _infer_unit(data[col])
        text += [col] if unit in (TEXT, DATE) else []
        block = pd.Series(data[key].to_numpy().ravel()) if isinstance(col, tuple) else data[col]
        formats[col] = _formatter(block if unit == MONEY else data[col], unit, places.get(col, places.get(key)))
    raw = not index and (isinstance(data.index, pd.RangeIndex) or (
        data.index.names == [None] and pd.api.types.is_integer_dtype(data.index) and data.index.is_unique))
    if not raw:
        data.index.names = [(names or {}).get(n, header(n)) if n is not None else None for n in data.index.names]
        units = {**units, **{header(k): v for k, v in units.items()}}
    data.columns.names = [header(n) if n is not None else None for n in data.columns.names]
    style = data.style.format(formats, na_rep=MISSING)
    if data.index.is_unique and data.columns.is_unique:  # Styler cannot style cells of a non-unique index
        style = style.set_properties(subset=text, **{"text-align": "left"})
    style = style.hide(axis="index") if raw else _format_index(style, data, units)
    if isinstance(data.columns, pd.MultiIndex):
        style = style.format_index(lambda c: (names or {}).get(c, header(c)), axis="columns")
    else:
        style = style.relabel_index([(names or {}).get(c, header(c)) for c in data.columns], axis="columns")
    if caption:
        style = style.set_caption(caption)
    # The table's HTML id from its content, not pandas' random one: the same data, the same page.
    key = f"{caption}\n{units}\n{names}\n{decimals}\n{text}\n{data.to_csv()}"
    style = style.set_uuid(hashlib.sha1(key.encode()).hexdigest()[:8])
    return style.set_table_styles(_TABLE_CSS, overwrite=False)


def _format_index(style, data: pd.DataFrame, units: dict[str, str]):
    """Format the index levels of a table that has a meaningful index (dates, money... as in the cells)."""
    idx = data.index
    for level, name in enumerate(idx.names):
        values = idx.get_level_values(level).to_series()
        unit = units.get(name) or (_infer_unit(values) if pd.api.types.is_numeric_dtype(values)
                                   or pd.api.types.is_datetime64_any_dtype(values) else TEXT)
        if unit != TEXT:
            style = style.format_index(_formatter(values, unit, None), axis="index", level=level, na_rep=MISSING)
    return style


_TABLE_CSS = [
    {"selector": "td", "props": "max-width: 22em; white-space: normal; overflow-wrap: break-word;"},
    {"selector": "th", "props": "max-width: 16em; white-space: normal; text-align: left;"},
    {"selector": "caption", "props": "caption-side: top; font-weight: bold; text-align: left;"},
]


def wrap(text: str, width: int = 40) -> str:
    """Long text broken into lines of ``width`` characters (for rules, reasons, labels)."""
    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def change(new, old, unit: str) -> str:
    """A movement in words: ``up 12.3% (from £1,200 to £1,348)``, ``down 2.1 points (from 48.8% to 46.7%)``.

    Rates move in percentage points, everything else by its relative change; equal values are
    ``unchanged``; without an earlier value, the sentence says so.
    """
    unit = unit_of(unit)
    if _missing(new):
        return "not available"
    if _missing(old):
        return f"{fmt(new, unit)} (no earlier value to compare)"
    new, old = float(new), float(old)
    if math.isclose(new, old, rel_tol=1e-9, abs_tol=1e-12):
        return "unchanged"
    word = "up" if new > old else "down"
    span = f"from {fmt(old, unit)} to {fmt(new, unit)}"
    if unit == RATE:
        points = _number(abs(new - old) * 100, 1)
        return f"{word} {points} percentage points ({span})"
    if old == 0:
        return f"{word} {span}"
    return f"{word} {fmt(abs(new / old - 1), RATE)} ({span})"


def span(first, last, unit: str = DATE) -> str:
    """Two dates in words: ``between 3 Nov 2025 and 5 Dec 2025``, or ``on 3 Nov 2025`` when they are the same day."""
    first_text, last_text = fmt(first, unit), fmt(last, unit)
    return f"on {first_text}" if first_text == last_text else f"between {first_text} and {last_text}"


def count_of(n, thing: str, things: str | None = None) -> str:
    """A count with its noun: ``1 customer``, ``1,234 customers`` (``things``: an irregular plural)."""
    return f"{fmt(n, COUNT)} {thing if n == 1 else things or thing + 's'}"
