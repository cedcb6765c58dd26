"""Erasure on request: ``crm forget <customer_id>`` removes one person from the warehouse.

The person is the warehouse's pseudonymous ``customer_id`` (``dim_customer``). Their source
records are the ``(source, source_record_id)`` pairs that ``identity_map`` links to it (customer
records, loyalty cards, web-shop e-mail keys). :func:`forget` removes, in one transaction:

- from staging, every record of those ids: the customer records, and every transaction that
  refers to them (a ``customer_ref`` of the same source, or of the customer master for sources
  that keep no ids of their own, such as campaign platforms), with all the tables the record fed;
- from ``quarantine``, the rows of those records (by record key), and every quarantined line one
  of whose fields is one of the person's ids or e-mails (a superseded version keeps its values as
  JSON, a malformed line its raw text); from ``value_issue``, the rows of the erased records;
- from every other table that the catalogue shows carries ``customer_id`` (``dim_customer``,
  ``identity_map``, the facts, anything a notebook wrote) the person's rows, and from every table
  with ``source`` and ``source_record_id`` (``customer_record``) the person's records.

The person's transactions are removed, not kept under an "erased" key: a kept order line would
still carry the person's purchase history (dates, stores, amounts), which with a small shop is
enough to recognise them. Revenue therefore drops by the person's orders; ``integration_log`` is
corrected by what was erased, so the contract "balances staging" still holds, and ``load_audit``
counts the erased records per file in ``rows_erased``: rows_read = rows_loaded +
rows_quarantined + rows_erased.

The erasure is logged without personal data: ``erasure_log`` (erasure_id, erased_at,
customer_id, table_name, rows_removed: one row per table touched) and ``erased_record``
(erasure_id, record_hash): the SHA-256 of a per-warehouse random salt (``erasure_salt``), the
source and the record id or reference. ``collect`` consults ``erased_record``
(:func:`withhold_erased`): a re-read file that still holds the person loads those records as
``rows_erased``, not as loaded or quarantined rows. The raw exports are the source systems'
files: the person must be erased there too (the README says how).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from crm_helpers import warehouse as wh
from crm_helpers.data.sources import STAGING, STAGING_TABLES

ERASURE_TABLES = {
    "erasure_log": "erasure_id INTEGER, erased_at TIMESTAMP, customer_id VARCHAR, "
                   "table_name VARCHAR, rows_removed BIGINT",
    "erased_record": "erasure_id INTEGER, record_hash VARCHAR",
    "erasure_salt": "salt VARCHAR",
}
EXTERNAL_PREFIXES = ("cdnow_",)  # third-party data (CDNOW): its customer_id is not ours
MIN_TOKEN = 6  # a quarantined line is matched on ids and e-mails this long, not on short numbers
REFERENCES = ("source_record_id", "customer_ref")  # staging columns naming a customer record
TOKENS = r"[\s,;|\t\"{}:\[\]]+"  # what separates the fields of a raw CSV or JSON line


class UnknownCustomer(LookupError):
    """``crm forget`` was given a customer id that the warehouse does not know."""


def hashed(salt_sql: str, source_sql: str, ref_sql: str) -> str:
    """SQL for the salted SHA-256 of a source and a record id (how erased records are kept)."""
    return f"sha256(concat_ws(chr(31), {salt_sql}, {source_sql}, CAST({ref_sql} AS VARCHAR)))"


def forget(warehouse: Path | str | None, customer_id: str) -> dict[str, int]:
    """Erase customer ``customer_id`` from staging, quarantine and the star schema, in one transaction.

    Returns ``{table: rows removed}`` for every table that lost rows (and ``records``: the
    person's source records). Raises :class:`UnknownCustomer` for an id that ``identity_map``
    does not hold, :class:`~crm_helpers.warehouse.WarehouseMissing` before ``crm integrate``.
    A failure leaves the warehouse as it was.
    """
    from crm_helpers.information.integrate import customer_master

    if not Path(warehouse).exists():
        raise wh.WarehouseMissing(f"no warehouse at {warehouse}: run `crm collect` and `crm integrate` first")
    backend = wh.connect(warehouse)
    try:
        if "identity_map" not in backend.list_tables():
            raise wh.WarehouseMissing(f"{warehouse} has no identity_map: run `crm integrate` first")
        record_sources = set(backend.table("stg_customer").select("source").distinct().to_pandas().source)
        master = customer_master(wh.source_roles(backend), record_sources)
        con = backend.con
        with wh.transaction(con):
            return _erase(con, str(customer_id).strip(), master)
    finally:
        backend.disconnect()


def _erase(con, customer_id: str, master: str | None) -> dict[str, int]:
    """The erasure itself, inside the caller's transaction (see :func:`forget`)."""
    con.execute("CREATE OR REPLACE TEMP TABLE _ids AS SELECT DISTINCT source, "
                "CAST(source_record_id AS VARCHAR) AS ref FROM identity_map "
                "WHERE CAST(customer_id AS VARCHAR) = ?", [customer_id])
    n_records = con.execute("SELECT count(*) FROM _ids").fetchone()[0]
    if not n_records:
        raise UnknownCustomer(f"customer {customer_id!r} is not in the warehouse "
                              "(a customer_id of dim_customer)")
    for table, columns in ERASURE_TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
    con.execute("INSERT INTO erasure_salt SELECT ? WHERE NOT EXISTS (SELECT 1 FROM erasure_salt)",
                [secrets.token_hex(16)])
    _person_records(con, master)
    erasure_id = con.execute("SELECT coalesce(max(erasure_id), 0) + 1 FROM erasure_log").fetchone()[0]
    _record_hashes(con, erasure_id)
    _correct_integration_log(con, customer_id)
    _correct_load_audit(con)
    removed = {}
    for table in STAGING_TABLES:
        removed[table] = con.execute(f"DELETE FROM {table} t USING _records r WHERE t.source = r.source "
                                     "AND t.file = r.file AND t.record_no = r.record_no").fetchone()[0]
    removed["quarantine"] = con.execute(f"DELETE FROM quarantine q WHERE {_QUARANTINED}").fetchone()[0]
    removed["value_issue"] = con.execute(f"DELETE FROM value_issue q WHERE {_NULLED}").fetchone()[0]
    removed.update(_erase_warehouse_tables(con, customer_id))
    removed = {t: int(n) for t, n in removed.items() if n}
    con.executemany("INSERT INTO erasure_log VALUES (?, CAST(now() AS TIMESTAMP), ?, ?, ?)",
                    [(erasure_id, customer_id, t, n) for t, n in sorted(removed.items())])
    return {"records": int(n_records), **removed}


def _person_records(con, master: str | None) -> None:
    """Temp tables ``_records`` (source, file, record_no: the person's staged records) and
    ``_tokens`` (their ids and e-mails, lower case, to find their quarantined lines)."""
    parts = []
    for table, columns in STAGING.items():
        if "source_record_id" in columns:
            parts.append(f"SELECT source, file, record_no FROM stg_{table} t SEMI JOIN _ids i "
                         "ON t.source = i.source AND t.source_record_id = i.ref")
        if "customer_ref" in columns:  # own ids, or the master's for sources without ids of their own
            parts.append(f"SELECT source, file, record_no FROM stg_{table} t SEMI JOIN _ids i "
                         "ON t.customer_ref = i.ref AND (t.source = i.source OR (i.source = $master "
                         "AND NOT list_contains($linked, t.source)))")
    linked = [s for (s,) in con.execute("SELECT DISTINCT source FROM identity_map").fetchall()]
    con.execute(f"CREATE OR REPLACE TEMP TABLE _records AS SELECT DISTINCT * FROM ({' UNION ALL '.join(parts)})",
                {"master": master or "", "linked": linked})
    tokens = ["SELECT ref FROM _ids",
              ("SELECT email FROM stg_customer t SEMI JOIN _records r ON t.source = r.source "
               "AND t.file = r.file AND t.record_no = r.record_no")]
    if "customer_record" in _tables(con):  # standardised e-mails
        tokens.append("SELECT email FROM customer_record t SEMI JOIN _ids i ON t.source = i.source "
                      "AND CAST(t.source_record_id AS VARCHAR) = i.ref")
    con.execute("CREATE OR REPLACE TEMP TABLE _tokens AS SELECT DISTINCT lower(trim(token)) AS token "
                f"FROM ({' UNION ALL '.join(tokens)}) AS x(token) WHERE length(trim(token)) >= {MIN_TOKEN}")


# A quarantine (or value_issue) row ``q`` of the person: of an erased record, keyed by one of
# their ids, or (quarantine) a raw line or superseded version one of whose fields is theirs.
_OF_RECORDS = ("EXISTS (SELECT 1 FROM _records r WHERE r.source = q.source AND r.file = q.file "
               "AND r.record_no = q.record_no) OR EXISTS (SELECT 1 FROM _ids i "
               "WHERE i.source = q.source AND i.ref = q.record_key)")
_NULLED = f"({_OF_RECORDS})"
_QUARANTINED = (f"({_OF_RECORDS} OR (q.raw_record IS NOT NULL AND list_has_any("
                f"string_split_regex(lower(q.raw_record), '{TOKENS}'), "
                "(SELECT coalesce(list(token), []) FROM _tokens))))")


def _record_hashes(con, erasure_id: int) -> None:
    """Add the salted hashes of the person's ids and of every reference their staged rows use
    (source and value, as the files write them) to ``erased_record``, for collect."""
    refs = ["SELECT source, ref FROM _ids"]
    for table, columns in STAGING.items():
        refs += [f"SELECT t.source, CAST(t.{c} AS VARCHAR) FROM stg_{table} t SEMI JOIN _records r "
                 "ON t.source = r.source AND t.file = r.file AND t.record_no = r.record_no "
                 f"WHERE t.{c} IS NOT NULL" for c in REFERENCES if c in columns]
    digest = hashed("(SELECT min(salt) FROM erasure_salt)", "source", "ref")
    con.execute(f"INSERT INTO erased_record SELECT DISTINCT ?, {digest} FROM "
                f"(SELECT DISTINCT * FROM ({' UNION ALL '.join(refs)}) AS x(source, ref)) "
                f"WHERE {digest} NOT IN (SELECT record_hash FROM erased_record)", [erasure_id])


def _correct_load_audit(con) -> None:
    """Move the erased records of each file from rows_loaded and rows_quarantined to rows_erased
    (and their NULL-ed values out of values_nulled), before they are deleted."""
    con.execute("ALTER TABLE load_audit ADD COLUMN IF NOT EXISTS rows_erased BIGINT")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _erased_counts AS
        SELECT source, file, sum(loaded) AS loaded, sum(quarantined) AS quarantined,
               sum(nulled) AS nulled FROM (
            SELECT source, file, count(DISTINCT record_no) AS loaded, 0 AS quarantined, 0 AS nulled
            FROM _records GROUP BY ALL
            UNION ALL SELECT source, file, 0, count(*), 0 FROM quarantine q WHERE {_QUARANTINED} GROUP BY ALL
            UNION ALL SELECT source, file, 0, 0, count(*) FROM value_issue q WHERE {_NULLED} GROUP BY ALL)
        GROUP BY ALL""")
    con.execute("""UPDATE load_audit a SET rows_loaded = a.rows_loaded - e.loaded,
                       rows_quarantined = a.rows_quarantined - e.quarantined,
                       values_nulled = a.values_nulled - e.nulled,
                       rows_erased = coalesce(a.rows_erased, 0) + e.loaded + e.quarantined
                   FROM _erased_counts e WHERE a.source = e.source AND a.file = e.file""")


def _correct_integration_log(con, customer_id: str) -> None:
    """Take the person's order lines out of ``integration_log`` as if integrate had never seen
    them: staged, exact duplicates, test orders, records and customers. Without it the contract
    "balances staging" would count their removed duplicates against the remaining facts."""
    from crm_helpers.information.integrate import DUPLICATE_LINES, TEST_ORDERS
    from crm_helpers.information.standardise import ORDER_LINE_COLUMNS

    tables = _tables(con)
    if not {"integration_log", "fact_order_line"} <= tables:
        return
    staged = ("SELECT {cols} FROM stg_order_line t SEMI JOIN _records r ON t.source = r.source "
              "AND t.file = r.file AND t.record_no = r.record_no")
    (s_n, s_a), (d_n, d_a), (f_n, f_a) = [con.execute(
        f"SELECT count(*), coalesce(sum(line_amount), 0) FROM ({q})", p).fetchone() for q, p in [
        (staged.format(cols="*"), []),
        ("SELECT DISTINCT * FROM (" + staged.format(cols=", ".join(f"t.{c}" for c in ORDER_LINE_COLUMNS)) + ")", []),
        ("SELECT * FROM fact_order_line WHERE CAST(customer_id AS VARCHAR) = ?", [customer_id])]]
    n_records = con.execute("SELECT count(*) FROM customer_record t SEMI JOIN _ids i ON t.source = i.source "
                            "AND CAST(t.source_record_id AS VARCHAR) = i.ref").fetchone()[0] \
        if "customer_record" in tables else 0
    update = ("UPDATE integration_log SET rows_in = rows_in - ?, rows_out = rows_out - ?, "
              "rows_removed = rows_removed - ?, amount_removed = amount_removed - ? WHERE step = ? AND reason = ?")
    con.execute(update, [s_n, d_n, s_n - d_n, s_a - d_a, "order lines", DUPLICATE_LINES])
    con.execute(update, [d_n, f_n, d_n - f_n, d_a - f_a, "order lines", TEST_ORDERS])
    con.execute("UPDATE integration_log SET rows_in = rows_in - ?, rows_out = rows_out - ? "
                "WHERE step = 'customer records'", [n_records, n_records])
    con.execute("UPDATE integration_log SET rows_in = rows_in - ?, rows_out = rows_out - 1 "
                "WHERE step = 'identity resolution'", [n_records])


def _tables(con) -> set[str]:
    """The warehouse's own tables (main schema; temp tables left out)."""
    return {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                      "WHERE table_schema = 'main' AND table_catalog = current_database() "
                                      "AND table_type = 'BASE TABLE'").fetchall()}


def _erase_warehouse_tables(con, customer_id: str) -> dict[str, int]:
    """Delete the person from every table outside staging and bookkeeping that the catalogue
    shows carries ``customer_id``, or ``source`` and ``source_record_id``."""
    columns: dict[str, set[str]] = {}
    for table, column in con.execute("SELECT table_name, column_name FROM information_schema.columns "
                                     "WHERE table_schema = 'main' AND table_catalog = current_database()").fetchall():
        columns.setdefault(table, set()).add(column)
    skipped = {*STAGING_TABLES, "quarantine", "value_issue", *ERASURE_TABLES}
    removed = {}
    for table in sorted(_tables(con) - skipped):
        if table.startswith(EXTERNAL_PREFIXES):
            continue
        if "customer_id" in columns[table]:
            where, params = "CAST(customer_id AS VARCHAR) = ?", [customer_id]
        elif {"source", "source_record_id"} <= columns[table]:
            where, params = ("EXISTS (SELECT 1 FROM _ids i WHERE i.source = t.source "
                             "AND i.ref = CAST(t.source_record_id AS VARCHAR))"), []
        else:
            continue
        removed[table] = con.execute(f'DELETE FROM "{table}" t WHERE {where}', params).fetchone()[0]
    return removed


def withhold_erased(con, name: str, spec: dict, rel: str, master: str | None) -> dict[str, int]:
    """In collect's transaction for file ``rel`` of source ``name``, just written: remove the
    records whose id or reference is in ``erased_record`` (so an erased person does not come
    back with a re-read file) and return how many: ``loaded`` and ``quarantined`` records,
    ``nulled`` value issues. A reference is checked under its own source and under the
    customer master's (campaign files refer to the master's ids)."""
    none = {"loaded": 0, "quarantined": 0, "nulled": 0}
    if "erased_record" not in _tables(con) or not con.execute("SELECT count(*) FROM erased_record").fetchone()[0]:
        return none
    salt = "(SELECT min(salt) FROM erasure_salt)"
    erased = "(SELECT record_hash FROM erased_record)"
    parts = []
    for table in spec["tables"]:
        for column in (c for c in REFERENCES if c in STAGING[table]):
            test = f"{hashed(salt, 'source', column)} IN {erased}"
            if column == "customer_ref" and master:
                test += f" OR {hashed(salt, '$master', column)} IN {erased}"
            parts.append(f"SELECT record_no FROM stg_{table} WHERE source = $name AND file = $file "
                         f"AND {column} IS NOT NULL AND ({test})")
    if not parts:
        return none
    params = {"name": name, "file": rel} | ({"master": master} if "$master" in "".join(parts) else {})
    con.execute(f"CREATE OR REPLACE TEMP TABLE _withheld AS SELECT DISTINCT record_no FROM "
                f"({' UNION ALL '.join(parts)})", params)
    counts = dict(none, loaded=con.execute("SELECT count(*) FROM _withheld").fetchone()[0])
    for table in spec["tables"]:
        con.execute(f"DELETE FROM stg_{table} WHERE source = ? AND file = ? "
                    "AND record_no IN (SELECT record_no FROM _withheld)", [name, rel])
    counts["nulled"] = con.execute("DELETE FROM value_issue WHERE source = ? AND file = ? "
                                   "AND record_no IN (SELECT record_no FROM _withheld)", [name, rel]).fetchone()[0]
    counts["quarantined"] = con.execute(
        f"DELETE FROM quarantine WHERE source = $name AND file = $file AND record_key IS NOT NULL "
        f"AND {hashed(salt, 'source', 'record_key')} IN {erased}", {"name": name, "file": rel}).fetchone()[0]
    return counts


def erasure_summary(removed: dict[str, int], customer_id: str) -> str:
    """One line saying what :func:`forget` removed."""
    staging = sum(n for t, n in removed.items() if t.startswith("stg_"))
    others = ", ".join(f"{t} {n:,}" for t, n in removed.items()
                       if t != "records" and not t.startswith("stg_"))
    return (f"forgot customer {customer_id}: {removed['records']:,} source records, {staging:,} staging rows"
            + (f"; {others}" if others else "") + "; logged in erasure_log")

