"""Till receipts and web orders of one chunk: numbering, returns, row defects, text columns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import world as w
from .behaviour import Lines, draw_lines, draw_returns
from .clock import DAY, END_S, START_S, format_timestamp, month_index, to_local
from .defects import (defect_frame, duplicate_rows, impossible_timestamps, key_with_line,
                      pick_defect_rows, set_values)
from .output import RAW_COLUMNS, monthly_file
from .people import at_local_time
from .records import money
from .text import ids

STORE_IDS = np.array([s[0] for s in w.STORES] + [w.TRAINING_STORE[0]])
TRAINING = len(w.STORES)  # index of the training till in STORE_IDS
LINE_FIELDS = ("order", "line_no", "product", "category", "qty", "unit_pence")


@dataclass
class OrderSet:
    """Orders (one row each) and their lines; `lines.order` indexes the orders."""

    t: np.ndarray
    person_id: np.ndarray  # '' for anonymous and test orders
    lines: Lines
    extra: dict = field(default_factory=dict)  # per-order columns of the channel


def lines_at(ln: Lines, idx) -> Lines:
    """Lines selected by index or mask (order indices unchanged)."""
    return Lines(*(getattr(ln, f)[idx] for f in LINE_FIELDS))


def concat_orders(parts: list[OrderSet]) -> OrderSet:
    """Stack order sets, shifting line -> order indices."""
    offset, shifted = 0, []
    for part in parts:
        ln = part.lines
        shifted.append(Lines(ln.order + offset, *(getattr(ln, f) for f in LINE_FIELDS[1:])))
        offset += len(part.t)
    lines = Lines(*(np.concatenate([getattr(x, f) for x in shifted]) for f in LINE_FIELDS))
    extra = {k: (pa.concat_arrays([part.extra[k] for part in parts])
                 if isinstance(parts[0].extra[k], pa.Array)
                 else np.concatenate([part.extra[k] for part in parts])) for k in parts[0].extra}
    return OrderSet(np.concatenate([x.t for x in parts]),
                    np.concatenate([x.person_id for x in parts]), lines, extra)


def orders_of(pur_person_ids: np.ndarray, t: np.ndarray, lines: Lines, keep: np.ndarray,
              extra: dict) -> OrderSet:
    """The orders selected by boolean `keep`, with their lines re-indexed."""
    idx = np.flatnonzero(keep)
    remap = np.full(len(keep), -1)
    remap[idx] = np.arange(len(idx))
    m = keep[lines.order]
    ln = lines_at(lines, m)
    ln.order = remap[ln.order]
    return OrderSet(t[idx], pur_person_ids[idx], ln, extra)


def staff_test_orders(rng, k: int, products: pd.DataFrame,
                      channel: int) -> tuple[np.ndarray, Lines]:
    """Times and 1-2 lines of k test orders (training till or QA team) over the window."""
    day = (START_S + rng.random(k) * (END_S - START_S - DAY)).astype(np.int64) // DAY
    t = at_local_time(rng, day * DAY, np.full(k, 0 if channel == 0 else 2))
    lines = draw_lines(rng, np.full(k, 3), rng.integers(0, 3, k), products)
    return t, lines_at(lines, lines.line_no <= 2)


@dataclass
class Built:
    """Rows of one source ready to write, plus order ids and truth for the chunk."""

    columns: dict  # raw columns in file row order
    month: np.ndarray  # month index of each row (sorted)
    replaced: dict  # row -> raw text of a malformed line
    order_ids: pa.Array  # id of each input order
    truth_orders: dict
    defects: list
    identity: pd.DataFrame | None = None


@dataclass
class _Rows:
    """Sale and return lines of a channel before formatting."""

    order: np.ndarray  # order (sale) index of each row
    receipt: np.ndarray  # receipt index: = order for sales and web, new receipts for POS returns
    line_no: np.ndarray
    src_line: np.ndarray  # index into the sale lines
    sign: np.ndarray  # -1 for returns
    t: np.ndarray


def _with_returns(rng, orders: OrderSet, rates, channel: int, new_receipts: bool,
                  returnable: np.ndarray) -> tuple[_Rows, np.ndarray]:
    """Sale lines plus return lines; POS returns get new receipts, web returns new line numbers.

    Returns the rows and, per receipt, the instant (sales first, then return receipts).
    """
    ln = orders.lines
    idx = np.flatnonzero(returnable[ln.order])
    r, r_t = draw_returns(rng, lines_at(ln, idx), orders.t, rates.return_line,
                          np.full(len(orders.t), channel))
    r = idx[r]
    srt = np.lexsort((ln.line_no[r], ln.order[r]))
    r, r_t = r[srt], r_t[srt]
    uniq, first, group = np.unique(ln.order[r], return_index=True, return_inverse=True)
    rank = np.arange(len(r)) - first[group] + 1
    n_sales = len(orders.t)
    if new_receipts:
        receipt_t = np.concatenate([orders.t, r_t[first]])
        r_receipt, r_line_no = n_sales + group, rank
    else:
        n_lines = np.bincount(ln.order, minlength=n_sales)
        receipt_t = orders.t
        r_receipt, r_line_no = ln.order[r], n_lines[ln.order[r]] + rank
    rows = _Rows(order=np.concatenate([ln.order, ln.order[r]]),
                 receipt=np.concatenate([ln.order, r_receipt]),
                 line_no=np.concatenate([ln.line_no, r_line_no]),
                 src_line=np.concatenate([np.arange(len(ln.order)), r]),
                 sign=np.repeat(np.array([1, -1]), [len(ln.order), len(r)]),
                 t=np.concatenate([orders.t[ln.order], r_t]))
    return rows, receipt_t


def _row_order(rng, rows: _Rows, numbers: np.ndarray, rate: float):
    """File order (time, order number, line) with some rows doubled; second copies' positions."""
    order = np.lexsort((rows.line_no, numbers[rows.receipt], rows.t))
    take, doubled = duplicate_rows(rng, len(order), rate)
    second = np.searchsorted(take, doubled) + 1  # take is a sorted repeat of a range
    return order[take], second


def _files(source: str, month: np.ndarray) -> np.ndarray:
    labels = np.array([monthly_file(source, m) for m in range(int(month.max()) + 1)]) \
        if len(month) else np.empty(0, dtype=object)
    return labels[month].astype(object)


def _single_rows(n: int, second: np.ndarray) -> np.ndarray:
    """Rows that are not part of a doubled pair (safe to corrupt)."""
    ok = np.ones(n, dtype=bool)
    ok[second] = False
    ok[second - 1] = False
    return ok


def _corrupt(rng, cols: dict, ts_col: str, style: str, candidates: np.ndarray, rates,
             files: np.ndarray, keys: pa.Array, defects: list, source: str,
             first_chunk: bool) -> np.ndarray:
    """Impossible timestamps on a few rows; returns other rows chosen to be malformed."""
    n = len(files)
    bad = pick_defect_rows(rng, candidates, rates.impossible_date, n, first_chunk)
    rest = candidates[~np.isin(candidates, bad, assume_unique=True)] if len(bad) else candidates
    broken = pick_defect_rows(rng, rest, rates.malformed_line, n, first_chunk)
    ts = np.asarray(cols[ts_col].to_numpy(zero_copy_only=False), dtype=str)[bad]
    cols[ts_col] = set_values(cols[ts_col], bad, impossible_timestamps(rng, ts, style))
    k = np.asarray(keys.to_numpy(zero_copy_only=False), dtype=object)
    defects.append(defect_frame(source, files[bad], k[bad], "impossible_date"))
    defects.append(defect_frame(source, files[broken], k[broken], "malformed_line"))
    return broken


def _row_defects(source: str, files, keys: pa.Array, second, is_return, defects: list) -> None:
    """Duplicate rows and returns of a source."""
    k = np.asarray(keys.to_numpy(zero_copy_only=False), dtype=object)
    defects.append(defect_frame(source, files[second], k[second], "duplicate_row"))
    first_copy = np.ones(len(k), dtype=bool)
    first_copy[second] = False
    ret = is_return & first_copy
    defects.append(defect_frame(source, files[ret], k[ret], "return"))


def build_pos(rng, sales: OrderSet, rates, products: pd.DataFrame, number,
              first_chunk: bool) -> Built:
    """Till lines: sales, returns (new receipt, negative qty and total) and till defects.

    `sales.extra` holds 'store' (index into STORE_IDS) and 'card' per receipt; `number(t)`
    hands out consecutive receipt numbers in time order.
    """
    store = sales.extra["store"]
    rows, receipt_t = _with_returns(rng, sales, rates, 0, True, store != TRAINING)
    n_sales = len(sales.t)
    numbers = number(receipt_t)
    receipt_no = ids("R", numbers, 10)
    origin = np.concatenate([np.arange(n_sales), _origin_of_returns(rows, n_sales)])
    pos_order, second = _row_order(rng, rows, numbers, rates.duplicate_row)
    rcpt, src = rows.receipt[pos_order], rows.src_line[pos_order]
    local = to_local(rows.t[pos_order])
    month = month_index(local)
    qty = sales.lines.qty[src] * rows.sign[pos_order]
    unit = sales.lines.unit_pence[src]
    cols = {
        "receipt_no": receipt_no.take(pa.array(rcpt)), "line_no": rows.line_no[pos_order],
        "sold_at": format_timestamp(local, "uk"),
        "store_id": pa.array(STORE_IDS).take(pa.array(store[origin[rcpt]])),
        "loyalty_card": pa.array(sales.extra["card"], pa.string()).take(pa.array(origin[rcpt])),
        "sku": _skus(products, sales.lines.product[src]),
        "qty": qty, "unit_price": money(unit), "line_total": money(qty * unit),
    }
    files = _files("pos", month)
    keys = key_with_line(cols["receipt_no"], cols["line_no"])
    defects: list = []
    _row_defects("pos", files, keys, second, rows.sign[pos_order] < 0, defects)
    training = (store[origin[rcpt]] == TRAINING) & (cols["line_no"] == 1)
    training[second] = False
    defects.append(defect_frame("pos", files[training],
                                cols["receipt_no"].filter(pa.array(training)), "test_record"))
    candidates = np.flatnonzero(_single_rows(len(rcpt), second))
    broken = _corrupt(rng, cols, "sold_at", "uk", candidates, rates, files, keys, defects, "pos",
                      first_chunk)
    replaced = _csv_missing_field(rng, cols, broken, RAW_COLUMNS["pos"], ";")
    truth = {"source": np.full(len(receipt_t), "pos", dtype=object), "order_id": receipt_no,
             "person_id": sales.person_id[origin]}
    return Built(cols, month, replaced, receipt_no.slice(0, n_sales), truth, defects)


def _skus(products: pd.DataFrame, product: np.ndarray) -> pa.Array:
    return pa.array(products["sku"].to_numpy(dtype=str)).take(pa.array(product))


def _origin_of_returns(rows: _Rows, n_sales: int) -> np.ndarray:
    """Original sale of each return receipt (return receipts are numbered n_sales, ...)."""
    is_ret = rows.receipt >= n_sales
    out = np.zeros(rows.receipt[is_ret].max() - n_sales + 1 if is_ret.any() else 0, np.int64)
    out[rows.receipt[is_ret] - n_sales] = rows.order[is_ret]
    return out


def _csv_missing_field(rng, cols: dict, rows: np.ndarray, names: list[str], sep: str) -> dict:
    """Raw text of malformed CSV lines: the row with one field left out."""
    out = {}
    for r in rows:  # a handful of rows per chunk
        values = [_text(cols[c], r) for c in names]
        drop = int(rng.integers(1, len(values)))
        out[int(r)] = sep.join(v for i, v in enumerate(values) if i != drop)
    return out


def _text(col, r: int) -> str:
    v = col[r]
    v = v.as_py() if isinstance(v, pa.Scalar) else v
    return "" if v is None else str(v)


def build_web(rng, orders: OrderSet, rates, products: pd.DataFrame, number,
              first_chunk: bool) -> Built:
    """Web order lines as JSON: sales, returns (negative quantity, new line_no) and defects.

    `orders.extra` holds the typed customer fields per order and 'is_test' for QA orders.
    """
    ex = orders.extra
    rows, _ = _with_returns(rng, orders, rates, 1, False, ~ex["is_test"])
    numbers = number(orders.t)
    order_id = ids("W", numbers, 9)
    pos_order, second = _row_order(rng, rows, numbers, rates.duplicate_row)
    o, src = rows.order[pos_order], rows.src_line[pos_order]
    take = pa.array(o)
    t = rows.t[pos_order]
    month = month_index(t)  # web files are split by UTC month
    cols = {"order_id": order_id.take(take), "line_no": rows.line_no[pos_order],
            "created_at": format_timestamp(t, "iso_z")}
    for c in ("email", "first_name", "last_name", "phone", "street", "postcode", "city"):
        cols[c] = ex[c].take(take)
    cols["marketing_opt_in"] = ex["marketing_opt_in"][o]
    cols["sku"] = _skus(products, orders.lines.product[src])
    cols["quantity"] = orders.lines.qty[src] * rows.sign[pos_order]
    cols["unit_price"] = money(orders.lines.unit_pence[src])
    files = _files("webshop", month)
    keys = key_with_line(cols["order_id"], cols["line_no"])
    defects: list = []
    _row_defects("webshop", files, keys, second, rows.sign[pos_order] < 0, defects)
    # Identity key of each row: the normalised e-mail (computed per order).
    encoded = pc.dictionary_encode(pc.utf8_lower(pc.utf8_trim(ex["email"], " ")))
    code_of_order = encoded.indices.to_numpy(zero_copy_only=False)
    emails = encoded.dictionary.to_numpy(zero_copy_only=False)
    code = code_of_order[o]
    first_line = cols["line_no"] == 1
    first_line[second] = False
    test = ex["is_test"][o]
    qa = first_line & test
    defects.append(defect_frame("webshop", files[qa], cols["order_id"].filter(pa.array(qa)),
                                "test_record"))
    no_phone = first_line & ~test & pc.equal(ex["phone"], "").to_numpy(zero_copy_only=False)[o]
    defects.append(defect_frame("webshop", files[no_phone],
                                cols["order_id"].filter(pa.array(no_phone)), "missing_value:phone"))
    candidates = _safe_web_rows(rng, code, _single_rows(len(o), second) & ~test)
    broken = _corrupt(rng, cols, "created_at", "iso", candidates, rates, files, keys, defects,
                      "webshop", first_chunk)
    text = json_lines(cols)
    replaced = {}
    for r in broken:  # a handful of rows: cut the JSON line short
        line = text[int(r)].as_py()
        replaced[int(r)] = line[: int(len(line) * rng.uniform(0.3, 0.8))]
    cols["_json"] = text
    person_of_code = np.empty(len(emails), dtype=object)
    person_of_code[code_of_order] = orders.person_id
    first_seen = pd.DataFrame({"code": code, "file": files}).drop_duplicates("code")
    identity = pd.DataFrame({"email": np.asarray(emails, dtype=object)[first_seen["code"]],
                             "person_id": person_of_code[first_seen["code"]],
                             "file": first_seen["file"].to_numpy()})
    truth = {"source": np.full(len(orders.t), "webshop", dtype=object), "order_id": order_id,
             "person_id": orders.person_id}
    return Built(cols, month, replaced, order_id, truth, defects, identity)


def _safe_web_rows(rng, inverse: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Rows that may be corrupted without losing an identity record: their e-mail (code)
    appears on at least two other rows, and at most one corrupted row per e-mail."""
    counts = np.bincount(inverse)
    cand = np.flatnonzero(ok & (counts[inverse] >= 3))
    cand = cand[rng.permutation(len(cand))]
    _, first = np.unique(inverse[cand], return_index=True)
    return np.sort(cand[first])


def _json_str(values) -> pa.Array:
    """JSON string literals (values are known to contain no quotes or backslashes)."""
    arr = pa.array(np.asarray(values, dtype=str), pa.string()) if not isinstance(values, pa.Array) \
        else values
    return pc.binary_join_element_wise('"', arr, '"', "")


def json_lines(cols: dict) -> pa.Array:
    """One JSON object per row, assembled column-wise with pyarrow."""
    pieces = []
    for c in RAW_COLUMNS["webshop"]:
        v = cols[c]
        if c in ("line_no", "quantity"):
            lit = pc.cast(pa.array(np.asarray(v, dtype=np.int64)), pa.string())
        elif c == "unit_price":
            lit = v
        elif c == "marketing_opt_in":
            lit = pa.array(np.where(np.asarray(v, dtype=bool), "true", "false"), pa.string())
        elif c == "phone":
            lit = pc.if_else(pc.equal(v, ""), "null", _json_str(v))
        else:
            lit = _json_str(v)
        pieces += [("{" if not pieces else ",") + f'"{c}":', lit]
    pieces.append("}")
    return pc.binary_join_element_wise(*pieces, "")
