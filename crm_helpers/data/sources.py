"""Source declarations: the staging schema and the ``sources.yml`` that maps each system's files onto it.

``STAGING`` declares every staging table once (column -> type, required). A source declaration
says where a system's files are (globs under ``raw/``), how they are written (format, delimiter,
encoding, decimal separator, boolean words, date conventions, time zone, country) and which of
their columns feeds which staging column. :func:`load_sources` validates a declarations file and
raises :class:`SourceError` naming the source, the file and the column of the first problem.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from zoneinfo import available_timezones

import pandas as pd

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
    doc = config.read_yaml(path)
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


