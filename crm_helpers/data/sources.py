"""Source declarations: the staging schema and the ``sources.yml`` that maps each system's files onto it.

``STAGING`` declares every staging table once (column -> type, required). A source declaration
says where a system's files are (globs under ``raw/``), how they are written (format, delimiter,
encoding, decimal separator, boolean words, date conventions, time zone, country), what role it
plays (``role: customer_master``, survivorship ``priority``) and which of its columns feeds
which staging column. :func:`load_declarations` reads the ``settings:`` block and the
``sources:``; it raises :class:`SourceError` naming the source, the file and the key or column
of the first problem.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from zoneinfo import available_timezones

import pandas as pd

from crm_helpers import config

MONEY = "DECIMAL(12,2)"
V, R = "VARCHAR", True  # R: a loaded row has a value (missing or unparseable -> quarantine)
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
        "product_name": (V, False), "quantity": ("INTEGER", R), "unit_price": (MONEY, R),
        "line_amount": (MONEY, False)},
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
        "start_date": ("DATE", False), "end_date": ("DATE", False), "offer": (V, False),
        "offer_type": (V, False)},
    "campaign_contact": {
        "campaign_id": (V, R), "customer_ref": (V, R), "contact_date": ("DATE", R),
        "channel": (V, False), "treatment_group": (V, R)},
    "campaign_response": {
        "campaign_id": (V, R), "customer_ref": (V, R), "response_date": ("DATE", R),
        "response_type": (V, False), "order_id": (V, False), "response_value": (MONEY, False)},
}
STAGING_TABLES = [f"stg_{t}" for t in STAGING]
# Columns a source may leave unmapped because they follow from others (a till always has the
# order, the time, the product or its description, the quantity and the amount):
# table -> column -> (the mapped columns it needs, how it is derived).
DERIVED: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "order_line": {
        "line_no": (("order_id",), "position of the line within its order in the file"),
        "sku": (("product_name",), "product_name (the description is the product key)"),
        "line_amount": (("quantity", "unit_price"), "quantity * unit_price"),
        "unit_price": (("line_amount", "quantity"), "line_amount / quantity"),
    }}
# What identifies a record in quarantine.record_key (the source's first table; joined by ':').
KEYS = {"customer": ["source_record_id"], "order_line": ["order_id", "line_no"],
        "product": ["sku"], "store": ["store_id"], "interaction": ["interaction_id"],
        "campaign": ["campaign_id"], "campaign_contact": ["campaign_id", "customer_ref"],
        "campaign_response": ["campaign_id", "customer_ref", "response_date"]}
# Integrity rules, declared once and checked in the engine (collect quarantines what breaks them).
# key: a source's records of this table are unique by (source, *key); when the first table a
#   source maps has one, a key seen twice with different values keeps the newest version by file
#   order (file name, then line) and quarantines the others ("superseded by <file>:<line>").
#   Exact duplicates (same values) stay; integrate removes them.
# checks: row rules, (SQL over the table's staging columns that must hold, issue). A rule is
#   checked only where the source gives all its columns (mapped, not derived); a row breaking
#   one is quarantined. {amount_tolerance} is the source's setting (default AMOUNT_TOLERANCE).
RULES: dict[str, dict] = {
    "order_line": {"key": ["order_id", "line_no"], "checks": [
        ("quantity <> 0", "quantity: zero (a return is a negative quantity)"),
        ("unit_price >= 0",
         "unit_price: negative (a return is a negative quantity, not a negative price)"),
        ("abs(line_amount - quantity * unit_price) <= {amount_tolerance}",
         "line_amount: not quantity x unit_price (within {amount_tolerance})")]},
    "customer": {"key": ["source_record_id"]},
    "product": {"key": ["sku"]},
    "store": {"key": ["store_id"]},
    "interaction": {"key": ["interaction_id"]},
    "campaign": {"key": ["campaign_id"]},
}
AMOUNT_TOLERANCE = 0.01  # line_amount may differ from quantity x unit_price by a cent (rounding)
SUPERSEDED = "superseded"  # quarantine.issue of a record replaced by a newer version of its key
META = "source VARCHAR NOT NULL, file VARCHAR NOT NULL, record_no BIGINT NOT NULL"
OTHER_TABLES = {
    "quarantine": "source VARCHAR, file VARCHAR, record_no BIGINT, record_key VARCHAR, "
                  "reason VARCHAR, raw_record VARCHAR, loaded_at TIMESTAMP, issue VARCHAR",
    "value_issue": "source VARCHAR, file VARCHAR, record_no BIGINT, record_key VARCHAR, "
                   "table_name VARCHAR, column_name VARCHAR, issue VARCHAR, reason VARCHAR, "
                   "loaded_at TIMESTAMP",
    "load_audit": "source VARCHAR, file VARCHAR, fingerprint VARCHAR, rows_read BIGINT, "
                  "rows_loaded BIGINT, rows_quarantined BIGINT, loaded_at TIMESTAMP, "
                  "values_nulled BIGINT, spec_hash VARCHAR, derived VARCHAR, status VARCHAR, "
                  "reason VARCHAR, rows_erased BIGINT",
    # The declarations, replaced on every collect run, so later stages need no data folder.
    "source_declaration": "source VARCHAR, role VARCHAR, priority INTEGER, country VARCHAR, "
                          "format VARCHAR, description VARCHAR, tables VARCHAR",
    "setting": "key VARCHAR, value VARCHAR",
}
FILE_TABLES = ["quarantine", "value_issue", "load_audit"]  # rows kept per (source, file)
AUDIT_COLUMNS = ["source", "file", "fingerprint", "rows_read", "rows_loaded", "rows_quarantined",
                 "loaded_at", "values_nulled", "derived", "spec_hash", "status", "reason", "rows_erased"]
YEARS = (1900, 2030)  # dates outside these years are typos, not data
ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "latin-1": "latin-1", "latin1": "latin-1",
             "iso-8859-1": "latin-1"}
DELIMITERS = [",", ";", "\t", "|"]
RAW_DELIM = "\x01\x02\x03\x04"  # never in text, so each physical line is read as one value
PARSE_MSG = {"INTEGER": "not an integer", MONEY: "not a number", "BOOLEAN": "not a boolean"}
DECIMAL_SEPARATORS = [".", ","]
TRUE_VALUES = ["y", "yes", "true", "1"]
FALSE_VALUES = ["n", "no", "false", "0"]
ROLES = ["customer_master"]  # the source whose ids campaign files and loyalty cards refer to
SOURCE_KEYS = ["description", "files", "format", "delimiter", "encoding", "decimal_separator",
               "true_values", "false_values", "date_format", "timestamp_format", "timezone",
               "country", "role", "priority", "amount_tolerance", "tables"]


class SourceError(Exception):
    """A file-level problem with a declared source: names the source, the file and the column
    (or, in the sources file, the ``kind`` of thing to blame: a key or a table)."""

    def __init__(self, source, file, column, message, kind="column"):
        super().__init__(source, file, column, message)
        self.source, self.file, self.column, self.message = source, str(file), column, message
        self.kind = kind

    def __str__(self):
        where = f", {self.kind} {self.column!r}" if self.column else ""
        return f"source {self.source!r}, file {self.file!r}{where}: {self.message}"

    def reason(self) -> str:
        """The message without source and file (they have columns of their own in the audit)."""
        return f"{self.kind} {self.column!r}: {self.message}" if self.column else self.message


class DeclarationError(SourceError):
    """A source declaration that cannot be applied, found only once a file is read (an invalid
    expression, a constant that is no valid value): it stops ``collect``, unlike a bad file."""


def _q(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _lit(value) -> str:
    """Quote an SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


# --- declarations -------------------------------------------------------------------------------

def load_declarations(path) -> tuple[config.Settings, dict]:
    """Parse and validate a sources file: its ``settings:`` block and its ``sources:``.

    Returns the :class:`~crm_helpers.config.Settings` and ``{source name: normalised
    declaration}`` in declaration order. A YAML syntax error or a bad setting raises
    :class:`~crm_helpers.config.ConfigError`; a bad source declaration raises ``SourceError``
    (file = the sources file) naming the source and the key or column.
    """
    path = Path(path)
    doc = config.read_yaml(path)
    unknown = sorted(set(doc) - {"settings", "sources"})
    if unknown:
        raise SourceError("-", path.name, unknown[0], f"unknown top-level key {unknown[0]!r} "
                          "(known: settings, sources)", kind="key")
    settings = config.Settings.from_mapping(doc.get("settings"), where=f"{path}: settings")
    if not isinstance(doc.get("sources"), dict) or not doc["sources"]:
        raise SourceError("-", path.name, None, "expected a top-level 'sources:' mapping")
    sources = {name: _validate_source(name, spec, path.name, settings)
               for name, spec in doc["sources"].items()}
    _check_roles(sources, path.name)
    return settings, sources


def load_sources(path) -> dict:
    """The validated source declarations of a sources file (see :func:`load_declarations`).

    Fields become ``{"column": c}``, ``{"value": v}``, ``{"expr": e, "uses": [...]}`` or, for a
    column left to :data:`DERIVED`, ``{"derived": how}``; ``used`` lists the source columns every
    file must have.
    """
    return load_declarations(path)[1]


def _validate_source(name: str, spec, where: str, settings: config.Settings) -> dict:
    """Check one source declaration and return it normalised."""
    def fail(key, message, kind="key"):
        raise SourceError(name, where, key, message, kind)
    if not isinstance(spec, dict):
        fail(None, "a source declaration is a mapping of keys such as files, format and tables")
    unknown = [k for k in spec if k not in SOURCE_KEYS]
    if unknown:
        fail(unknown[0], f"unknown key {unknown[0]!r} (known: {', '.join(SOURCE_KEYS)})")
    files = spec.get("files")
    out = {"files": [files] if isinstance(files, str) else files,
           "format": str(spec.get("format", "csv")).lower(),
           "delimiter": spec.get("delimiter", ","),
           "encoding": ENCODINGS.get(str(spec.get("encoding", "utf-8")).lower()),
           "decimal_separator": spec.get("decimal_separator", "."),
           "true_values": _words(spec.get("true_values", TRUE_VALUES)),
           "false_values": _words(spec.get("false_values", FALSE_VALUES)),
           "date_format": spec.get("date_format"), "timestamp_format": spec.get("timestamp_format"),
           "timezone": spec.get("timezone", settings.timezone),
           "amount_tolerance": spec.get("amount_tolerance", AMOUNT_TOLERANCE), "tables": {}}
    if not out["files"] or not all(isinstance(f, str) for f in out["files"]):
        fail("files", "'files' must be a glob (or list of globs) relative to raw/")
    if out["format"] not in ("csv", "jsonl"):
        fail("format", f"unknown format {out['format']!r} (csv or jsonl)")
    if out["encoding"] is None:
        fail("encoding", f"unsupported encoding {spec.get('encoding')!r} (utf-8 or latin-1)")
    if out["format"] == "csv" and not (isinstance(out["delimiter"], str)
                                       and len(out["delimiter"]) == 1):
        fail("delimiter", "the delimiter must be one character")
    if out["decimal_separator"] not in DECIMAL_SEPARATORS:
        fail("decimal_separator", f"the decimal separator is '.' or ',', "
                                  f"not {out['decimal_separator']!r}")
    for key in ("true_values", "false_values"):
        if not out[key]:
            fail(key, f"'{key}' must be a non-empty list of words, such as [oui, o, 1]")
    both = sorted(set(out["true_values"]) & set(out["false_values"]))
    if both:
        fail("false_values", f"{both[0]!r} is both a true and a false value")
    for key in ("date_format", "timestamp_format"):
        if out[key] is not None and not (isinstance(out[key], str) and "%" in out[key]):
            fail(key, f"'{key}' is a strptime format such as '%d/%m/%Y', not {out[key]!r}")
    if out["timezone"] not in available_timezones():
        fail("timezone", f"unknown time zone {out['timezone']!r} (such as Europe/Paris)")
    tolerance = out["amount_tolerance"]
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
        fail("amount_tolerance", f"'amount_tolerance' is an amount >= 0 by which line_amount may "
                                 f"differ from quantity x unit_price, not {tolerance!r}")
    if not isinstance(spec.get("tables"), dict) or not spec["tables"]:
        fail("tables", "no staging tables mapped")
    for table, mapping in spec["tables"].items():
        out["tables"][table.removeprefix("stg_")] = _validate_table(table, mapping, fail)
    fields = [f for t in out["tables"].values() for f in t.values()]
    out["used"] = list(dict.fromkeys([f["column"] for f in fields if "column" in f]
                                     + [u for f in fields for u in f.get("uses", [])]))
    # A changed declaration (not a changed description or role) reloads the source's files.
    out["hash"] = hashlib.sha256(json.dumps(out, sort_keys=True, default=str).encode()).hexdigest()
    out.update(description=spec.get("description") or "", role=spec.get("role"),
               priority=spec.get("priority"), country=_country(spec, settings, fail))
    if out["role"] is not None and out["role"] not in ROLES:
        fail("role", f"unknown role {out['role']!r} (known: {', '.join(ROLES)})")
    if out["priority"] is not None and (isinstance(out["priority"], bool)
                                        or not isinstance(out["priority"], int)):
        fail("priority", f"'priority' is a whole number (1 wins survivorship), "
                         f"not {out['priority']!r}")
    return out


def _validate_table(table: str, mapping, fail) -> dict:
    """Check one table's mapping; return its fields, unmapped derivable columns included."""
    table = table.removeprefix("stg_")
    if table not in STAGING:
        fail(table, f"unknown staging table {table!r} (known: {', '.join(STAGING)})", "table")
    if not isinstance(mapping, dict):
        fail(table, f"the mapping of {table!r} is a list of 'staging column: source column'",
             "table")
    fields = {}
    for column, value in mapping.items():
        if column not in STAGING[table]:
            fail(column, f"unknown staging column {column!r} in table {table!r} "
                         f"(known: {', '.join(STAGING[table])})", "column")
        fields[column] = _field(value, lambda m, c=column: fail(c, m, "column"))
    for column, (needs, how) in DERIVED.get(table, {}).items():
        if column not in fields and all(n in fields for n in needs):
            fields[column] = {"derived": how}
            for need in needs:  # a row without them cannot have the derived value
                fields[need]["required"] = True
    unmapped = [c for c, (_, req) in STAGING[table].items() if req and c not in fields]
    if unmapped:
        column = unmapped[0]
        needs = DERIVED.get(table, {}).get(column, ((),))[0]
        hint = f" (or map {' and '.join(needs)} to derive it)" if needs else ""
        fail(column, f"required staging column {column!r} of {table!r} is not mapped{hint}",
             "column")
    return fields


def _words(value) -> list[str]:
    """Boolean words, lower case. YAML reads yes/no/on/off/true/false as booleans: take them all."""
    if not isinstance(value, list):
        return []
    spelled = {True: ["true", "yes", "on"], False: ["false", "no", "off"]}
    return list(dict.fromkeys(w for v in value
                              for w in (spelled[v] if isinstance(v, bool) else [str(v).lower()])))


def _country(spec: dict, settings: config.Settings, fail) -> str:
    """The source's ISO country code (phone numbers), by default the settings' country."""
    import phonenumbers

    country = str(spec.get("country", settings.country)).upper()
    if phonenumbers.country_code_for_region(country) == 0:
        fail("country", f"unknown country {country!r} (an ISO 3166 code such as FR)")
    return country


def _check_roles(sources: dict, where: str) -> None:
    """At most one customer master; distinct priorities; the others ranked after, in order.

    Sets every source's ``priority``: a declared one is kept, the others follow the highest
    declared priority in declaration order.
    """
    masters = [n for n, s in sources.items() if s["role"] == "customer_master"]
    if len(masters) > 1:
        raise SourceError(masters[1], where, "role", f"only one source can be the "
                          f"customer_master ({masters[0]!r} already is)", kind="key")
    declared: dict[int, str] = {}
    for name, s in sources.items():
        if s["priority"] is not None and s["priority"] in declared:
            raise SourceError(name, where, "priority", f"{declared[s['priority']]!r} has priority "
                              f"{s['priority']} too: priorities must differ",
                              kind="key")
        if s["priority"] is not None:
            declared[s["priority"]] = name
    after = max(declared, default=0)
    for s in sources.values():
        if s["priority"] is None:
            after += 1
            s["priority"] = after


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
        "encoding": s["encoding"], "timezone": s["timezone"], "role": s["role"] or "",
        "priority": s["priority"], "country": s["country"],
        "tables": ", ".join(f"stg_{t}" for t in s["tables"])} for name, s in sources.items()])


def is_required(table: str, column: str, field: dict) -> bool:
    """Whether a loaded row needs a value in this field: the staging schema says so, or a
    derived column is computed from it (``field["required"]``)."""
    return field.get("required", STAGING[table][column][1])
