"""Key conflicts: one version per key, the newest by file order; the others move to quarantine.

A source's records are unique by the ``key`` that :data:`~crm_helpers.data.sources.RULES`
declares for the first table it maps (an order line by source, order_id and line_no). When a key
appears with different values (a correction within a file, or a corrected re-export under a new
file name), the version in the last file by name, then the last line, stays in staging; the
others leave every staging table of the source and enter ``quarantine`` with issue
``superseded`` and reason ``superseded by <file>:<line>``. Their ``raw_record`` holds the staged
values as JSON (``{"stg_<table>": {...}, "value_issue": [...]}``): the record's value issues
leave ``value_issue`` with it (a record not loaded has no values set aside), so a superseded
record comes back whole when the version that replaced it goes (its file replaced); one whose
values were erased (a retention rule blanking ``raw_record``) stays quarantined. Exact
duplicates (same values) stay: integrate removes them. ``load_audit`` of every file touched is
recounted (rows loaded, quarantined, values nulled), so each balances.
"""

from __future__ import annotations

from datetime import datetime

from crm_helpers.data.sources import OTHER_TABLES, RULES, STAGING, SUPERSEDED, _lit, _q


def resolve_key_conflicts(con, name: str, spec: dict, file: str, loaded_at: datetime) -> dict:
    """Keep the newest version of each key of source ``name``; quarantine the others.

    Runs inside the transaction of ``file``, just written. Only the keys that can have changed
    are judged: those of ``file`` and of the superseded records put back first. Returns
    ``{file: (rows_loaded, rows_quarantined, values_nulled)}`` recounted for the files whose
    rows moved; their ``load_audit`` rows (if any yet) are updated. A source whose first table
    has no declared key returns ``{}``.
    """
    first = next(iter(spec["tables"]))
    key = RULES.get(first, {}).get("key")
    if not key:
        return {}
    touched = _restore(con, name, spec, first)
    touched |= _supersede(con, name, spec, file, key, loaded_at)
    counts = {}
    for moved in sorted(touched):
        counts[moved] = con.execute(
            f"SELECT (SELECT count(*) FROM stg_{first} WHERE source = $1 AND file = $2), "
            "(SELECT count(*) FROM quarantine WHERE source = $1 AND file = $2), "
            "(SELECT count(*) FROM value_issue WHERE source = $1 AND file = $2)",
            [name, moved]).fetchone()
        con.execute("UPDATE load_audit SET rows_loaded = ?, rows_quarantined = ?, "
                    "values_nulled = ? WHERE source = ? AND file = ?",
                    [*counts[moved], name, moved])
    return counts


def _restore(con, name: str, spec: dict, first: str) -> set[str]:
    """Put the source's superseded records back into staging, and their value issues into
    ``value_issue`` (they are judged again).

    Leaves their (file, record_no) in the temp table ``_restored``; returns their files. A
    record whose staged values were erased (retention) cannot come back: it stays quarantined.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE _restored AS SELECT file, record_no "
                "FROM quarantine WHERE source = ? AND issue = ? AND raw_record IS NOT NULL",
                [name, SUPERSEDED])
    files = {f for (f,) in con.execute("SELECT DISTINCT file FROM _restored").fetchall()}
    if not files:
        return set()
    for table in spec["tables"]:
        shape_sql = _lit(_shape({"source": "VARCHAR", "file": "VARCHAR", "record_no": "BIGINT",
                                 **{c: t for c, (t, _) in STAGING[table].items()}}))
        con.execute(f"INSERT INTO stg_{table} BY NAME SELECT unnest(json_transform("
                    f"CAST(raw_record AS JSON) -> {_lit('stg_' + table)}, {shape_sql})) "
                    "FROM quarantine WHERE source = ? AND issue = ? AND raw_record IS NOT NULL",
                    [name, SUPERSEDED])
    issues = _shape(dict(column.split() for column in OTHER_TABLES["value_issue"].split(", ")))
    con.execute(f"INSERT INTO value_issue BY NAME SELECT unnest(v, recursive := true) FROM ("
                f"SELECT unnest(json_transform(CAST(raw_record AS JSON) -> 'value_issue', {_lit(f'[{issues}]')})) "
                "AS v FROM quarantine WHERE source = ? AND issue = ? AND raw_record IS NOT NULL)", [name, SUPERSEDED])
    con.execute("DELETE FROM quarantine WHERE source = ? AND issue = ? AND raw_record IS NOT NULL",
                [name, SUPERSEDED])
    return files


def _supersede(con, name: str, spec: dict, file: str, key: list[str],
               loaded_at: datetime) -> set[str]:
    """Move every version but the newest (unless equal to it) of the keys of ``file`` and of
    the restored records to quarantine, with their value issues; return the files they came from."""
    first, cols = next(iter(spec["tables"])), ", ".join(map(_q, key))
    values = "{" + ", ".join(f"{_lit(c)}: {_q(c)}" for c in STAGING[first]) + "}"
    window = (f"PARTITION BY {cols} ORDER BY file, record_no "
              "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _superseded AS
        WITH keys AS (SELECT DISTINCT {cols} FROM stg_{first} WHERE source = $1 AND (file = $2
                      OR (file, record_no) IN (SELECT (file, record_no) FROM _restored)))
        SELECT file, record_no, record_key, winner FROM (
            SELECT file, record_no, {values} AS v, last_value({values}) OVER w AS newest,
                   concat_ws(':', {', '.join(f'CAST({_q(k)} AS VARCHAR)' for k in key)})
                       AS record_key,
                   last_value(file || ':' || record_no) OVER w AS winner
            FROM stg_{first} SEMI JOIN keys USING ({cols})
            WHERE source = $1 WINDOW w AS ({window}))
        WHERE v IS DISTINCT FROM newest""", [name, file])
    files = {f for (f,) in con.execute("SELECT DISTINCT file FROM _superseded").fetchall()}
    if not files:
        return set()
    staged = ", ".join(
        f"{_lit('stg_' + t)}, (SELECT to_json(x) FROM stg_{t} x WHERE x.source = $1 "
        "AND x.file = s.file AND x.record_no = s.record_no)" for t in spec["tables"])
    staged += (", 'value_issue', (SELECT coalesce(json_group_array(to_json(v)), '[]') "
               "FROM value_issue v WHERE v.source = $1 AND v.file = s.file "
               "AND v.record_no = s.record_no)")
    con.execute("INSERT INTO quarantine (source, file, record_no, record_key, reason, issue, "
                f"raw_record, loaded_at) SELECT $1, file, record_no, record_key, "
                f"'superseded by ' || winner, $2, json_object({staged}), $3 FROM _superseded s",
                [name, SUPERSEDED, loaded_at])
    for table in [*(f"stg_{t}" for t in spec["tables"]), "value_issue"]:
        con.execute(f"DELETE FROM {table} t USING _superseded s WHERE t.source = ? "
                    "AND t.file = s.file AND t.record_no = s.record_no", [name])
    return files


def _shape(columns: dict[str, str]) -> str:
    """A ``json_transform`` structure (JSON text) from ``{column: SQL type}``."""
    return "{" + ", ".join(f'"{c}": "{t}"' for c, t in columns.items()) + "}"
