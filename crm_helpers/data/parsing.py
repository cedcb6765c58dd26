"""Parsing: SQL turning the text of each record into typed staging values and each record's problems.

Nothing here touches a file: every function returns SQL over the temp tables that
:mod:`crm_helpers.data.reading` fills (``_rows``: one row per record, every used column as text).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from crm_helpers.data.sources import (KEYS, MONEY, PARSE_MSG, RULES, STAGING, V, YEARS, _lit,
                                      _q, is_required)

# --- parsing: SQL turning _rows into typed staging values and each record's problems ------------

def _parse_value(column: str, typ: str, spec: dict) -> str:
    """SQL parsing the text of ``column`` to ``typ``; NULL when it cannot."""
    t = f"trim({_q(column)})"
    if typ in ("INTEGER", MONEY):
        return _number_sql(t, typ, spec["decimal_separator"])
    if typ == "BOOLEAN":
        words = [", ".join(map(_lit, spec[k])) for k in ("true_values", "false_values")]
        return (f"CASE WHEN lower({t}) IN ({words[0]}) THEN true "
                f"WHEN lower({t}) IN ({words[1]}) THEN false END")
    fmt, day = _time_format(typ, spec)
    value = f"try_strptime({t}, {_lit(fmt)})" if fmt else f"TRY_CAST({t} AS TIMESTAMP)"
    if typ == "DATE":
        return f"CAST({value} AS DATE)"
    if fmt and "%z" in fmt.lower():  # the data carries its offset; the session zone is UTC
        return f"CAST({value} AS TIMESTAMP)"
    if spec["timezone"] == "UTC" or day:  # a date is a day, not midnight somewhere
        return value
    local = f"CAST(timezone({_lit(spec['timezone'])}, {value}) AS TIMESTAMP)"  # local -> UTC
    if fmt:
        return local
    return f"CASE WHEN regexp_full_match({t}, {_lit(ISO_DAY)}) THEN {value} ELSE {local} END"


ISO_DAY = "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"  # an ISO value without a time of day
TIME_DIRECTIVES = re.compile(r"%[HIklMSpfXcTRr]")


def _time_format(typ: str, spec: dict) -> tuple[str | None, bool]:
    """The strptime format of a DATE or TIMESTAMP column, and whether it reads days only.

    A TIMESTAMP column reads ``timestamp_format``; a source without one reads its timestamps
    with ``date_format`` (an order date without time). Values read without a time of day are
    days: they keep their date, with no time-zone shift.
    """
    if typ == "DATE":
        return spec["date_format"], True
    fmt = spec["timestamp_format"] or spec["date_format"]
    return fmt, bool(fmt) and not TIME_DIRECTIVES.search(fmt)


def _number_sql(t: str, typ: str, decimal_separator: str) -> str:
    """SQL parsing text to INTEGER or money; NULL when it is not a number.

    Strict (``TRY_CAST`` would round '2.5' to 3). With a decimal comma ('12,50'), groups of three
    digits may be separated by a dot or a space ('1.234,50', '1 234,50').
    """
    digits = "[0-9]+"
    if decimal_separator == ",":
        digits = "([0-9]{1,3}([. \u00a0\u202f][0-9]{3})+|[0-9]+)"
        t_num = f"replace(regexp_replace({t}, '[. \u00a0\u202f]', '', 'g'), ',', '.')"
    else:
        t_num = t
    sep = "[" + decimal_separator + "]"
    pattern = (f"[+-]?{digits}" if typ == "INTEGER"
               else f"[+-]?({digits}({sep}[0-9]*)?|{sep}[0-9]+)")
    return (f"CASE WHEN regexp_full_match({t}, {_lit(pattern)}) "
            f"THEN TRY_CAST({t_num} AS {typ}) END")


def _scope_sql(spec: dict) -> str:
    """Text (blank = NULL) and parsed values of each used column, then the names expressions see.

    An expression sees a column with its staging type when every direct mapping of that column
    agrees on one (so ``quantity * unit_price`` multiplies numbers), otherwise as text.
    """
    types: dict[str, set] = {}
    for table, fields in spec["tables"].items():
        for column, f in fields.items():
            if "column" in f:
                types.setdefault(f["column"], set()).add(STAGING[table][column][0])
    inner, outer = ['"§no"'], ["*"]
    for c in spec["used"]:
        typed = types.get(c, set())
        inner.append(f"CASE WHEN trim({_q(c)}) <> '' THEN {_q(c)} END AS {_q(c + '§txt')}")
        inner += [f"{_parse_value(c, t, spec)} AS {_q(f'{c}§{t}')}" for t in sorted(typed - {V})]
        visible = f"{c}§{min(typed)}" if len(typed) == 1 and typed != {V} else f"{c}§txt"
        outer.append(f"{_q(visible)} AS {_q(c)}")
    return f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM _rows)"


def _file_month_end(rel: str) -> date | None:
    """First day after the month in a file name like ``pos_2024-03.csv`` (None if no month)."""
    m = re.search(r"((?:19|20)\d\d)-(0[1-9]|1[0-2])", Path(rel).name)
    return date(int(m[1]) + int(m[2]) // 12, int(m[2]) % 12 + 1, 1) if m else None


def _field_sql(table: str, column: str, f: dict, spec: dict, month_end) -> dict:
    """SQL for one staging field: its value, its source text, and the checks it can fail."""
    typ, required = STAGING[table][column][0], is_required(table, column, f)
    x = _q(f"x§{table}§{column}")  # an expression's result, computed once in a lower layer
    v = _q(f"v§{table}§{column}")
    text = (_q(f["column"] + "§txt") if "column" in f else _lit(f["value"]) if "value" in f
            else f"CAST({x if 'expr' in f else v} AS VARCHAR)")
    value = (text if typ == V else _q(f"{f['column']}§{typ}")) if "column" in f else (
        f"CAST({text} AS {typ})" if "value" in f else f"TRY_CAST({x} AS {typ})" if "expr" in f
        else _derived_sql(table, column))
    parsed = typ != V and "derived" not in f
    checks = {"parse": f"{text} IS NOT NULL AND {v} IS NULL"} if parsed else {}
    if required:
        checks["derived" if "derived" in f else "missing"] = f"{v} IS NULL"
    if typ in ("DATE", "TIMESTAMP"):
        checks["range"] = f"year({v}) NOT BETWEEN {YEARS[0]} AND {YEARS[1]}"
        if month_end:  # the file's month is local time: its end in UTC for timestamps
            end = datetime(*month_end.timetuple()[:3], tzinfo=ZoneInfo(spec["timezone"]))
            end = (month_end if _time_format(typ, spec)[1]  # days: the month's end is a day
                   else end.astimezone(UTC).replace(tzinfo=None))
            checks["future"] = f"{v} >= {typ} '{end}'"
    return {"value": value, "text": text, "checks": checks}


def _derived_sql(table: str, column: str) -> str:
    """SQL deriving an unmapped column from the values of others (see ``DERIVED``)."""
    v = {c: _q(f"v§{table}§{c}") for c in STAGING[table]}
    return {
        "line_no": f'CAST(row_number() OVER (PARTITION BY {v["order_id"]} ORDER BY "§no") '
                   'AS INTEGER)',
        "sku": v["product_name"],
        "line_amount": f"CAST({v['quantity']} * {v['unit_price']} AS {MONEY})",
        "unit_price": f"CAST(round({v['line_amount']} / nullif({v['quantity']}, 0), 2) AS {MONEY})",
    }[column]


def _problem_sql(table: str, column: str, typ: str, field: dict, code: str, spec: dict,
                 month_end) -> tuple[str, str]:
    """SQL for the message (with the value) and the issue (without) of a field's problem."""
    shown = f"'''' || left({field['text']}, 100) || ''''"
    fmt = _time_format(typ, spec)[0] if typ in ("DATE", "TIMESTAMP") else None
    how = "" if typ not in ("DATE", "TIMESTAMP") else f" with {fmt}" if fmt else " as ISO"
    parse = PARSE_MSG.get(typ, "cannot parse")
    month = (month_end - timedelta(days=1)).strftime("%Y-%m") if month_end else ""
    derived_how = spec["tables"][table][column].get("derived")
    parts = {  # code: (message SQL, issue)
        "parse": (f"{_lit(f'{column}: {parse} ')} || {shown} || {_lit(how)}", parse + how),
        "missing": (_lit(f"{column}: missing required value"), "missing required value"),
        "derived": (_lit(f"{column}: cannot be derived ({derived_how})"), "cannot be derived"),
        "range": (f"{_lit(f'{column}: implausible date ')} || {shown} || "
                  f"{_lit(f' (outside {YEARS[0]}-{YEARS[1]})')}", "implausible date"),
        "future": (f"{_lit(f'{column}: ')} || {shown} || "
                   f"{_lit(f' is after the file month {month}')}", "after the file month")}
    msg = " ".join(f"WHEN '{k}' THEN {parts[k][0]}" for k in field["checks"])
    issue = " ".join(f"WHEN '{k}' THEN {_lit(f'{column}: {parts[k][1]}')}" for k in field["checks"])
    return f"CASE {code} {msg} END", f"CASE {code} {issue} END"


def _rule_sql(spec: dict) -> list[dict]:
    """SQL for the row rules (``RULES`` checks) that apply to a source's mapped tables.

    A rule applies when the source gives every column it names (mapped, not derived). Each
    returned rule has ``fails`` (true when a row breaks it: an unknown value breaks nothing),
    ``reason`` (the issue with the values, e.g. ``quantity=0``) and ``issue`` (without them).
    """
    out = []
    for table, fields in spec["tables"].items():
        for i, (holds, issue) in enumerate(RULES.get(table, {}).get("checks", [])):
            holds, issue = (x.replace("{amount_tolerance}", str(spec["amount_tolerance"]))
                            for x in (holds, issue))
            names = [c for c in STAGING[table] if re.search(rf"\b{c}\b", holds)]
            if not all(c in fields and "derived" not in fields[c] for c in names):
                continue
            v = {c: _q(f"v§{table}§{c}") for c in names}
            sql = re.sub(r"\b(" + "|".join(names) + r")\b", lambda m, v=v: v[m[1]], holds)
            shown = " || ', ' || ".join(f"{_lit(c + '=')} || coalesce(CAST({v[c]} AS VARCHAR), '')"
                                        for c in names)
            out.append({"code": _q(f"r§{table}§{i}"), "fails": f"({sql}) IS FALSE",
                        "reason": f"{_lit(issue + ' (')} || {shown} || ')'", "issue": _lit(issue)})
    return out


def _parse_sql(spec: dict, rel: str) -> str:
    """One SELECT over ``_scope``: stored values, record key, reasons and optional-value issues.

    Layers, inside out: expressions (each evaluated once); field values; derived values (of
    unmapped columns, from the others); problem codes (first failed check per field); the outer
    projection. Only checks a field can fail are emitted.
    """
    month_end = _file_month_end(rel)
    fields = {(t, c): _field_sql(t, c, f, spec, month_end)
              for t, fs in spec["tables"].items() for c, f in fs.items()}
    exprs = ["*"] + [f"({f['expr']}) AS {_q(f'x§{t}§{c}')}"
                     for t, fs in spec["tables"].items() for c, f in fs.items() if "expr" in f]
    values = ["*"] + [f"{s['value']} AS {_q(f'v§{t}§{c}')}" for (t, c), s in fields.items()
                      if "derived" not in spec["tables"][t][c]]
    derived = ["*"] + [f"{s['value']} AS {_q(f'v§{t}§{c}')}" for (t, c), s in fields.items()
                       if "derived" in spec["tables"][t][c]]
    codes = ["*"] + [f"CASE {' '.join(f'WHEN {w} THEN {_lit(k)}' for k, w in s['checks'].items())}"
                     f" END AS {_q(f'e§{t}§{c}')}" for (t, c), s in fields.items() if s["checks"]]
    rules = _rule_sql(spec)
    codes += [f"CASE WHEN {r['fails']} THEN 'rule' END AS {r['code']}" for r in rules]
    first = next(iter(spec["tables"]))
    key = " || ':' || ".join(f"coalesce({fields[first, k]['text']}, '')" for k in KEYS[first])
    problems = ", ".join([_q(f"e§{t}§{c}") for (t, c), s in fields.items() if s["checks"]]
                         + [r["code"] for r in rules])
    outer = ['"§no"', f"CASE WHEN coalesce({problems}) IS NOT NULL THEN {key} END AS \"§key\""]
    reasons, issues = [], []
    for (t, c), s in fields.items():
        typ, required = STAGING[t][c][0], is_required(t, c, spec["tables"][t][c])
        v, e = _q(f"v§{t}§{c}"), _q(f"e§{t}§{c}")
        outer.append(f"{f'CASE WHEN {e} IS NULL THEN {v} END' if s['checks'] else v} "
                     f"AS {_q(f'{t}§{c}')}")
        if not s["checks"]:
            continue
        msg, issue = _problem_sql(t, c, typ, s, e, spec, month_end)
        if required:
            reasons.append(msg)
            issues.append(issue)
        else:  # an optional value lost: the record loads, the value is NULL and reported
            outer.append(f"CASE WHEN {e} IS NOT NULL THEN {{'issue': {issue}, 'reason': {msg}}} "
                         f"END AS {_q(f'w§{t}§{c}')}")
    reasons += [f"CASE WHEN {r['code']} IS NOT NULL THEN {r['reason']} END" for r in rules]
    issues += [f"CASE WHEN {r['code']} IS NOT NULL THEN {r['issue']} END" for r in rules]
    outer += [f"concat_ws('; ', {', '.join(reasons)}) AS \"§reason\"",
              f"concat_ws('; ', {', '.join(issues)}) AS \"§issue\""]
    sql = "_scope"
    for layer in (exprs, values, derived, codes):
        sql = f"(SELECT {', '.join(layer)} FROM {sql})"
    return f"SELECT {', '.join(outer)} FROM {sql}"


