"""sqlft/sql/compare.py: (gold SQL, predicted SQL, verdict) pairs executed on an in-memory DuckDB fixture.

Run: .venv/bin/pytest tests/test_compare.py -q
"""

from __future__ import annotations

import pytest

from sqlft.sql import compare as compare_module
from sqlft.sql.compare import MODES, compare_results, result_eq
from sqlft.sql.duckdb_sandbox import DuckdbSandbox
from sqlft.sql.sandbox import ExecutionResult
from sqlft.sql.dialect import has_order_by, strip_distinct

FIXTURE = """
CREATE TABLE singer (singer_id INTEGER, name VARCHAR, country VARCHAR, age INTEGER, net_worth DOUBLE);
INSERT INTO singer VALUES
    (1, 'Joe', 'France', 52, 30.5),
    (2, 'Ann', 'Spain', 31, 12.25),
    (3, 'Li', NULL, 25, 7.0),
    (4, 'Timo', 'France', 43, 1.1),
    (5, 'Rosa', 'Spain', 29, 0.1);
CREATE TABLE concert (concert_id INTEGER, singer_id INTEGER, year INTEGER);
INSERT INTO concert VALUES (1, 1, 2014), (2, 1, 2015), (3, 2, 2015), (4, 4, 2014);
"""

# (id, gold_sql, pred_sql, mode, float_tolerance, expected verdict)
CASES = [
    ("same_query", "SELECT name FROM singer", "SELECT name FROM singer", "spider", 0.0, True),
    ("column_permutation", "SELECT name, age FROM singer", "SELECT age, name FROM singer", "spider", 0.0, True),
    ("column_permutation_3", "SELECT singer_id, name, age FROM singer", "SELECT age, singer_id, name FROM singer", "spider", 0.0, True),
    ("permutation_needs_right_pairing", "SELECT x, y FROM (VALUES (1, 2), (2, 1)) AS v(x, y)",
     "SELECT x, y FROM (VALUES (1, 1), (2, 2)) AS v(x, y)", "spider", 0.0, False),
    ("order_ignored_without_order_by", "SELECT name FROM singer", "SELECT name FROM singer ORDER BY name DESC", "spider", 0.0, True),
    ("order_checked_with_order_by", "SELECT name FROM singer ORDER BY age", "SELECT name FROM singer ORDER BY age DESC", "spider", 0.0, False),
    ("same_order", "SELECT name FROM singer ORDER BY age", "SELECT name FROM singer ORDER BY age ASC", "spider", 0.0, True),
    ("order_and_permutation", "SELECT name, age FROM singer ORDER BY age", "SELECT age, name FROM singer ORDER BY age", "spider", 0.0, True),
    ("order_in_subquery_only", "SELECT name FROM (SELECT name FROM singer ORDER BY age LIMIT 3) AS t",
     "SELECT name FROM (SELECT name, age FROM singer ORDER BY age LIMIT 3) AS t ORDER BY name", "spider", 0.0, True),
    ("wrong_rows", "SELECT name FROM singer WHERE age > 30", "SELECT name FROM singer WHERE age > 20", "spider", 0.0, False),
    ("wrong_column_count", "SELECT name FROM singer", "SELECT name, age FROM singer", "spider", 0.0, False),
    ("wrong_column", "SELECT name FROM singer", "SELECT country FROM singer", "spider", 0.0, False),
    # Duplicates: a multiset, except in "set" mode.
    ("duplicates_count", "SELECT country FROM singer",
     "SELECT country FROM singer UNION ALL SELECT country FROM singer WHERE age > 50", "spider", 0.0, False),
    ("duplicates_count_set_mode", "SELECT country FROM singer",
     "SELECT country FROM singer UNION ALL SELECT country FROM singer WHERE age > 50", "set", 0.0, True),
    ("duplicates_vs_distinct_strict", "SELECT country FROM singer", "SELECT DISTINCT country FROM singer", "strict", 0.0, False),
    ("duplicates_vs_distinct_set", "SELECT country FROM singer", "SELECT DISTINCT country FROM singer", "set", 0.0, True),
    # "spider" strips every DISTINCT before running (as the official keep_distinct=False does).
    ("distinct_stripped_spider", "SELECT DISTINCT country FROM singer", "SELECT country FROM singer", "spider", 0.0, True),
    ("distinct_kept_strict", "SELECT DISTINCT country FROM singer", "SELECT country FROM singer", "strict", 0.0, False),
    ("count_distinct_spider", "SELECT count(DISTINCT country) FROM singer", "SELECT count(country) FROM singer", "spider", 0.0, True),
    ("count_distinct_strict", "SELECT count(DISTINCT country) FROM singer", "SELECT count(country) FROM singer", "strict", 0.0, False),
    ("set_mode_ignores_order", "SELECT name FROM singer ORDER BY age", "SELECT name FROM singer ORDER BY age DESC", "set", 0.0, True),
    ("set_mode_still_needs_same_values", "SELECT name FROM singer", "SELECT name FROM singer WHERE age > 30", "set", 0.0, False),
    # Floats: exact by default (the official rule), tolerance on request.
    ("float_exact_same", "SELECT avg(age) FROM singer", "SELECT avg(age) FROM singer", "spider", 0.0, True),
    ("float_exact_differs", "SELECT net_worth FROM singer", "SELECT net_worth * (1 + 1e-12) FROM singer", "spider", 0.0, False),
    ("float_within_tolerance", "SELECT net_worth FROM singer", "SELECT net_worth * (1 + 1e-12) FROM singer", "spider", 1e-9, True),
    ("float_outside_tolerance", "SELECT net_worth FROM singer", "SELECT net_worth * 1.01 FROM singer", "spider", 1e-9, False),
    ("float_tolerance_and_permutation", "SELECT name, net_worth FROM singer",
     "SELECT net_worth + 1e-12, name FROM singer ORDER BY name", "spider", 1e-9, True),
    ("float_tolerance_keeps_rows_paired", "SELECT name, net_worth FROM singer",
     "SELECT name, CASE WHEN name = 'Joe' THEN 12.25 WHEN name = 'Ann' THEN 30.5 ELSE net_worth END FROM singer",
     "spider", 1e-9, False),
    ("rounding_is_not_equal", "SELECT avg(net_worth) FROM singer", "SELECT round(avg(net_worth), 2) FROM singer", "spider", 0.0, False),
    # Empty results.
    ("empty_equals_empty", "SELECT name FROM singer WHERE age > 100", "SELECT name FROM singer WHERE 1 = 0", "spider", 0.0, True),
    ("empty_equals_empty_any_columns", "SELECT name FROM singer WHERE age > 100", "SELECT name, age FROM singer WHERE 1 = 0", "spider", 0.0, True),
    ("empty_vs_rows", "SELECT name FROM singer WHERE age > 100", "SELECT name FROM singer", "spider", 0.0, False),
    # NULLs compare equal to NULLs (Python None == None).
    ("nulls_equal", "SELECT name, country FROM singer",
     "SELECT name, CASE WHEN country IS NULL THEN NULL ELSE country END FROM singer", "spider", 0.0, True),
    ("null_vs_empty_string", "SELECT country FROM singer", "SELECT coalesce(country, '') FROM singer", "spider", 0.0, False),
    ("null_vs_zero", "SELECT NULL", "SELECT 0", "spider", 0.0, False),
    # Types: Python equality, as the official code (1 == 1.0, True == 1, 1 != '1').
    ("int_equals_double", "SELECT count(*) FROM singer", "SELECT CAST(count(*) AS DOUBLE) FROM singer", "spider", 0.0, True),
    ("int_equals_decimal", "SELECT count(*) FROM singer", "SELECT CAST(count(*) AS DECIMAL(10, 2)) FROM singer", "spider", 0.0, True),
    ("int_vs_string", "SELECT count(*) FROM singer", "SELECT CAST(count(*) AS VARCHAR) FROM singer", "spider", 0.0, False),
    ("bool_equals_int", "SELECT 1", "SELECT true", "spider", 0.0, True),
    ("decimal_0_1_vs_double_0_1", "SELECT 0.1", "SELECT CAST(0.1 AS DOUBLE)", "spider", 0.0, False),
    ("decimal_0_1_vs_double_0_1_tolerance", "SELECT 0.1", "SELECT CAST(0.1 AS DOUBLE)", "spider", 1e-9, True),
    ("list_values", "SELECT [1, 2] AS l", "SELECT list_value(1, 2)", "spider", 0.0, True),
    ("struct_values", "SELECT {'a': 1} AS s", "SELECT {'a': 2} AS s", "spider", 0.0, False),
    # A typical Spider pair: join + group + order.
    ("join_group_order", "SELECT T1.name, count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id "
     "GROUP BY T1.singer_id, T1.name ORDER BY count(*) DESC, T1.name",
     "SELECT s.name, count(c.concert_id) AS n FROM concert c JOIN singer s USING (singer_id) GROUP BY s.name ORDER BY n DESC, s.name",
     "spider", 0.0, True),
]


@pytest.fixture(scope="module")
def box():
    with DuckdbSandbox.from_sql(FIXTURE, timeout_s=5) as sandbox:
        yield sandbox


@pytest.mark.parametrize(
    "gold_sql, pred_sql, mode, tolerance, expected",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_verdicts(box: DuckdbSandbox, gold_sql: str, pred_sql: str, mode: str, tolerance: float, expected: bool) -> None:
    if mode == "spider":  # the caller's job in "spider" mode, as in eval_exec_match
        gold_sql, pred_sql = strip_distinct(gold_sql), strip_distinct(pred_sql)
    gold, pred = box.execute(gold_sql), box.execute(pred_sql)
    assert gold.status == "ok", gold.error
    assert pred.status == "ok", pred.error
    verdict = compare_results(gold, pred, order_matters=has_order_by(gold_sql), mode=mode, float_tolerance=tolerance)
    assert verdict is expected
    # Comparing a result with itself is always true.
    assert compare_results(gold, gold, order_matters=True, mode=mode, float_tolerance=tolerance)


def _result(rows: list[tuple], status: str = "ok", truncated: bool = False) -> ExecutionResult:
    width = len(rows[0]) if rows else 1
    return ExecutionResult(status, [f"c{i}" for i in range(width)], rows, truncated, "", 0.0)


def test_failed_prediction_is_wrong_and_failed_gold_is_a_harness_error() -> None:
    gold = _result([(1,)])
    for status in ("error", "timeout", "rejected"):
        assert compare_results(gold, _result([], status), order_matters=False) is False
    with pytest.raises(ValueError, match="harness error"):
        compare_results(_result([], "error"), gold, order_matters=False)
    with pytest.raises(ValueError, match="unknown comparison mode"):
        compare_results(gold, gold, order_matters=False, mode="bird")
    assert MODES == ("spider", "strict", "set")


def test_truncated_results() -> None:
    rows = [(i,) for i in range(3)]
    assert compare_results(_result(rows, truncated=True), _result(rows, truncated=True), order_matters=False)
    assert not compare_results(_result(rows, truncated=True), _result(rows), order_matters=False)


# (id, result1, result2, order_matters, expected): result_eq on literal rows, as in the official tests.
RESULT_EQ_CASES = [
    ("swap_two_columns", [(1, "a"), (2, "b")], [("b", 2), ("a", 1)], False, True),
    ("swap_with_order", [(1, "a"), (2, "b")], [("a", 1), ("b", 2)], True, True),
    ("wrong_order", [(1, "a"), (2, "b")], [("b", 2), ("a", 1)], True, False),
    ("same_values_other_pairing", [(1, 1, 2), (2, 2, 1)], [(1, 2, 1), (2, 1, 2)], False, True),
    ("bag_not_set", [(1,), (1,), (2,)], [(1,), (2,), (2,)], False, False),
    ("identical_columns", [(1, 1, 1, 1, 2)], [(2, 1, 1, 1, 1)], False, True),
]


@pytest.mark.parametrize(
    "result1, result2, order_matters, expected",
    [case[1:] for case in RESULT_EQ_CASES],
    ids=[case[0] for case in RESULT_EQ_CASES],
)
def test_result_eq(result1: list[tuple], result2: list[tuple], order_matters: bool, expected: bool) -> None:
    assert result_eq(result1, result2, order_matters=order_matters) is expected


def test_many_columns_and_rows_stay_fast(monkeypatch) -> None:
    """10 columns of identical values would be 10! permutations naively, 8 columns of 10,000 rows 8!; each
    comparison tries one column permutation (counted, not timed: a loaded machine cannot break it)."""
    tried = []
    permutations = compare_module._permutations

    def counted(*args):
        for perm in permutations(*args):
            tried.append(perm)
            yield perm
    monkeypatch.setattr(compare_module, "_permutations", counted)

    wide = [tuple([7] * 10)] * 50
    assert result_eq(wide, wide, order_matters=False) and len(tried) == 1
    rows = [tuple((i * (c + 1)) % 97 for c in range(8)) for i in range(10_000)]
    shuffled = [tuple(reversed(r)) for r in reversed(rows)]
    tried.clear()
    assert result_eq(rows, shuffled, order_matters=False) and tried == [tuple(reversed(range(8)))]
    tried.clear()
    assert not result_eq(rows, shuffled[:-1] + [shuffled[0]], order_matters=False) and len(tried) <= 1
