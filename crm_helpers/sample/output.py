"""Writing raw and truth files: headers once, then each chunk's rows appended month by month.

Delimiters and encodings come from the source declarations (sample/sources.yml), so the files
are written exactly as declared. CSV goes through pyarrow (fast, no quoting unless a value needs
it), latin-1 files through pandas, JSON lines are assembled as text with pyarrow.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import yaml

from crm_helpers.config import SAMPLE_SOURCES_YML

from .clock import month_label

# Column order of every raw file, by source name in sources.yml.
RAW_COLUMNS = {
    "products": ["sku", "product_name", "category", "tier", "list_price", "unit_cost"],
    "stores": ["store_id", "store_name", "region", "channel_type"],
    "crm_master": ["customer_ref", "first_name", "last_name", "email", "phone", "street",
                   "postcode", "city", "birth_date", "signup_time", "signup_channel",
                   "loyalty_card", "email_opt_in", "sms_opt_in", "do_not_contact"],
    "pos": ["receipt_no", "line_no", "sold_at", "store_id", "loyalty_card", "sku", "qty",
            "unit_price", "line_total"],
    "webshop": ["order_id", "line_no", "created_at", "email", "first_name", "last_name", "phone",
                "street", "postcode", "city", "marketing_opt_in", "sku", "quantity", "unit_price"],
    "callcentre": ["ticket_id", "contact_time", "caller_name", "caller_email", "caller_phone",
                   "caller_postcode", "reason_code", "outcome"],
    "campaigns": ["campaign_id", "campaign_name", "channel", "start_date", "end_date", "offer",
                  "offer_type"],
    "campaign_contacts": ["campaign_id", "customer_ref", "contact_date", "channel", "group"],
    "campaign_responses": ["campaign_id", "customer_ref", "response_date", "response_type",
                           "order_id", "response_value"],
}
MONTHLY = {"crm_master": "crm_master/signups_{}.csv", "pos": "pos/pos_{}.csv",
           "webshop": "webshop/orders_{}.jsonl", "callcentre": "callcentre/contacts_{}.csv"}
QUOTED_COLUMNS = {"caller_name"}
TRUTH_COLUMNS = {
    "people": ["person_id", "segment", "region", "acquisition_date", "acquisition_channel",
               "dropout_date", "purchase_rate_per_month", "dropout_prob", "email_opt_in",
               "sms_opt_in", "do_not_contact", "initial_tier", "final_tier", "existing_base",
               "prior_purchases", "alive_at_start", "alive_at_holdout_start", "alive_at_end",
               "dropout_cause", "email_on_file", "phone_on_file", "web_share"],
    "tiers": ["person_id", "quarter", "tier"],
    "identity": ["source", "source_record_id", "person_id", "variation"],
    "households": ["household_id", "person_id", "relation", "shares_phone", "shares_email"],
    "orders": ["source", "order_id", "person_id"],
    "campaign_outcomes": ["campaign_id", "person_id", "segment", "group", "alive_at_start",
                          "recency_days", "web_share", "y0", "y1", "purchased_in_window",
                          "incremental", "true_uplift"],
    "defects": ["source", "file", "record_key", "defect"],
}


def monthly_file(source: str, month: int) -> str:
    """Path relative to raw/ of a source's file for month index `month`."""
    return MONTHLY[source].format(month_label(month))


def month_runs(month: np.ndarray):
    """(month, start, stop) of consecutive runs in a month-sorted array."""
    if not len(month):
        return
    cut = np.flatnonzero(np.diff(month)) + 1
    starts = np.concatenate([[0], cut])
    stops = np.concatenate([cut, [len(month)]])
    for a, b in zip(starts, stops):
        yield int(month[a]), int(a), int(b)


def _as_text(values) -> pa.Array:
    """Column as a pyarrow array (strings stay strings, numbers stay numbers)."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    arr = np.asarray(values)
    if arr.dtype.kind in "UO":
        return pa.array(arr, pa.string())
    return pa.array(arr)


def string_body(arr: pa.Array) -> pa.Buffer:
    """The concatenated bytes of a string array without nulls (no per-row Python)."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1]
    return arr.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def csv_bytes(table: pa.Table, delimiter: str) -> bytes:
    """UTF-8 CSV rows without header; values are quoted only if some value needs it."""
    buf = io.BytesIO()
    try:
        pcsv.write_csv(table, buf, pcsv.WriteOptions(include_header=False, delimiter=delimiter,
                                                     quoting_style="none"))
    except pa.ArrowInvalid:  # a value contains the delimiter or a quote: quote strings
        buf = io.BytesIO()
        pcsv.write_csv(table, buf, pcsv.WriteOptions(include_header=False, delimiter=delimiter,
                                                     quoting_style="needed"))
    return buf.getvalue()


def quoted_csv_text(table: pa.Table, delimiter: str) -> str:
    """CSV rows where free-text columns (QUOTED_COLUMNS) are always quoted, others never.

    The call-centre export quotes caller names ("LAST, First") on every row, as its system
    does; empty values stay unquoted (NULL for most CSV readers).
    """
    pieces = []
    for name in table.column_names:
        col = pc.cast(table[name].combine_chunks(), pa.string())
        if name in QUOTED_COLUMNS:
            col = pc.binary_join_element_wise(
                '"', pc.replace_substring(col, '"', '""'), '"', "")
        elif pc.any(pc.match_substring(col, delimiter)).as_py():
            raise ValueError(f"column {name} contains the delimiter {delimiter!r}")
        pieces += [pc.fill_null(col, ""), delimiter]
    pieces[-1] = "\n"
    lines = pc.binary_join_element_wise(*pieces, "")
    return string_body(lines).to_pybytes().decode("utf-8")


class Output:
    """Files of one generated sample under out_dir (raw/, truth/, sources.yml)."""

    def __init__(self, out_dir: Path) -> None:
        self.base = Path(out_dir)
        self.raw = self.base / "raw"
        self.truth = self.base / "truth"
        spec = yaml.safe_load(SAMPLE_SOURCES_YML.read_text(encoding="utf-8"))["sources"]
        self.spec = {name: {"delimiter": s.get("delimiter", ","), "encoding": s["encoding"],
                            "format": s["format"]} for name, s in spec.items()}
        self.globs = [s["files"] for s in spec.values()]
        self.files_written: set[str] = set()

    # --- setup -----------------------------------------------------------------------------
    def start(self, campaign_ids: list[str]) -> None:
        """Create folders, copy sources.yml, remove stale raw files and start the truth files.

        Raw files matching a source's declared glob are removed first (a smaller earlier sample
        in the same folder would otherwise leave months behind); other files are left alone.
        Raw files are created with their header on first write, so months without any
        records have no file rather than a header-only one (which confuses CSV sniffers).
        """
        for sub in ("products", "pos", "crm_master", "webshop", "callcentre", "campaigns"):
            (self.raw / sub).mkdir(parents=True, exist_ok=True)
        self.truth.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SAMPLE_SOURCES_YML, self.base / "sources.yml")
        for pattern in self.globs:
            for stale in self.raw.glob(pattern):
                stale.unlink()
        for cid in campaign_ids:  # every campaign has contacts and responses files
            self._header("campaign_contacts", f"campaigns/contacts_{cid}.csv")
            self._header("campaign_responses", f"campaigns/responses_{cid}.csv")
        for name, cols in TRUTH_COLUMNS.items():
            (self.truth / f"{name}.csv").write_text(",".join(cols) + "\n", encoding="utf-8")

    def _header(self, source: str, rel: str) -> None:
        spec = self.spec[source]
        path = self.raw / rel
        text = "" if spec["format"] == "jsonl" else \
            spec["delimiter"].join(RAW_COLUMNS[source]) + "\n"
        path.write_bytes(text.encode(spec["encoding"]))
        self.files_written.add(rel)

    # --- raw ------------------------------------------------------------------------------
    def write_table(self, source: str, rel: str, columns: dict) -> None:
        """Write a whole small file (catalogue, stores, campaigns)."""
        self._header(source, rel)
        self.append_rows(source, rel, columns)

    def append_rows(self, source: str, rel: str, columns: dict,
                    replaced_lines: dict[int, str] | None = None) -> None:
        """Append rows to a raw CSV/JSONL file; `replaced_lines` swaps given rows for raw text
        (used for malformed lines)."""
        spec = self.spec[source]
        names = RAW_COLUMNS[source]
        if rel not in self.files_written:
            self._header(source, rel)
        if spec["format"] == "jsonl":
            body = columns["_json"]
            table = None
        else:
            table = pa.table({c: _as_text(columns[c]) for c in names})
        with open(self.raw / rel, "ab") as f:
            cuts = sorted(replaced_lines or {})
            start = 0
            n = len(body) if table is None else table.num_rows
            for row in cuts + [n]:
                if row > start:
                    part = (body if table is None else table).slice(start, row - start)
                    self._write_part(f, spec, part, table is None)
                if row < n:
                    f.write((replaced_lines[row] + "\n").encode(spec["encoding"]))
                start = row + 1

    @staticmethod
    def _write_part(f, spec: dict, part, is_json: bool) -> None:
        if is_json:
            f.write(string_body(pc.binary_join_element_wise(part, "\n", "")))
            return
        if spec["encoding"].lower().replace("-", "") in ("utf8",):
            f.write(csv_bytes(part, spec["delimiter"]))
        else:
            f.write(quoted_csv_text(part, spec["delimiter"]).encode(spec["encoding"]))

    # --- truth ----------------------------------------------------------------------------
    def append_truth(self, name: str, frame: pd.DataFrame | dict) -> None:
        """Append rows to truth/<name>.csv (columns in the declared order)."""
        cols = TRUTH_COLUMNS[name]
        table = pa.table({c: _as_text(frame[c]) for c in cols})
        with open(self.truth / f"{name}.csv", "ab") as f:
            f.write(csv_bytes(table, ","))

    def write_truth_frame(self, name: str, frame: pd.DataFrame) -> None:
        """Write a complete truth table (small: written once at the end)."""
        frame.to_csv(self.truth / f"{name}.csv", index=False, lineterminator="\n")
