"""Collect: load the raw exports declared in ``sources.yml`` into canonical staging tables.

Each file is read and parsed by DuckDB in a few set-based statements (no Python row loops) and
lands in the warehouse in one transaction per file:

- ``stg_<table>`` (schema in ``STAGING``): one row per loaded record and target table, with
  ``source``, ``file`` (relative to ``raw/``) and ``record_no``: the record's physical line in
  the file (a CSV header is line 1, so its first record is 2), to find it with any editor.
- ``quarantine``: records that cannot be loaded: a malformed CSV line or JSON line, or a
  required field missing, unparseable or implausible. ``reason`` names every problem with its
  value, ``issue`` is the same without values (for counting), ``raw_record`` is the line as read.
- ``value_issue``: optional typed values that could not be parsed (or were implausible dates)
  and were loaded as NULL; their record is loaded. Summarised by ``data_quality``.
- ``load_audit``: one row per file; ``rows_read`` (non-empty data lines, counted apart from the
  parser) = ``rows_loaded`` + ``rows_quarantined``.

Decisions where the contract is silent: a record feeding several tables (a web order line also
describes a customer) is loaded into all of them or quarantined whole, so the audit counts
records. Dates outside ``YEARS``, or after the month in a file name like ``pos_2024-03.csv``, are
implausible. A file is skipped when its name, content and source declaration are unchanged;
otherwise its earlier rows are replaced. Rows of files no longer in ``raw/`` are kept. A CSV
whose quoted values span lines is refused (its records could not be numbered by line).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import warnings
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones
from pathlib import Path

import duckdb
import pandas as pd
import yaml
from tqdm.auto import tqdm

from crm_helpers import config

MONEY = "DECIMAL(12,2)"
V, R = "VARCHAR", True  # R marks a required column: missing or unparseable -> quarantine
# The staging schema, declared once: table -> column -> (type, required).
STAGING: dict[str, dict[str, tuple[str, bool]]] = {
    "customer": {
        "source_record_id": (V, R), "first_name": (V, False), "last_name": (V, False),
        "full_name": (V, False), "email": (V, False), "phone": (V, False), "street": (V, False),
        "postcode": (V, False), "city": (V, False), "birth_date": ("DATE", False),
        "signup_ts": ("TIMESTAMP", False), "signup_channel": (V, False),
        "loyalty_card": (V, False), "email_opt_in": ("BOOLEAN", False),
        "sms_opt_in": ("BOOLEAN", False), "do_not_contact": ("BOOLEAN", False)},
    "order_line": {
        "order_id": (V, R), "line_no": ("INTEGER", R), "order_ts": ("TIMESTAMP", R),
        "customer_ref": (V, False), "store_id": (V, False), "channel": (V, R), "sku": (V, R),
        "quantity": ("INTEGER", R), "unit_price": (MONEY, R), "line_amount": (MONEY, False)},
    "product": {
        "sku": (V, R), "product_name": (V, False), "category": (V, R), "tier": (V, False),
        "list_price": (MONEY, False), "unit_cost": (MONEY, False)},
    "store": {"store_id": (V, R), "store_name": (V, False), "region": (V, False),
              "channel": (V, False)},
    "interaction": {
        "interaction_id": (V, R), "interaction_ts": ("TIMESTAMP", R), "customer_ref": (V, False),
        "channel": (V, False), "reason_code": (V, False), "outcome": (V, False)},
    "campaign": {
        "campaign_id": (V, R), "campaign_name": (V, False), "channel": (V, False),
        "start_date": ("DATE", False), "end_date": ("DATE", False), "offer": (V, False)},
    "campaign_contact": {
        "campaign_id": (V, R), "customer_ref": (V, R), "contact_date": ("DATE", R),
        "channel": (V, False), "treatment_group": (V, R)},
    "campaign_response": {
        "campaign_id": (V, R), "customer_ref": (V, R), "response_date": ("DATE", R),
        "response_type": (V, False), "order_id": (V, False), "response_value": (MONEY, False)},
}
STAGING_TABLES = [f"stg_{t}" for t in STAGING]
# What identifies a record in quarantine.record_key (the source's first table; joined by ':').
KEYS = {"customer": ["source_record_id"], "order_line": ["order_id", "line_no"],
        "product": ["sku"], "store": ["store_id"], "interaction": ["interaction_id"],
        "campaign": ["campaign_id"], "campaign_contact": ["campaign_id", "customer_ref"],
        "campaign_response": ["campaign_id", "customer_ref", "response_date"]}
META = "source VARCHAR NOT NULL, file VARCHAR NOT NULL, record_no BIGINT NOT NULL"
OTHER_TABLES = {
    "quarantine": "source VARCHAR, file VARCHAR, record_no BIGINT, record_key VARCHAR, "
                  "reason VARCHAR, raw_record VARCHAR, loaded_at TIMESTAMP, issue VARCHAR",
    "value_issue": "source VARCHAR, file VARCHAR, record_no BIGINT, record_key VARCHAR, "
                   "table_name VARCHAR, column_name VARCHAR, issue VARCHAR, reason VARCHAR, "
                   "loaded_at TIMESTAMP",
    "load_audit": "source VARCHAR, file VARCHAR, fingerprint VARCHAR, rows_read BIGINT, "
                  "rows_loaded BIGINT, rows_quarantined BIGINT, loaded_at TIMESTAMP, "
                  "values_nulled BIGINT, spec_hash VARCHAR",
}
AUDIT_COLUMNS = ["source", "file", "fingerprint", "rows_read", "rows_loaded", "rows_quarantined",
                 "loaded_at", "values_nulled", "spec_hash"]
YEARS = (1900, 2030)  # dates outside these years are typos, not data
ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "latin-1": "latin-1", "latin1": "latin-1",
             "iso-8859-1": "latin-1"}
DELIMITERS = [",", ";", "\t", "|"]
RAW_DELIM = "\x01\x02\x03\x04"  # never in text, so each physical line is read as one value
PARSE_MSG = {"INTEGER": "not an integer", MONEY: "not a number", "BOOLEAN": "not a boolean"}


class SourceError(Exception):
    """A file-level problem with a declared source: names the source, the file and the column."""

    def __init__(self, source, file, column, message):
        super().__init__(source, file, column, message)
        self.source, self.file, self.column, self.message = source, str(file), column, message

    def __str__(self):
        where = f", column {self.column!r}" if self.column else ""
        return f"source {self.source!r}, file {self.file!r}{where}: {self.message}"


def _q(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _lit(value) -> str:
    """Quote an SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


# --- declarations -------------------------------------------------------------------------------

def load_sources(path) -> dict:
    """Parse and validate a sources file; return ``{source name: normalised declaration}``.

    Fields become ``{"column": c}``, ``{"value": v}`` or ``{"expr": e, "uses": [...]}``; ``used``
    lists the source columns every file must have. Raises ``SourceError`` (file = the sources
    file) for unknown tables or columns, unmapped required columns and bad options.
    """
    path = Path(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(doc.get("sources"), dict):
        raise SourceError("-", path.name, None, "expected a top-level 'sources:' mapping")
    return {name: _validate_source(name, spec or {}, path.name)
            for name, spec in doc["sources"].items()}


def _validate_source(name: str, spec: dict, where: str) -> dict:
    """Check one source declaration and return it normalised."""
    def fail(column, message):
        raise SourceError(name, where, column, message)
    files = spec.get("files")
    out = {"files": [files] if isinstance(files, str) else files,
           "format": str(spec.get("format", "csv")).lower(),
           "delimiter": spec.get("delimiter", ","),
           "encoding": ENCODINGS.get(str(spec.get("encoding", "utf-8")).lower()),
           "date_format": spec.get("date_format"), "timestamp_format": spec.get("timestamp_format"),
           "timezone": spec.get("timezone", "UTC"), "tables": {}}
    if not out["files"] or not all(isinstance(f, str) for f in out["files"]):
        fail("files", "'files' must be a glob (or list of globs) relative to raw/")
    if out["format"] not in ("csv", "jsonl"):
        fail("format", f"unknown format {out['format']!r} (csv or jsonl)")
    if out["encoding"] is None:
        fail("encoding", f"unsupported encoding {spec.get('encoding')!r} (utf-8 or latin-1)")
    if out["format"] == "csv" and not (isinstance(out["delimiter"], str)
                                       and len(out["delimiter"]) == 1):
        fail("delimiter", "the delimiter must be one character")
    if out["timezone"] not in available_timezones():
        fail("timezone", f"unknown time zone {out['timezone']!r}")
    if not isinstance(spec.get("tables"), dict) or not spec["tables"]:
        fail("tables", "no staging tables mapped")
    for table, mapping in spec["tables"].items():
        table = table.removeprefix("stg_")
        if table not in STAGING:
            fail(table, f"unknown staging table {table!r} (known: {', '.join(STAGING)})")
        fields = {}
        for column, value in (mapping or {}).items():
            if column not in STAGING[table]:
                fail(column, f"unknown staging column {column!r} in table {table!r} "
                             f"(known: {', '.join(STAGING[table])})")
            fields[column] = _field(value, lambda m, c=column: fail(c, m))
        unmapped = [c for c, (_, req) in STAGING[table].items() if req and c not in fields]
        if unmapped:
            fail(unmapped[0], f"required staging column {unmapped[0]!r} of {table!r} is not mapped")
        out["tables"][table] = fields
    fields = [f for t in out["tables"].values() for f in t.values()]
    out["used"] = list(dict.fromkeys([f["column"] for f in fields if "column" in f]
                                     + [u for f in fields for u in f.get("uses", [])]))
    # A changed declaration (not a changed description) reloads the source's files.
    out["hash"] = hashlib.sha256(json.dumps(out, sort_keys=True, default=str).encode()).hexdigest()
    out["description"] = spec.get("description", "")
    return out


def _field(value, fail) -> dict:
    """Normalise one mapping value (column name, {value: ...} or {expr: ..., uses: [...]})."""
    if isinstance(value, str) and value:
        return {"column": value}
    if isinstance(value, dict) and set(value) == {"value"}:
        return {"value": value["value"]}
    if isinstance(value, dict) and "expr" in value and set(value) <= {"expr", "uses"}:
        uses = value.get("uses") or []
        if not isinstance(uses, list) or not all(isinstance(u, str) for u in uses):
            fail("'uses' must be a list of source column names")
        return {"expr": str(value["expr"]), "uses": uses}
    return fail(f"a mapping is a column name, {{value: ...}} or {{expr: ..., uses: [...]}}, "
                f"not {value!r}")


def describe_sources(sources: dict) -> pd.DataFrame:
    """One row per declared source: where its files are, how they are written, what they feed."""
    return pd.DataFrame([{
        "source": name, "description": s["description"], "files": ", ".join(s["files"]),
        "format": s["format"], "delimiter": s["delimiter"] if s["format"] == "csv" else "",
        "encoding": s["encoding"], "timezone": s["timezone"],
        "tables": ", ".join(f"stg_{t}" for t in s["tables"])} for name, s in sources.items()])


# --- collect ------------------------------------------------------------------------------------

def collect(data_dir: Path, warehouse: Path, sources_file: Path | None = None,
            progress: bool = True) -> pd.DataFrame:
    """Load every file of every declared source into the warehouse; return this run's audit rows.

    ``sources_file`` defaults to ``<data_dir>/sources.yml`` (else the packaged sample
    declarations). ``status`` is ``loaded`` (new file), ``replaced`` (known name, new content or
    declaration) or ``skipped``. Raises ``SourceError`` at the first file-level problem; the
    files loaded before it stay loaded, that file changes nothing.
    """
    data_dir = Path(data_dir)
    if sources_file is None:
        sources_file = config.sources_yml(data_dir)
        if not sources_file.exists():
            warnings.warn(f"no {sources_file}: using the sample world's declarations "
                          f"({config.SAMPLE_SOURCES_YML.name}); write your own for your data", stacklevel=2)
            sources_file = config.SAMPLE_SOURCES_YML
    sources = load_sources(sources_file)
    raw = config.raw_dir(data_dir)
    jobs = [(name, spec, path)
            for name, spec in sources.items() for path in _files(name, spec, raw)]
    Path(warehouse).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse), config={"memory_limit": config.memory_limit()})
    try:
        _prepare(con)
        rows = []
        bar = tqdm(jobs, desc="collect", unit="file", disable=not progress)
        for name, spec, path in bar:
            rel = path.relative_to(raw).as_posix()
            bar.set_postfix_str(rel, refresh=False)
            rows.append(_collect_file(con, name, spec, path, rel))
    finally:
        try:
            con.execute("RESET checkpoint_threshold")
            con.execute("CHECKPOINT")
        except duckdb.Error:  # another connection is busy: it checkpoints later
            pass
        con.close()
    return pd.DataFrame(rows, columns=[*AUDIT_COLUMNS, "status"])


def _files(name: str, spec: dict, raw: Path) -> list[Path]:
    """The files matching a source's globs; none at all is a file-level error."""
    found = sorted({p for pattern in spec["files"] for p in raw.glob(pattern) if p.is_file()})
    if not found:
        pattern = " or ".join(spec["files"])
        raise SourceError(name, pattern, None, f"no file matches {pattern!r} under {raw}")
    return found


def _prepare(con) -> None:
    """Session settings and warehouse tables (created if missing)."""
    con.execute("SET TimeZone = 'UTC'")  # so TIMESTAMPTZ -> TIMESTAMP casts give naive UTC
    con.execute("SET preserve_insertion_order = true")  # temp-table rowid = order in the file
    try:  # collect shows its own bar, per file (in Jupyter DuckDB may refuse the setting)
        con.execute("SET enable_progress_bar = false")
    except duckdb.Error:
        pass
    con.execute("SET checkpoint_threshold = '1GB'")  # one checkpoint at the end, not per file
    for table, columns in STAGING.items():
        cols = ", ".join(f"{c} {t}{' NOT NULL' if req else ''}" for c, (t, req) in columns.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS stg_{table} ({META}, {cols})")
    for table, cols in OTHER_TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")


def _collect_file(con, name: str, spec: dict, path: Path, rel: str) -> dict:
    """Load one file unless already loaded as is; replace a known file's earlier rows."""
    with open(path, "rb") as fh:
        fingerprint = hashlib.file_digest(fh, "sha256").hexdigest()  # streamed
    known = con.execute(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM load_audit "
                        "WHERE source = ? AND file = ?", [name, rel]).fetchone()
    if known and known[2] == fingerprint and known[-1] == spec["hash"]:
        return dict(zip(AUDIT_COLUMNS, known), status="skipped")
    header = _stage(con, name, spec, path, rel)  # temp tables only: nothing to undo on error
    audit = dict(source=name, file=rel, fingerprint=fingerprint, spec_hash=spec["hash"],
                 loaded_at=datetime.now(UTC).replace(tzinfo=None))
    con.execute("BEGIN TRANSACTION")
    try:
        if known:  # same name, new content or declaration: drop its earlier rows everywhere
            for table in [*STAGING_TABLES, *OTHER_TABLES]:
                con.execute(f"DELETE FROM {table} WHERE source = ? AND file = ?", [name, rel])
        audit.update(_write(con, name, spec, rel, header, audit["loaded_at"]))
        if audit["rows_read"] != audit["rows_loaded"] + audit["rows_quarantined"]:
            raise SourceError(name, rel, None, f"does not balance: {audit}")
        con.execute(f"INSERT INTO load_audit ({', '.join(AUDIT_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(AUDIT_COLUMNS))})",
                    [audit[c] for c in AUDIT_COLUMNS])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return dict(audit, status="replaced" if known else "loaded")


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
                raise SourceError(name, rel, column, f"invalid expression {f['expr']!r}: "
                                  f"{str(err).splitlines()[0]}") from None
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _parsed AS {_parse_sql(spec, rel)}")
    except duckdb.Error as err:  # e.g. a constant that is no valid value of its column
        raise SourceError(name, rel, None, f"cannot apply the mapping: "
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
    """Validate JSON lines (invalid ones to ``_rej``) and extract the used keys into ``_rows``."""
    con.execute("""CREATE OR REPLACE TEMP TABLE _rej AS SELECT line_no, 'malformed JSON' AS issue,
          CASE WHEN json_valid(raw) THEN 'malformed JSON: not an object' ELSE 'malformed JSON'
          END AS reason
        FROM _lines WHERE raw IS NOT NULL AND NOT (json_valid(raw) AND ltrim(raw) LIKE '{%')""")
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


# --- parsing: SQL turning _rows into typed staging values and each record's problems ------------

def _parse_value(column: str, typ: str, spec: dict) -> str:
    """SQL parsing the text of ``column`` to ``typ``; NULL when it cannot."""
    t = f"trim({_q(column)})"
    if typ == "INTEGER":  # strict: TRY_CAST would round '2.5' to 3
        return f"CASE WHEN regexp_full_match({t}, '[+-]?[0-9]+') THEN TRY_CAST({t} AS INTEGER) END"
    if typ == MONEY:
        return (f"CASE WHEN regexp_full_match({t}, '[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)') "
                f"THEN TRY_CAST({t} AS {MONEY}) END")
    if typ == "BOOLEAN":
        return (f"CASE WHEN lower({t}) IN ('y', 'yes', 'true', '1') THEN true "
                f"WHEN lower({t}) IN ('n', 'no', 'false', '0') THEN false END")
    fmt = spec["date_format"] if typ == "DATE" else spec["timestamp_format"]
    value = f"try_strptime({t}, {_lit(fmt)})" if fmt else f"TRY_CAST({t} AS TIMESTAMP)"
    if typ == "DATE":
        return f"CAST({value} AS DATE)"
    if fmt and "%z" in fmt.lower():  # the data carries its offset; the session zone is UTC
        return f"CAST({value} AS TIMESTAMP)"
    if spec["timezone"] != "UTC":  # local wall-clock time -> UTC
        return f"CAST(timezone({_lit(spec['timezone'])}, {value}) AS TIMESTAMP)"
    return value


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
    typ, required = STAGING[table][column]
    x = _q(f"x§{table}§{column}")  # an expression's result, computed once in a lower layer
    text = (_q(f["column"] + "§txt") if "column" in f else _lit(f["value"]) if "value" in f
            else f"CAST({x} AS VARCHAR)")
    value = (text if typ == V else _q(f"{f['column']}§{typ}")) if "column" in f else (
        f"CAST({text} AS {typ})" if "value" in f else f"TRY_CAST({x} AS {typ})")
    v = _q(f"v§{table}§{column}")
    checks = {"parse": f"{text} IS NOT NULL AND {v} IS NULL"} if typ != V else {}
    if required:
        checks["missing"] = f"{v} IS NULL"
    if typ in ("DATE", "TIMESTAMP"):
        checks["range"] = f"year({v}) NOT BETWEEN {YEARS[0]} AND {YEARS[1]}"
        if month_end:  # the file's month is local time: its end in UTC for timestamps
            end = datetime(*month_end.timetuple()[:3], tzinfo=ZoneInfo(spec["timezone"]))
            end = month_end if typ == "DATE" else end.astimezone(UTC).replace(tzinfo=None)
            checks["future"] = f"{v} >= {typ} '{end}'"
    return {"value": value, "text": text, "checks": checks}


def _problem_sql(column: str, typ: str, field: dict, code: str, spec: dict,
                 month_end) -> tuple[str, str]:
    """SQL for the message (with the value) and the issue (without) of a field's problem."""
    shown = f"'''' || left({field['text']}, 100) || ''''"
    fmt = spec["date_format"] if typ == "DATE" else spec["timestamp_format"]
    how = "" if typ not in ("DATE", "TIMESTAMP") else f" with {fmt}" if fmt else " as ISO"
    parse = PARSE_MSG.get(typ, "cannot parse")
    month = (month_end - timedelta(days=1)).strftime("%Y-%m") if month_end else ""
    parts = {  # code: (message SQL, issue)
        "parse": (f"{_lit(f'{column}: {parse} ')} || {shown} || {_lit(how)}", parse + how),
        "missing": (_lit(f"{column}: missing required value"), "missing required value"),
        "range": (f"{_lit(f'{column}: implausible date ')} || {shown} || "
                  f"{_lit(f' (outside {YEARS[0]}-{YEARS[1]})')}", "implausible date"),
        "future": (f"{_lit(f'{column}: ')} || {shown} || "
                   f"{_lit(f' is after the file month {month}')}", "after the file month")}
    msg = " ".join(f"WHEN '{k}' THEN {parts[k][0]}" for k in field["checks"])
    issue = " ".join(f"WHEN '{k}' THEN {_lit(f'{column}: {parts[k][1]}')}" for k in field["checks"])
    return f"CASE {code} {msg} END", f"CASE {code} {issue} END"


def _parse_sql(spec: dict, rel: str) -> str:
    """One SELECT over ``_scope``: stored values, record key, reasons and optional-value issues.

    Layers, inside out: expressions (each evaluated once); field values; problem codes (first
    failed check per field); the outer projection. Only checks a field can fail are emitted.
    """
    month_end = _file_month_end(rel)
    fields = {(t, c): _field_sql(t, c, f, spec, month_end)
              for t, fs in spec["tables"].items() for c, f in fs.items()}
    exprs = ["*"] + [f"({f['expr']}) AS {_q(f'x§{t}§{c}')}"
                     for t, fs in spec["tables"].items() for c, f in fs.items() if "expr" in f]
    values = ["*"] + [f"{s['value']} AS {_q(f'v§{t}§{c}')}" for (t, c), s in fields.items()]
    codes = ["*"] + [f"CASE {' '.join(f'WHEN {w} THEN {_lit(k)}' for k, w in s['checks'].items())}"
                     f" END AS {_q(f'e§{t}§{c}')}" for (t, c), s in fields.items() if s["checks"]]
    first = next(iter(spec["tables"]))
    key = " || ':' || ".join(f"coalesce({fields[first, k]['text']}, '')" for k in KEYS[first])
    problems = ", ".join(_q(f"e§{t}§{c}") for (t, c), s in fields.items() if s["checks"])
    outer = ['"§no"', f"CASE WHEN coalesce({problems}) IS NOT NULL THEN {key} END AS \"§key\""]
    reasons, issues = [], []
    for (t, c), s in fields.items():
        typ, required = STAGING[t][c]
        v, e = _q(f"v§{t}§{c}"), _q(f"e§{t}§{c}")
        outer.append(f"{f'CASE WHEN {e} IS NULL THEN {v} END' if s['checks'] else v} "
                     f"AS {_q(f'{t}§{c}')}")
        if not s["checks"]:
            continue
        msg, issue = _problem_sql(c, typ, s, e, spec, month_end)
        if required:
            reasons.append(msg)
            issues.append(issue)
        else:  # an optional value lost: the record loads, the value is NULL and reported
            outer.append(f"CASE WHEN {e} IS NOT NULL THEN {{'issue': {issue}, 'reason': {msg}}} "
                         f"END AS {_q(f'w§{t}§{c}')}")
    outer += [f"concat_ws('; ', {', '.join(reasons)}) AS \"§reason\"",
              f"concat_ws('; ', {', '.join(issues)}) AS \"§issue\""]
    sql = "_scope"
    for layer in (exprs, values, codes):
        sql = f"(SELECT {', '.join(layer)} FROM {sql})"
    return f"SELECT {', '.join(outer)} FROM {sql}"


# --- writing (inside the file's transaction) ----------------------------------------------------

def _write(con, name: str, spec: dict, rel: str, header, loaded_at: datetime) -> dict:
    """Insert staging rows, quarantine and value issues from the temp tables; return counts."""
    def insert(sql, *params):  # DuckDB answers an INSERT with the number of rows inserted
        return con.execute(sql, [name, rel, *params]).fetchone()[0]
    loaded = {insert(f"INSERT INTO stg_{t} (source, file, record_no, {', '.join(fields)}) "
                     f"SELECT ?, ?, \"§no\", {', '.join(_q(f'{t}§{c}') for c in fields)} "
                     "FROM _parsed WHERE \"§reason\" = ''")
              for t, fields in spec["tables"].items()}
    read, rejected, bad = con.execute(
        "SELECT (SELECT count(*) FROM _lines WHERE raw IS NOT NULL AND line_no > ?), "
        "(SELECT count(*) FROM _rej), (SELECT count(*) FROM _parsed WHERE \"§reason\" <> '')",
        [int(header is not None)]).fetchone()
    columns = "(source, file, record_no, record_key, reason, issue, raw_record, loaded_at)"
    quarantined = rejected and insert(
        f"INSERT INTO quarantine {columns} SELECT ?, ?, r.line_no, {_rejected_key(spec, header)},"
        " r.reason, r.issue, l.raw, ? FROM _rej r JOIN _lines l USING (line_no)", loaded_at)
    quarantined += bad and insert(
        f"INSERT INTO quarantine {columns} SELECT ?, ?, p.\"§no\", p.\"§key\", p.\"§reason\", "
        "p.\"§issue\", l.raw, ? FROM (SELECT * FROM _parsed WHERE \"§reason\" <> '') p "
        "JOIN _lines l ON l.line_no = p.\"§no\"", loaded_at)
    optional = [(t, c) for t, fields in spec["tables"].items() for c in fields
                if STAGING[t][c][0] != V and not STAGING[t][c][1]]
    warns = [f"SELECT \"§no\" AS n, \"§key\" AS k, {_lit(t)} AS t, {_lit(c)} AS c, "
             f"{_q(f'w§{t}§{c}')} AS w FROM _parsed "
             f"WHERE \"§reason\" = '' AND {_q(f'w§{t}§{c}')} IS NOT NULL" for t, c in optional]
    nulled = warns and insert("INSERT INTO value_issue SELECT ?, ?, n, k, t, c, w.issue, "
                              f"w.reason, ? FROM ({' UNION ALL '.join(warns)})", loaded_at)
    if len(loaded) != 1:  # whole records: every target table gets the same ones
        raise SourceError(name, rel, None, f"tables received different row counts: {loaded}")
    return dict(rows_read=read, rows_loaded=loaded.pop(), rows_quarantined=quarantined,
                values_nulled=nulled or 0)


def _rejected_key(spec: dict, header) -> str:
    """SQL for a best-effort record key of a malformed line, cut from its raw text."""
    first = next(iter(spec["tables"]))
    fields = [spec["tables"][first][k] for k in KEYS[first]]
    if not all("column" in f for f in fields):
        return "NULL"
    if header is None:  # JSON: the value after the key's name
        parts = [f"regexp_extract(l.raw, {_lit(re.escape(json.dumps(f['column'])))} "
                 r"|| '\s*:\s*\"?([^\",}]*)', 1)" for f in fields]
    else:  # CSV: the field at the column's position (quotes ignored)
        parts = [f"trim(split_part(l.raw, {_lit(spec['delimiter'])}, "
                 f"{header.index(f['column']) + 1}), '\" ')" for f in fields]
    joined = " || ':' || ".join(parts)
    return f"nullif({joined}, {_lit(':' * (len(parts) - 1))})"


# --- reports for the notebook -------------------------------------------------------------------

def _frame(con_or_path, sql: str) -> pd.DataFrame:
    """Run a query on a warehouse path, a DuckDB connection or an Ibis DuckDB backend."""
    if isinstance(con_or_path, (str, Path)):
        with duckdb.connect(str(con_or_path), read_only=True,
                            config={"memory_limit": config.memory_limit()}) as con:
            return con.execute(sql).df()
    return getattr(con_or_path, "con", con_or_path).execute(sql).df()


def reconciliation(con_or_path) -> pd.DataFrame:
    """Per source and file: rows read (audit) vs records actually in staging and quarantine."""
    staged = " UNION ALL ".join(f"SELECT source, file, record_no FROM {t}" for t in STAGING_TABLES)
    return _frame(con_or_path, f"""
        WITH s AS (SELECT source, file, count(*) AS n FROM (SELECT DISTINCT * FROM ({staged}))
                   GROUP BY ALL),
             q AS (SELECT source, file, count(DISTINCT record_no) AS n FROM quarantine GROUP BY ALL)
        SELECT a.source, a.file, a.rows_read, coalesce(s.n, 0) AS rows_loaded,
               coalesce(q.n, 0) AS rows_quarantined,
               a.rows_read = coalesce(s.n, 0) + coalesce(q.n, 0)
                 AND a.rows_loaded = coalesce(s.n, 0) AND a.rows_quarantined = coalesce(q.n, 0)
                 AS balanced
        FROM load_audit a LEFT JOIN s USING (source, file) LEFT JOIN q USING (source, file)
        ORDER BY a.source, a.file""")


def quarantine_summary(con_or_path) -> pd.DataFrame:
    """Quarantined records by source and reason (without values), with one full example."""
    return _frame(con_or_path, """
        SELECT source, issue AS reason, count(*) AS rows, count(DISTINCT file) AS files,
               min(reason) AS example
        FROM quarantine GROUP BY source, issue ORDER BY source, rows DESC, issue""")


def data_quality(con_or_path) -> pd.DataFrame:
    """Optional values loaded as NULL because they could not be parsed, by source and column."""
    return _frame(con_or_path, """
        SELECT source, table_name, column_name, issue, count(*) AS values_nulled,
               min(reason) AS example
        FROM value_issue GROUP BY ALL ORDER BY source, values_nulled DESC""")
