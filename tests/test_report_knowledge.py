"""The periodic report's knowledge sections (knowledge/report_sections.py) on a hand-made warehouse."""

from datetime import date

import duckdb
import pytest

from crm_helpers import warehouse as wh
from crm_helpers.knowledge import report_sections as rs

SCORES = [  # customer_id, as_of, segment, clv, churn_probability
    (1, "2025-06-30", "Loyal", 100.0, 0.1), (2, "2025-06-30", "Loyal", 50.0, 0.2),
    (3, "2025-06-30", "At risk", 80.0, 0.5), (4, "2025-06-30", "At risk", 10.0, 0.9),
    (1, "2025-12-31", "Loyal", 120.0, 0.1), (2, "2025-12-31", "At risk", 40.0, 0.6),
    (3, "2025-12-31", "At risk", 70.0, 0.5), (5, "2025-12-31", "New", 30.0, 0.3),
    (1, "2026-06-30", "Loyal", 999.0, 0.9),  # after the period: never read
]
OFFERS = [  # customer_id, as_of, rank, product, category, score
    (1, "2025-12-31", 1, "A1", "Audio", 0.9), (1, "2025-12-31", 2, "B1", "Books", 0.4),
    (2, "2025-12-31", 1, "A2", "Audio", 0.7), (2, "2025-12-31", 2, "A1", "Audio", 0.5),
    (3, "2025-12-31", 1, "B2", "Books", 0.8), (1, "2025-06-30", 1, "B1", "Books", 5.0),
]


@pytest.fixture
def hand_warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    raw = duckdb.connect(str(path))
    raw.execute("CREATE TABLE customer_scores (customer_id BIGINT, as_of DATE, segment VARCHAR, p_alive DOUBLE, "
                "expected_purchases_365d DOUBLE, clv DOUBLE, churn_probability DOUBLE, model_version VARCHAR)")
    raw.executemany("INSERT INTO customer_scores VALUES (?, ?, ?, NULL, NULL, ?, ?, 'test')", SCORES)
    raw.execute("CREATE TABLE next_best_offer (customer_id BIGINT, as_of DATE, rank INTEGER, product VARCHAR, "
                "category VARCHAR, score DOUBLE, reason VARCHAR)")
    raw.executemany("INSERT INTO next_best_offer VALUES (?, ?, ?, ?, ?, ?, 'test')", OFFERS)
    raw.execute("CREATE TABLE dim_product AS SELECT * FROM (VALUES ('A1', 'Headphones'), ('A2', 'Speaker'), "
                "('B1', 'Novel'), ('B2', 'Atlas')) t(sku, product_name)")
    raw.close()
    return path


def test_customer_base_reads_the_latest_scoring_up_to_the_period_end(hand_warehouse):
    with wh.reading(hand_warehouse) as con:
        base = rs.customer_base(con, date(2026, 1, 31), n=2)
    assert base.as_of == date(2025, 12, 31) and base.previous_as_of == date(2025, 6, 30)
    seg = base.segments
    assert seg.loc["At risk", "customers"] == 2 and seg.loc["At risk", "clv"] == pytest.approx(110.0)
    assert seg["share"].sum() == pytest.approx(1.0) and seg.index[0] == "Loyal"  # largest CLV first
    r = base.risk
    assert r.customers == 4 and r.mean_churn_probability == pytest.approx(1.5 / 4)
    assert r.expected_lost == pytest.approx(1.5) and r.total_clv == pytest.approx(260.0)
    assert r.clv_at_risk == pytest.approx(12 + 24 + 35 + 9)
    assert base.at_risk["customer_id"].tolist() == [3, 2]
    assert set(base.at_risk.columns) == {"customer_id", "segment", "clv", "churn_probability", "clv_at_risk"}


def test_migration_counts_moves_entries_and_exits(hand_warehouse):
    with wh.reading(hand_warehouse) as con:
        m = rs.customer_base(con, date(2025, 12, 31)).migration
    assert m.loc["Loyal", "Loyal"] == 1 and m.loc["Loyal", "At risk"] == 1 and m.loc["At risk", "At risk"] == 1
    assert m.loc["At risk", rs.NOT_SCORED] == 1 and m.loc[rs.NOT_SCORED, "New"] == 1
    assert m.to_numpy().sum() == 5 and m.index[-1] == rs.NOT_SCORED


def test_one_scoring_says_so_and_no_scoring_is_none(hand_warehouse):
    with wh.reading(hand_warehouse) as con:
        first = rs.customer_base(con, date(2025, 9, 30))
        assert first.migration is None and "Only one scoring" in rs.base_words(first)
        assert rs.customer_base(con, date(2025, 1, 31)) is None
        assert rs.cross_sell(con, date(2025, 1, 31)) is None


def test_missing_tables_give_a_sentence_not_an_error(tmp_path):
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    with wh.reading(path) as con:
        assert rs.customer_base(con, date(2025, 12, 31)) is None and rs.cross_sell(con, date(2025, 12, 31)) is None
    words = rs.missing_words("customer_scores", date(2025, 12, 31))
    assert "notebook 05" in words and "customer_scores" in words


def test_cross_sell_by_category(hand_warehouse):
    with wh.reading(hand_warehouse) as con:
        sell = rs.cross_sell(con, date(2026, 3, 31))
    c = sell.categories
    assert sell.as_of == date(2025, 12, 31) and c.index.tolist() == ["Audio", "Books"]
    assert c.loc["Audio", "customers"] == 2 and c.loc["Audio", "offers"] == 3
    assert c.loc["Audio", "score_sum"] == pytest.approx(2.1) and c.loc["Audio", "top_product"] == "A1"
    assert c.loc["Books", "top_product_name"] == "Atlas"
    assert "not a probability" in rs.cross_sell_words(sell)


def test_words_quote_the_numbers(hand_warehouse):
    with wh.reading(hand_warehouse) as con:
        base = rs.customer_base(con, date(2025, 12, 31))
    words = rs.base_words(base)
    assert "4 customers" in words and "kept their segment" in words and "2 customers" in words  # 1.5 rounds to 2
    assert "66.7%" in words  # customers 1 and 3 of the 3 scored both times
