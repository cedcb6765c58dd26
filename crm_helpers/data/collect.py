"""Collect: load the raw exports declared in ``sources.yml`` into canonical staging tables.

Each file is read and parsed by DuckDB in a few set-based statements (no Python row loops) and
lands in the warehouse in one transaction per file:

- ``stg_<table>`` (schema in ``STAGING``): one row per loaded record and target table, with
  ``source``, ``file`` (relative to ``raw/``) and ``record_no``: the record's physical line in
  the file (a CSV header is line 1, so its first record is 2), to find it with any editor.
- ``quarantine``: records that cannot be loaded: a malformed CSV line or JSON line, or a
  required field missing, unparseable or implausible, or a row rule of ``RULES`` broken (quantity
  0, a negative price, an amount that is not quantity x price); or an older version of a key
  superseded by a newer one (:mod:`crm_helpers.data.integrity`). ``reason`` names every problem
  with its value, ``issue`` is the same without values (for counting), ``raw_record`` is the
  line as read (a superseded record: its staged values as JSON).
- ``value_issue``: optional typed values that could not be parsed (or were implausible dates)
  and were loaded as NULL; their record is loaded (a superseded record takes its value issues
  into quarantine with it). Summarised by ``data_quality``.
- ``load_audit``: one row per file; ``rows_read`` (non-empty data lines, counted apart from the
  parser) = ``rows_loaded`` + ``rows_quarantined`` + ``rows_erased`` (records of people erased
  by ``crm forget``, withheld: :mod:`crm_helpers.data.erasure`); ``derived`` lists the staging columns the
  source left unmapped and collect derived (``DERIVED``), with how. ``status`` is ``loaded``,
  ``rejected`` (a file-level problem, in ``reason``), ``deleted-kept`` (no longer in ``raw/``,
  rows kept) or ``pruned`` (no longer in ``raw/``, rows withdrawn by ``prune``). The counts are
  always those of the rows the warehouse holds for the file (0 for a file never loaded).
- ``source_declaration`` (source, role, priority, country, format, description, tables) and
  ``setting`` (key, value as JSON text): the declarations, replaced on every run, so integrate,
  notebooks and reports read them from the warehouse (:func:`crm_helpers.warehouse.settings`,
  :func:`crm_helpers.warehouse.source_roles`).

Decisions where the contract is silent: a record feeding several tables (a web order line also
describes a customer) is loaded into all of them or quarantined whole, so the audit counts
records. Dates outside ``YEARS``, or after the month in a file name like ``pos_2024-03.csv``, are
implausible. A file is skipped when its name, content and source declaration are unchanged and
it loaded; otherwise its earlier rows are replaced. A file that cannot be read (empty, garbage,
wrong delimiter or encoding, a CSV whose quoted values span lines or never close, a JSON-lines
file in which no line is a JSON object) is rejected
and the run goes on; a file loaded before keeps the rows of its earlier version until a
readable one replaces them. A declaration that cannot be applied (``DeclarationError``) stops
the run. Rows of files no longer in ``raw/`` are kept unless ``prune`` is given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
from tqdm.auto import tqdm

from crm_helpers import config
from crm_helpers import warehouse as wh
from crm_helpers.data.erasure import withhold_erased
from crm_helpers.data.integrity import resolve_key_conflicts
from crm_helpers.data.reading import _stage
from crm_helpers.data.sources import (
    AUDIT_COLUMNS,
    FILE_TABLES,
    KEYS,
    META,
    OTHER_TABLES,
    STAGING,
    STAGING_TABLES,
    DeclarationError,
    SourceError,
    V,
    _lit,
    _q,
    is_required,
    load_declarations,
)

# --- collect ------------------------------------------------------------------------------------

GONE = "no longer in raw/"


def collect(data_dir: Path, warehouse: Path, sources_file: Path | None = None,
            progress: bool = True, prune: bool = False) -> pd.DataFrame:
    """Load every file of every declared source into the warehouse; return this run's audit rows.

    ``sources_file`` defaults to ``<data_dir>/sources.yml`` (else the packaged sample
    declarations). One row per file, its ``status`` saying what this run did: ``loaded`` (new
    file), ``replaced`` (known name, new content or declaration), ``skipped`` (unchanged),
    ``rejected`` (a file-level problem, in ``reason``: the file changed nothing and the next
    file is loaded); then one row per file in ``load_audit`` but no longer in ``raw/``:
    ``deleted-kept`` (its rows stay) or, with ``prune``, ``pruned`` (its rows withdrawn); then
    one row per declared source without any file: ``missing`` (a warning, ``file`` is the
    pattern). A bad declaration still raises ``SourceError`` (``DeclarationError`` when found
    only on reading a file) and stops the run; the files loaded before it stay loaded.
    """
    data_dir = Path(data_dir)
    if sources_file is None:
        sources_file = config.sources_yml(data_dir)
        if not sources_file.exists():
            warnings.warn(f"no {sources_file}: using the sample world's declarations "
                          f"({config.SAMPLE_SOURCES_YML.name}); write your own for your data", stacklevel=2)
            sources_file = config.SAMPLE_SOURCES_YML
    settings, sources = load_declarations(sources_file)
    raw = config.raw_dir(data_dir)
    found = {name: _files(spec, raw) for name, spec in sources.items()}
    jobs = [(name, sources[name], path) for name, paths in found.items() for path in paths]
    master = next((name for name, spec in sources.items() if spec["role"] == "customer_master"), None)
    missing = [_missing(name, spec, raw) for name, spec in sources.items() if not found[name]]
    backend = wh.connect(warehouse)
    con = backend.con  # collect parses in set-based DuckDB SQL
    try:
        _prepare(con)
        _record_declarations(con, settings, sources)
        rows = []
        bar = tqdm(jobs, desc="collect", unit="file", disable=not progress)
        for name, spec, path in bar:
            rel = path.relative_to(raw).as_posix()
            bar.set_postfix_str(rel, refresh=False)
            try:
                rows.append(_collect_file(con, name, spec, path, rel, master))
            except DeclarationError:
                raise
            except SourceError as err:  # the file changed nothing: record it, go on
                rows.append(_reject(con, name, spec, rel, err))
        present = {(row["source"], row["file"]) for row in rows}
        rows += [_gone(con, row, prune, sources.get(row["source"])) for row in _audit(con)
                 if (row["source"], row["file"]) not in present and row["status"] != "pruned"]
        expire_raw_records(con, settings.quarantine_retention_days)
    finally:
        try:
            con.execute("RESET checkpoint_threshold")
            con.execute("CHECKPOINT")
        except duckdb.Error:  # another connection is busy: it checkpoints later
            pass
        backend.disconnect()
    counts = ["rows_read", "rows_loaded", "rows_quarantined", "values_nulled", "rows_erased"]  # empty if missing
    return pd.DataFrame(rows + missing, columns=AUDIT_COLUMNS).astype(dict.fromkeys(counts, "Int64"))


def _files(spec: dict, raw: Path) -> list[Path]:
    """The files matching a source's globs, sorted by path (possibly none)."""
    return sorted({p for pattern in spec["files"] for p in raw.glob(pattern) if p.is_file()})


def _missing(name: str, spec: dict, raw: Path) -> dict:
    """The audit row (status ``missing``: a warning, not a stop) of a declared source without
    any file; ``file`` is its pattern."""
    pattern = " or ".join(spec["files"])
    return dict(source=name, file=pattern, status="missing",
                reason=f"no file matches {pattern!r} under {raw}")


def summary(audit: pd.DataFrame) -> list[str]:
    """Lines that tell an analyst what a run did: one count line, then one line per rejected
    file, per file no longer in ``raw/`` and per declared source without any file."""
    n = audit.status.value_counts()
    counts = (f"files: {n.get('loaded', 0)} loaded, {n.get('replaced', 0)} replaced, "
              f"{n.get('skipped', 0)} skipped, {n.get('rejected', 0)} rejected; "
              f"deleted from raw/: {n.get('deleted-kept', 0)} kept, {n.get('pruned', 0)} pruned; "
              f"sources without files: {n.get('missing', 0)}")
    lines = [counts]
    said = {"rejected": "rejected", "deleted-kept": "deleted, rows kept",
            "pruned": "deleted, rows withdrawn", "missing": "warning"}
    for status, what in said.items():
        lines += [f"{what}: source {r.source!r}, file {r.file!r}: {r.reason}"
                  for r in audit[audit.status == status].itertuples()]
    return lines


def _audit(con, where: str = "true", params=()) -> list[dict]:
    """Rows of ``load_audit`` as dicts of ``AUDIT_COLUMNS``."""
    found = con.execute(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM load_audit WHERE {where} "
                        "ORDER BY source, file", list(params)).fetchall()
    return [dict(zip(AUDIT_COLUMNS, row)) for row in found]


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
    # Warehouses collected before a column existed: add it (empty for their earlier rows).
    con.execute("ALTER TABLE load_audit ADD COLUMN IF NOT EXISTS derived VARCHAR")
    con.execute("ALTER TABLE stg_order_line ADD COLUMN IF NOT EXISTS product_name VARCHAR")
    for column in ["status", "reason"]:
        con.execute(f"ALTER TABLE load_audit ADD COLUMN IF NOT EXISTS {column} VARCHAR")
    con.execute("ALTER TABLE load_audit ADD COLUMN IF NOT EXISTS rows_erased BIGINT")
    con.execute("UPDATE load_audit SET status = 'loaded' WHERE status IS NULL")
    con.execute("UPDATE load_audit SET rows_erased = 0 WHERE rows_erased IS NULL")


def _record_declarations(con, settings, sources: dict) -> None:
    """Replace ``setting`` and ``source_declaration`` with this run's declarations."""
    values = [(f.name, json.dumps(getattr(settings, f.name), ensure_ascii=False))
              for f in dataclasses.fields(settings)]
    declared = [(name, s["role"], s["priority"], s["country"], s["format"], s["description"],
                 ", ".join(f"stg_{t}" for t in s["tables"])) for name, s in sources.items()]
    with wh.transaction(con):
        con.execute("DELETE FROM setting")
        con.executemany("INSERT INTO setting VALUES (?, ?)", values)
        con.execute("DELETE FROM source_declaration")
        con.executemany("INSERT INTO source_declaration VALUES (?, ?, ?, ?, ?, ?, ?)", declared)


def _collect_file(con, name: str, spec: dict, path: Path, rel: str, master: str | None = None) -> dict:
    """Load one file unless already loaded as is; replace a known file's earlier rows.

    Records of a person erased by ``crm forget`` (``erased_record``; ``master``: the customer
    master, whose ids campaign files use) are withheld and counted in ``rows_erased``.
    """
    with open(path, "rb") as fh:
        fingerprint = hashlib.file_digest(fh, "sha256").hexdigest()  # streamed
    known = next(iter(_audit(con, "source = ? AND file = ?", [name, rel])), None)
    if known and (known["fingerprint"], known["spec_hash"], known["status"]) == (
            fingerprint, spec["hash"], "loaded"):
        return dict(known, status="skipped")
    if path.stat().st_size == 0:  # an export that failed, in any format
        raise SourceError(name, rel, None, "empty file (0 bytes)")
    header = _stage(con, name, spec, path, rel)  # temp tables only: nothing to undo on error
    audit = dict(source=name, file=rel, fingerprint=fingerprint, spec_hash=spec["hash"],
                 loaded_at=datetime.now(UTC).replace(tzinfo=None), derived=_derived(spec),
                 status="loaded", reason=None)
    with wh.transaction(con):
        if known:  # same name, new content or declaration: drop its earlier rows everywhere
            for table in [*STAGING_TABLES, *FILE_TABLES]:
                con.execute(f"DELETE FROM {table} WHERE source = ? AND file = ?", [name, rel])
        audit.update(_write(con, name, spec, rel, header, audit["loaded_at"]))
        withheld = withhold_erased(con, name, spec, rel, master)
        audit.update(rows_loaded=audit["rows_loaded"] - withheld["loaded"],
                     rows_quarantined=audit["rows_quarantined"] - withheld["quarantined"],
                     values_nulled=audit["values_nulled"] - withheld["nulled"],
                     rows_erased=withheld["loaded"] + withheld["quarantined"])
        _resolve_key_conflicts(con, name, spec, audit)
        if audit["rows_read"] != audit["rows_loaded"] + audit["rows_quarantined"] + audit["rows_erased"]:
            raise SourceError(name, rel, None, f"does not balance: {audit}")
        con.execute(f"INSERT INTO load_audit ({', '.join(AUDIT_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(AUDIT_COLUMNS))})",
                    [audit[c] for c in AUDIT_COLUMNS])
    held = known and known["fingerprint"] and known["status"] != "pruned"  # an earlier version's rows
    return dict(audit, status="replaced" if held else "loaded")


def _reject(con, name: str, spec: dict, rel: str, err: SourceError) -> dict:
    """Record a rejected file in ``load_audit``; return its audit row (status ``rejected``).

    A file never loaded gets a row with no fingerprint and zero counts. A file loaded before
    keeps its earlier rows, fingerprint and counts (they describe what the warehouse holds);
    only its status and reason change. Either way it is read again on the next run.
    """
    known = next(iter(_audit(con, "source = ? AND file = ?", [name, rel])), None)
    reason = err.reason()
    if known and known["rows_read"]:
        reason += "; the rows of its earlier version are kept"
    row = known or dict(source=name, file=rel, fingerprint=None, rows_read=0, rows_loaded=0,
                        rows_quarantined=0, loaded_at=datetime.now(UTC).replace(tzinfo=None),
                        values_nulled=0, derived=_derived(spec), spec_hash=spec["hash"], rows_erased=0)
    row = dict(row, status="rejected", reason=reason)
    with wh.transaction(con):
        _replace_audit_row(con, row)
    return row


def _gone(con, row: dict, prune: bool, spec: dict | None) -> dict:
    """A file in ``load_audit`` that this run did not find: keep its rows (``deleted-kept``)
    or, with ``prune``, delete them from staging, quarantine and value_issue (``pruned``); the
    versions its rows had superseded come back (``spec``: its source's declaration, if any)."""
    where = GONE if spec else "its source is no longer declared in sources.yml"
    if not prune:
        row = dict(row, status="deleted-kept",
                   reason=f"{where}: its {row['rows_read']} rows are kept (--prune withdraws them)")
    else:
        withdrawn = f"{where}: its {row['rows_read']} rows were withdrawn"
        row = dict(row, rows_read=0, rows_loaded=0, rows_quarantined=0, values_nulled=0, rows_erased=0,
                   status="pruned", reason=withdrawn)
    with wh.transaction(con):
        if prune:
            for table in [*STAGING_TABLES, "quarantine", "value_issue"]:
                con.execute(f"DELETE FROM {table} WHERE source = ? AND file = ?",
                            [row["source"], row["file"]])
            if spec:
                resolve_key_conflicts(con, row["source"], spec, row["file"],
                                      datetime.now(UTC).replace(tzinfo=None))
        _replace_audit_row(con, row)
    return row


def expire_raw_records(con, days: int) -> int:
    """Blank ``quarantine.raw_record`` of rows quarantined more than ``days`` days ago; return how many.

    The raw line is kept so an analyst can fix its source; past the retention period (the
    ``quarantine_retention_days`` setting) it is personal data kept without a purpose. The
    row, its key and its reason stay, so the load audit still balances. A superseded version
    whose values are blanked can no longer come back (see :mod:`crm_helpers.data.integrity`).
    """
    return con.execute("UPDATE quarantine SET raw_record = NULL WHERE raw_record IS NOT NULL "
                       "AND loaded_at < CAST(now() AS TIMESTAMP) - to_days(CAST(? AS INTEGER))",
                       [days]).fetchone()[0]


def _replace_audit_row(con, row: dict) -> None:
    """Write one file's ``load_audit`` row in place of the one it had (inside a transaction)."""
    con.execute("DELETE FROM load_audit WHERE source = ? AND file = ?", [row["source"], row["file"]])
    con.execute(f"INSERT INTO load_audit ({', '.join(AUDIT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(AUDIT_COLUMNS))})", [row[c] for c in AUDIT_COLUMNS])


# --- writing (inside the file's transaction) ----------------------------------------------------

def _resolve_key_conflicts(con, name: str, spec: dict, audit: dict) -> None:
    """One version per key (``RULES``): the newest by file order stays, the others go to
    quarantine with their value issues; recounts ``load_audit`` of the files touched and this
    file's ``audit``."""
    recounted = resolve_key_conflicts(con, name, spec, audit["file"], audit["loaded_at"])
    if audit["file"] in recounted:
        counts = recounted[audit["file"]]
        audit["rows_loaded"], audit["rows_quarantined"], audit["values_nulled"] = counts


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
    optional = [(t, c) for t, fields in spec["tables"].items() for c, f in fields.items()
                if STAGING[t][c][0] != V and not is_required(t, c, f) and "derived" not in f]
    warns = [f"SELECT \"§no\" AS n, \"§key\" AS k, {_lit(t)} AS t, {_lit(c)} AS c, "
             f"{_q(f'w§{t}§{c}')} AS w FROM _parsed "
             f"WHERE \"§reason\" = '' AND {_q(f'w§{t}§{c}')} IS NOT NULL" for t, c in optional]
    nulled = warns and insert("INSERT INTO value_issue SELECT ?, ?, n, k, t, c, w.issue, "
                              f"w.reason, ? FROM ({' UNION ALL '.join(warns)})", loaded_at)
    if len(loaded) != 1:  # whole records: every target table gets the same ones
        raise SourceError(name, rel, None, f"tables received different row counts: {loaded}")
    return dict(rows_read=read, rows_loaded=loaded.pop(), rows_quarantined=quarantined,
                values_nulled=nulled or 0)


def _derived(spec: dict) -> str | None:
    """The columns a source leaves to collect, with how they are derived (for ``load_audit``)."""
    said = [f"{c} = {f['derived']}" for fields in spec["tables"].values()
            for c, f in fields.items() if "derived" in f]
    return "; ".join(said) or None


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


