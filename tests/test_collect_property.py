"""Property: however collect runs are interleaved with file changes, the warehouse ends where one
clean collect of the final files would put it.

A tiny world of two declared sources (a member list and till lines) lives in a temp folder.
Hypothesis generates a sequence of steps: write a file (new, or a changed version under the same
name), re-export a file under a new name (same rows, some values corrected), delete a file, and
run collect (with or without ``--prune``). Keys are drawn from a small set, so the same order id
and line number (or member id) often comes back with other values, within a file or across
files: the newest by file order must win. Some rows break a row rule (quantity 0, a negative
price, an amount that is not quantity x price) or carry an unparseable optional date. After a
last ``collect --prune``, the staged tables, quarantine, value issues and the load audit's
counts must equal those of one collect of the final files into a fresh warehouse.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crm_helpers.data.collect import collect

settings.register_profile("collect-property", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])

SOURCES_YML = """\
settings:
  organisation: Property Test Ltd
  currency: GBP
  country: GB
  timezone: UTC
  locale: en_GB

sources:
  members:
    role: customer_master
    priority: 1
    files: members/*.csv
    format: csv
    delimiter: ","
    encoding: utf-8
    timestamp_format: "%Y-%m-%d %H:%M"
    timezone: UTC
    tables:
      customer:
        source_record_id: member_id
        email: email
        signup_ts: joined

  tills:
    files: tills/*.csv
    format: csv
    delimiter: ","
    encoding: utf-8
    timestamp_format: "%Y-%m-%d %H:%M"
    timezone: UTC
    tables:
      order_line:
        order_id: receipt
        line_no: line
        order_ts: sold_at
        customer_ref: member
        channel: {value: store}
        sku: sku
        quantity: qty
        unit_price: price
        line_amount: amount
"""
HEADERS = {"members": "member_id,email,joined",
           "tills": "receipt,line,sold_at,member,sku,qty,price,amount"}
NAMES = {"members": ["members/m_a.csv", "members/m_b.csv"],
         "tills": ["tills/t_a.csv", "tills/t_b.csv", "tills/t_c.csv"]}

# --- generated rows: few keys, so conflicts are frequent; some values break a rule --------------

member_rows = st.builds(
    lambda mid, email, joined: f"M{mid},{email}@example.com,{joined}",
    st.integers(1, 4), st.sampled_from(["ann", "bob", "cy"]),
    st.sampled_from(["2024-01-05 10:00", "2024-02-06 11:30", "", "soon"]))  # "soon": value issue


@st.composite
def till_rows(draw) -> str:
    """One till line: key (receipt, line) from a small set; qty 0, a negative price or a wrong
    amount now and then (quarantined by the row rules)."""
    receipt, line = draw(st.sampled_from(["R1", "R2", "R3"])), draw(st.integers(1, 2))
    qty = draw(st.sampled_from([1, 2, -1, 0]))
    cents = draw(st.sampled_from([150, 200, 999, -100]))
    amount = qty * cents + draw(st.sampled_from([0, 0, 0, 100]))
    sold = draw(st.sampled_from(["2024-03-01 09:00", "2024-03-02 17:45"]))
    member = draw(st.sampled_from(["M1", "M2", ""]))
    sku = draw(st.sampled_from(["A", "B"]))
    return f"{receipt},{line},{sold},{member},{sku},{qty},{cents / 100:.2f},{amount / 100:.2f}"


ROWS = {"members": member_rows, "tills": till_rows()}


@st.composite
def steps(draw) -> list[tuple]:
    """Rounds of changes to the raw folder, each followed by a collect run (the last with
    ``--prune``): per round, every file name is kept, written (new or changed), re-exported
    from another file of its source (same rows, some corrected), or deleted."""
    out = []
    rounds = draw(st.integers(1, 3))
    for last in [False] * (rounds - 1) + [True]:
        for source, names in NAMES.items():
            for name in names:
                kind = draw(st.sampled_from(["keep", "keep", "write", "reexport", "delete"]))
                if kind == "write":
                    out.append(("write", source, name,
                                draw(st.lists(ROWS[source], min_size=1, max_size=5))))
                elif kind == "reexport":
                    fixes = draw(st.lists(st.tuples(st.integers(0, 4), ROWS[source]), max_size=2))
                    out.append(("reexport", source, draw(st.sampled_from(names)), name, fixes))
                elif kind == "delete":
                    out.append(("delete", source, name))
        out.append(("collect", last or draw(st.booleans())))
    return out


# --- applying steps and reading the warehouse ---------------------------------------------------

def write(raw: Path, source: str, name: str, rows: list[str]) -> None:
    """Write one raw file: the source's header, then its rows."""
    path = raw / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADERS[source], *rows]) + "\n", encoding="utf-8")


def apply(base: Path, step: tuple) -> None:
    """Do one step in base: change raw/ or run collect."""
    raw = base / "raw"
    if step[0] == "write":
        write(raw, *step[1:])
    elif step[0] == "reexport":
        source, old, new, fixes = step[1:]
        if (raw / old).exists() and old != new:
            rows = (raw / old).read_text(encoding="utf-8").splitlines()[1:]
            for at, row in fixes:
                rows[at % len(rows)] = row
            write(raw, source, new, rows)
    elif step[0] == "delete":
        (raw / step[2]).unlink(missing_ok=True)
    else:
        run(base, prune=step[1])
        assert_balanced(base)  # after every run, not only the last


def run(base: Path, prune: bool):
    """collect base/raw into base/warehouse.duckdb."""
    return collect(base, base / "warehouse.duckdb", base / "sources.yml", progress=False,
                   prune=prune)


def new_world(base: Path, template: Path | None = None) -> Path:
    """An empty data folder with the tiny declarations (and a copy of ``template``'s empty
    warehouse: creating one costs more than a collect)."""
    (base / "raw").mkdir(parents=True)
    (base / "sources.yml").write_text(SOURCES_YML, encoding="utf-8")
    if template:
        shutil.copy(template / "warehouse.duckdb", base / "warehouse.duckdb")
    return base


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A data folder whose warehouse was collected once from no files (tables, no rows)."""
    base = new_world(tmp_path_factory.mktemp("template"))
    run(base, prune=True)
    return base


CONTENT = {  # business content of each table: every column but load times (also in raw_record,
    # where a superseded record keeps its value issues as JSON)
    "stg_customer": "SELECT * FROM stg_customer",
    "stg_order_line": "SELECT * FROM stg_order_line",
    "quarantine": "SELECT * EXCLUDE (loaded_at) REPLACE (regexp_replace(raw_record, "
                  "'\"loaded_at\":\"[^\"]*\"', '', 'g') AS raw_record) FROM quarantine",
    "value_issue": "SELECT * EXCLUDE (loaded_at) FROM value_issue",
    "load_audit": "SELECT source, file, fingerprint, rows_read, rows_loaded, rows_quarantined, "
                  "values_nulled FROM load_audit WHERE status <> 'pruned'",
}


def content(base: Path) -> dict[str, list[tuple]]:
    """Each table's rows, sorted, as comparable tuples."""
    with duckdb.connect(str(base / "warehouse.duckdb"), read_only=True) as con:
        return {t: con.execute(f"{q} ORDER BY ALL").fetchall() for t, q in CONTENT.items()}


def assert_balanced(base: Path) -> None:
    """Every file of the audit balances, and its counts are the rows the warehouse holds."""
    with duckdb.connect(str(base / "warehouse.duckdb"), read_only=True) as con:
        off = con.execute("""
            SELECT a.file, a.rows_read, a.rows_loaded, a.rows_quarantined,
                   (SELECT count(*) FROM stg_customer s WHERE s.file = a.file)
                   + (SELECT count(*) FROM stg_order_line s WHERE s.file = a.file) AS staged,
                   (SELECT count(*) FROM quarantine q WHERE q.file = a.file) AS held,
                   (SELECT count(*) FROM value_issue v WHERE v.file = a.file) AS nulled,
                   a.values_nulled
            FROM load_audit a
            WHERE a.rows_read <> a.rows_loaded + a.rows_quarantined OR a.rows_loaded <> staged
               OR a.rows_quarantined <> held OR a.values_nulled <> nulled""").fetchall()
    assert off == [], f"unbalanced audit rows: {off}"


# --- the property -------------------------------------------------------------------------------

A1, A2 = "R1,1,2024-03-01 09:00,M1,A,1,1.50,1.50", "R1,1,2024-03-01 09:00,M1,A,2,1.50,3.00"
WINNER_PRUNED = [  # a correction supersedes a line; the correction's file goes: the line is back
    ("write", "tills", "tills/t_a.csv", [A1]), ("write", "tills", "tills/t_b.csv", [A2]),
    ("collect", False), ("delete", "tills", "tills/t_b.csv"), ("collect", True)]
LOSER_CHANGED = [  # the superseded version's file is changed, then the winner's file goes
    ("write", "members", "members/m_a.csv", ["M1,ann@example.com,soon"]),
    ("write", "members", "members/m_b.csv", ["M1,bob@example.com,2024-01-05 10:00"]),
    ("collect", True), ("write", "members", "members/m_a.csv", ["M1,cy@example.com,soon"]),
    ("collect", False), ("delete", "members", "members/m_b.csv"), ("collect", True)]


@settings(settings.get_profile("collect-property"))
@given(sequence=steps())
@example(sequence=WINNER_PRUNED)
@example(sequence=LOSER_CHANGED)
def test_any_interleaving_of_collect_runs_ends_like_one_clean_collect(template, sequence):
    with tempfile.TemporaryDirectory() as tmp:
        live, clean = (new_world(Path(tmp) / name, template) for name in ("live", "clean"))
        for step in sequence:
            apply(live, step)
        for path in (live / "raw").rglob("*.csv"):
            target = clean / "raw" / path.relative_to(live / "raw")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
        run(clean, prune=True)
        assert_balanced(live)
        assert_balanced(clean)
        got, want = content(live), content(clean)
        for table in CONTENT:
            assert got[table] == want[table], table
