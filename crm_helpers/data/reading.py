"""Reading one file into DuckDB temp tables: ``_raw``/``_lines`` (physical lines), ``_rej``
(malformed lines), ``_rows`` (records, text) and ``_parsed`` (typed values and problems).

Every file-level problem raises :class:`~crm_helpers.data.sources.SourceError` naming the source,
the file and, where one is to blame, the column.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb

from crm_helpers.data.parsing import _parse_sql, _scope_sql
from crm_helpers.data.sources import DELIMITERS, RAW_DELIM, DeclarationError, SourceError, _lit, _q

# --- reading one file into temp tables: _raw/_lines, _rej (malformed lines), _rows (records) -----

def _stage(con, name: str, spec: dict, path: Path, rel: str) -> list[str] | None:
    """Read and parse one file into ``_parsed``; return the CSV header; raise file-level errors."""
    header = _csv_header(name, spec, path, rel) if spec["format"] == "csv" else None
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _raw AS SELECT raw FROM read_csv(?, "
                    "columns = {'raw': 'VARCHAR'}, delim = ?, quote = '', escape = '', "
                    "header = false, auto_detect = false, encoding = ?)",
                    [str(path), RAW_DELIM, spec["encoding"]])
    except duckdb.Error as err:
        if "unicode" in str(err).lower() or "encod" in str(err).lower():
            _raise_bad_bytes(name, spec, path, rel, header)
        raise SourceError(name, rel, None, f"cannot read: {str(err).splitlines()[0]}") from None
    # Every physical line is a row of _raw (empty lines are NULL), so line_no = rowid + 1.
    con.execute("CREATE OR REPLACE TEMP VIEW _lines AS SELECT rowid + 1 AS line_no, raw FROM _raw")
    if header is not None:
        _csv_rows(con, name, spec, path, rel, header)
    else:
        _jsonl_rows(con, name, spec, rel)
    con.execute(f"CREATE OR REPLACE TEMP VIEW _scope AS {_scope_sql(spec)}")
    for table, fields in spec["tables"].items():  # bind each expression alone to name its column
        for column, f in fields.items():
            if "expr" not in f:
                continue
            try:
                con.execute(f"SELECT ({f['expr']}) FROM _scope LIMIT 0")
            except duckdb.Error as err:
                raise DeclarationError(name, rel, column, f"invalid expression {f['expr']!r}: "
                                       f"{str(err).splitlines()[0]}") from None
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _parsed AS {_parse_sql(spec, rel)}")
    except duckdb.Error as err:  # e.g. a constant that is no valid value of its column
        raise DeclarationError(name, rel, None, f"cannot apply the mapping: "
                               f"{str(err).splitlines()[0]}") from None
    return header


def _csv_header(name: str, spec: dict, path: Path, rel: str) -> list[str]:
    """Column names from a CSV's first line; checks the delimiter and the required columns."""
    with open(path, "rb") as fh:
        first = fh.readline()
    if not first.strip():
        raise SourceError(name, rel, None, "empty file: no header line")
    try:
        text = first.decode(spec["encoding"]).lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError:
        _raise_bad_bytes(name, spec, path, rel, None)
    def split(delim):
        return [c.strip() for c in next(csv.reader([text], delimiter=delim))]
    header = split(spec["delimiter"])
    missing = [c for c in spec["used"] if c not in header]
    if missing:
        for other in DELIMITERS:
            if other != spec["delimiter"] and all(c in split(other) for c in spec["used"]):
                raise SourceError(name, rel, missing[0], f"wrong delimiter: declared "
                                  f"{spec['delimiter']!r} but the header splits on {other!r}")
        raise SourceError(name, rel, missing[0], f"missing required column {missing[0]!r} "
                          f"(header: {', '.join(header)})")
    header = [h or f"column{i}" for i, h in enumerate(header, 1)]
    lower = [h.lower() for h in header]  # DuckDB names are case-insensitive
    dupes = sorted({h for h in header if lower.count(h.lower()) > 1})
    if dupes:
        raise SourceError(name, rel, dupes[0], f"duplicate column {dupes[0]!r} in the header")
    return header


def _raise_bad_bytes(name, spec, path, rel, header):
    """Find the first undecodable line (and its column) in Python; runs on the error path only."""
    enc = spec["encoding"]
    with open(path, "rb") as fh:
        for line_no, line in enumerate(fh, 1):
            try:
                line.decode(enc)
                continue
            except UnicodeDecodeError as err:
                byte = line[err.start:err.start + 1].hex()
            text, column = line.decode(enc, "surrogateescape").rstrip("\r\n"), None
            if header and line_no > 1:
                values = next(csv.reader([text], delimiter=spec["delimiter"]), [])
                column = next((h for h, v in zip(header, values) if _bad(v)), None)
            elif spec["format"] == "jsonl":
                try:
                    record = json.loads(text)
                except ValueError:
                    record = None
                if isinstance(record, dict):
                    column = next((k for k, v in record.items() if _bad(f"{k}{v}")), None)
            raise SourceError(name, rel, column, f"undecodable bytes for encoding {enc} at line "
                              f"{line_no}{f' in column {column!r}' if column else ''} "
                              f"(byte 0x{byte})")
    raise SourceError(name, rel, None, f"undecodable bytes for encoding {enc}")


def _bad(text: str) -> bool:
    """Whether text decoded with surrogateescape holds undecodable bytes."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _csv_rows(con, name: str, spec: dict, path: Path, rel: str, header: list[str]) -> None:
    """Parse a CSV with DuckDB: malformed lines to ``_rej``, numbered records to ``_rows``."""
    columns = "{" + ", ".join(f"{_lit(h)}: 'VARCHAR'" for h in header) + "}"
    con.execute("DROP TABLE IF EXISTS _rejects")
    con.execute("DROP TABLE IF EXISTS _reject_scans")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _csv AS SELECT {', '.join(map(_q, spec['used']))} "
                f"FROM read_csv(?, columns = {columns}, delim = ?, quote = '\"', escape = '\"', "
                "header = true, auto_detect = false, encoding = ?, store_rejects = true, "
                "rejects_table = '_rejects', rejects_scan = '_reject_scans')",
                [str(path), spec["delimiter"], spec["encoding"]])
    con.execute(r"""CREATE OR REPLACE TEMP TABLE _rej AS
        SELECT line AS line_no, 'malformed line' AS issue, min(CASE
          WHEN regexp_matches(error_message, 'Expected Number of Columns: \d+ Found: \d+')
            THEN 'malformed line: expected ' || regexp_extract(error_message, 'Columns: (\d+)', 1)
                 || ' fields, found ' || regexp_extract(error_message, 'Found: (\d+)', 1)
          WHEN error_type::VARCHAR = 'UNQUOTED VALUE' THEN 'malformed line: unterminated quote'
          ELSE 'malformed line: ' || lower(error_type::VARCHAR) END) AS reason
        FROM _rejects GROUP BY line""")
    # Records come back in file order without line numbers: the k-th record is the k-th
    # non-empty data line that DuckDB did not reject. If the counts differ (a quoted value
    # spanning lines, an unterminated quote) that numbering is unsafe, so the file is refused.
    good = ("SELECT line_no, row_number() OVER (ORDER BY line_no) AS \"§k\" FROM _lines WHERE "
            "line_no > 1 AND raw IS NOT NULL AND line_no NOT IN (SELECT line_no FROM _rej)")
    n_good, n_csv, quote = con.execute(
        f"SELECT (SELECT count(*) FROM ({good})), (SELECT count(*) FROM _csv), "
        "(SELECT min(line_no) FROM _rej WHERE reason LIKE '%quote%')").fetchone()
    if n_good != n_csv:
        hint = (f"an unterminated quote at line {quote} swallows the lines after it" if quote
                else "quoted values spanning several lines are not supported")
        raise SourceError(name, rel, None, f"{n_good} data lines but the CSV reader found "
                          f"{n_csv} records: {hint}")
    cols = ", ".join(f"c.{_q(c)}" for c in spec["used"])
    con.execute(f"CREATE OR REPLACE TEMP TABLE _rows AS SELECT g.line_no AS \"§no\", {cols} "
                f"FROM (SELECT rowid + 1 AS \"§k\", * FROM _csv) c "
                f"JOIN ({good}) g USING (\"§k\")")


def _jsonl_rows(con, name: str, spec: dict, rel: str) -> None:
    """Validate JSON lines (invalid ones to ``_rej``) and extract the used keys into ``_rows``.

    A file in which no line is a JSON object (garbage, or another format) is rejected, as a CSV
    whose header lacks the declared columns is; a file with some good lines loads them.
    """
    con.execute("""CREATE OR REPLACE TEMP TABLE _rej AS SELECT line_no, 'malformed JSON' AS issue,
          CASE WHEN json_valid(raw) THEN 'malformed JSON: not an object' ELSE 'malformed JSON'
          END AS reason
        FROM _lines WHERE raw IS NOT NULL AND NOT (json_valid(raw) AND ltrim(raw) LIKE '{%')""")
    lines, bad = con.execute("SELECT (SELECT count(*) FROM _lines WHERE raw IS NOT NULL), "
                             "(SELECT count(*) FROM _rej)").fetchone()
    if lines and lines == bad:  # like a CSV without its header: not this format at all
        raise SourceError(name, rel, None, f"not JSON lines: none of its {lines} lines is a "
                          "JSON object")
    # One parse per line: json_transform pulls every used key as text (NULL if absent or null).
    shape = json.dumps({c: "VARCHAR" for c in spec["used"]})
    con.execute(f"CREATE OR REPLACE TEMP TABLE _rows AS SELECT line_no AS \"§no\", "
                f"unnest(json_transform(raw, {_lit(shape)})) FROM _lines WHERE raw IS NOT NULL "
                "AND line_no NOT IN (SELECT line_no FROM _rej)")
    counts = con.execute("SELECT count(*), " + ", ".join(
        f"count({_q(c)})" for c in spec["used"]) + " FROM _rows").fetchone()
    for column, n in zip(spec["used"], counts[1:]):
        if counts[0] and not n:  # no value anywhere: is the key missing from every record?
            path = _lit('$."' + column.replace('"', '\\"') + '"')
            if not con.execute(f"SELECT bool_or(json_exists(raw, {path})) FROM _lines WHERE "
                               "line_no IN (SELECT \"§no\" FROM _rows)").fetchone()[0]:
                raise SourceError(name, rel, column, f"missing required column {column!r}: "
                                  "no record in the file has this key")


