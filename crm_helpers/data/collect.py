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
  and were loaded as NULL; their record is loaded. Summarised by ``data_quality``.
- ``load_audit``: one row per file; ``rows_read`` (non-empty data lines, counted apart from the
  parser) = ``rows_loaded`` + ``rows_quarantined``; ``derived`` lists the staging columns the
  source left unmapped and collect derived (``DERIVED``), with how.
- ``source_declaration`` (source, role, priority, country, format, description, tables) and
  ``setting`` (key, value as JSON text): the declarations, replaced on every run, so integrate,
  notebooks and reports read them from the warehouse (:func:`crm_helpers.warehouse.settings`,
  :func:`crm_helpers.warehouse.source_roles`).

Decisions where the contract is silent: a record feeding several tables (a web order line also
describes a customer) is loaded into all of them or quarantined whole, so the audit counts
records. Dates outside ``YEARS``, or after the month in a file name like ``pos_2024-03.csv``, are
implausible. A file is skipped when its name, content and source declaration are unchanged;
otherwise its earlier rows are replaced. Rows of files no longer in ``raw/`` are kept. A CSV
whose quoted values span lines is refused (its records could not be numbered by line).
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
from crm_helpers.data.integrity import resolve_key_conflicts
from crm_helpers.data.reading import _stage
from crm_helpers.data.sources import (AUDIT_COLUMNS, FILE_TABLES, KEYS, META, OTHER_TABLES,
                                      STAGING, STAGING_TABLES, V, SourceError, _lit, _q,
                                      is_required, load_declarations)

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
    settings, sources = load_declarations(sources_file)
    raw = config.raw_dir(data_dir)
    jobs = [(name, spec, path)
            for name, spec in sources.items() for path in _files(name, spec, raw)]
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
            rows.append(_collect_file(con, name, spec, path, rel))
    finally:
        try:
            con.execute("RESET checkpoint_threshold")
            con.execute("CHECKPOINT")
        except duckdb.Error:  # another connection is busy: it checkpoints later
            pass
        backend.disconnect()
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
    # Warehouses collected before a column existed: add it (empty for their earlier rows).
    con.execute("ALTER TABLE load_audit ADD COLUMN IF NOT EXISTS derived VARCHAR")
    con.execute("ALTER TABLE stg_order_line ADD COLUMN IF NOT EXISTS product_name VARCHAR")


def _record_declarations(con, settings, sources: dict) -> None:
    """Replace ``setting`` and ``source_declaration`` with this run's declarations."""
    values = [(f.name, json.dumps(getattr(settings, f.name), ensure_ascii=False))
              for f in dataclasses.fields(settings)]
    declared = [(name, s["role"], s["priority"], s["country"], s["format"], s["description"],
                 ", ".join(f"stg_{t}" for t in s["tables"])) for name, s in sources.items()]
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM setting")
        con.executemany("INSERT INTO setting VALUES (?, ?)", values)
        con.execute("DELETE FROM source_declaration")
        con.executemany("INSERT INTO source_declaration VALUES (?, ?, ?, ?, ?, ?, ?)", declared)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


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
                 loaded_at=datetime.now(UTC).replace(tzinfo=None), derived=_derived(spec))
    con.execute("BEGIN TRANSACTION")
    try:
        if known:  # same name, new content or declaration: drop its earlier rows everywhere
            for table in [*STAGING_TABLES, *FILE_TABLES]:
                con.execute(f"DELETE FROM {table} WHERE source = ? AND file = ?", [name, rel])
        audit.update(_write(con, name, spec, rel, header, audit["loaded_at"]))
        _resolve_key_conflicts(con, name, spec, audit)
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


# --- writing (inside the file's transaction) ----------------------------------------------------

def _resolve_key_conflicts(con, name: str, spec: dict, audit: dict) -> None:
    """One version per key (``RULES``): the newest by file order stays, the others go to
    quarantine; recounts ``load_audit`` of the files touched and this file's ``audit``."""
    recounted = resolve_key_conflicts(con, name, spec, audit["file"], audit["loaded_at"])
    if audit["file"] in recounted:
        audit["rows_loaded"], audit["rows_quarantined"] = recounted[audit["file"]]


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


