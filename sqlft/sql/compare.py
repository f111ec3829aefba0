"""Execution-result comparison following the Spider test-suite rules (taoyds/test-suite-sql-eval, exec_eval.py).

Modes (record which one produced a number):
  "spider": the official default. Its DISTINCT stripping (keep_distinct=False) happens BEFORE execution and is
            the caller's job: run sqlft.sql.dialect.strip_distinct on both gold and predicted SQL, then compare here.
  "strict": the same comparison on queries run with DISTINCT kept.
  "set":    BIRD-style: duplicate rows ignored and row order never matters.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from itertools import chain
from typing import Any

from sqlft.sql.sandbox import ExecutionResult

MODES = ("spider", "strict", "set")


def compare_results(
    gold: ExecutionResult,
    pred: ExecutionResult,
    *,
    order_matters: bool,
    mode: str = "spider",
    float_tolerance: float = 0.0,
) -> bool:
    """Whether pred denotes the same result as gold (official result_eq, with the additions noted).

    order_matters: the gold SQL has a top-level ORDER BY (sqlft.sql.dialect.has_order_by).
    float_tolerance: 0 compares values exactly with Python ==, as the official code does (1 == 1.0, 1 != '1');
    > 0 lets floats/decimals differ by that relative tolerance (math.isclose, same value as absolute
    tolerance near zero). A pred that is not ok is simply wrong; a gold that is not ok is a harness error.
    """
    if mode not in MODES:
        raise ValueError(f"unknown comparison mode {mode!r}: expected one of {', '.join(MODES)}")
    if gold.status != "ok":
        raise ValueError(f"the gold query did not run ({gold.status}: {gold.error}); this is a harness error")
    if pred.status != "ok":
        return False
    if gold.truncated != pred.truncated:
        return False  # one has more than max_rows rows, the other not; both truncated: compare what was kept
    gold_rows, pred_rows = _freeze_rows(gold.rows), _freeze_rows(pred.rows)
    if mode == "set":
        gold_rows, pred_rows = list(dict.fromkeys(gold_rows)), list(dict.fromkeys(pred_rows))
        order_matters = False
    return result_eq(gold_rows, pred_rows, order_matters=order_matters, float_tolerance=float_tolerance)


def result_eq(
    result1: list[tuple],
    result2: list[tuple],
    *,
    order_matters: bool,
    float_tolerance: float = 0.0,
) -> bool:
    """The official result_eq: is there a column permutation of result2 that makes it equal to result1,
    as a bag of rows (or a list, when order matters)?

    Matched: empty == empty first (whatever the columns); different row counts or column counts are
    unequal; equality is Python's. Changed, with the same verdicts: the official quick_rej (a row-wise
    necessary condition) and its permutation pruning from 20 randomly sampled rows (above 3 columns) are
    replaced by a deterministic necessary condition, equal per-column value multisets, and permutations
    that only swap identical columns are tried once.
    """
    if not result1 and not result2:
        return True
    if len(result1) != len(result2):
        return False
    n1, n2 = len(result1[0]), len(result2[0])
    if n1 != n2:
        return False
    columns1, columns2 = list(zip(*result1)), list(zip(*result2))
    # candidates[i]: the pred columns that could be gold column i.
    candidates = [
        [j for j in range(n2) if _same_bag(columns1[i], columns2[j], float_tolerance)] for i in range(n1)
    ]
    for perm in _permutations(candidates, columns2):
        permuted = result2 if perm == tuple(range(n2)) else [tuple(row[j] for j in perm) for row in result2]
        if _rows_equal(result1, permuted, order_matters, float_tolerance):
            return True
    return False


def _permutations(candidates: list[list[int]], columns2: list[tuple]) -> Iterator[tuple[int, ...]]:
    """Column permutations within the candidates; of pred columns with identical values, only the first
    unused one is offered, since swapping them gives the same table."""
    n = len(candidates)
    first_twin = {j: next(k for k in range(n) if columns2[k] == columns2[j]) for j in range(len(columns2))}
    chosen: list[int] = []

    def extend(i: int) -> Iterator[tuple[int, ...]]:
        if i == n:
            yield tuple(chosen)
            return
        for j in candidates[i]:
            if j in chosen:
                continue
            twins = [k for k in range(first_twin[j], j) if first_twin[k] == first_twin[j]]
            if any(k not in chosen for k in twins):
                continue  # an earlier identical column is still free: it yields the same table
            chosen.append(j)
            yield from extend(i + 1)
            chosen.pop()

    yield from extend(0)


def _rows_equal(rows1: list[tuple], rows2: list[tuple], order_matters: bool, tol: float) -> bool:
    if order_matters:
        return all(_row_close(a, b, tol) for a, b in zip(rows1, rows2))
    if tol == 0:
        return Counter(rows1) == Counter(rows2)  # the official multiset_eq
    return _bags_close(rows1, rows2, tol)


def _bags_close(rows1: list[tuple], rows2: list[tuple], tol: float) -> bool:
    """Multiset equality with tolerant numbers: rows are bucketed by their non-numeric values, then matched
    greedily inside a bucket after sorting by the numbers."""
    buckets: dict[tuple, list[list[tuple]]] = {}
    for side, rows in enumerate((rows1, rows2)):
        for row in rows:
            key = tuple(None if _is_number(v) else v for v in row)
            buckets.setdefault(key, [[], []])[side].append(row)
    for left, right in buckets.values():
        if len(left) != len(right):
            return False
        left.sort(key=_row_sort_key)
        right.sort(key=_row_sort_key)
        unused = list(right)
        for row in left:
            match = next((k for k, other in enumerate(unused) if _row_close(row, other, tol)), None)
            if match is None:
                return False
            unused.pop(match)
    return True


def _same_bag(col1: Sequence[Any], col2: Sequence[Any], tol: float) -> bool:
    """Same multiset of values in two columns (a necessary condition for them to be matched)."""
    if tol == 0:
        return Counter(col1) == Counter(col2)
    return all(_close(a, b, tol) for a, b in zip(sorted(col1, key=_sort_key), sorted(col2, key=_sort_key)))


def _row_close(row1: tuple, row2: tuple, tol: float) -> bool:
    if tol == 0:
        return row1 == row2
    return len(row1) == len(row2) and all(_close(a, b, tol) for a, b in zip(row1, row2))


def _is_inexact(value: Any) -> bool:
    return isinstance(value, (float, Decimal))


def _close(a: Any, b: Any, tol: float) -> bool:
    if tol > 0 and (_is_inexact(a) or _is_inexact(b)) and _is_number(a) and _is_number(b):
        return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)
    return a == b


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _sort_key(value: Any) -> tuple:
    """A total order over mixed values: None, numbers, strings, then anything else by type name and text."""
    if value is None:
        return (0, 0.0, "")
    if _is_number(value) or isinstance(value, bool):
        f = float(value)
        return (1, 0.0 if math.isnan(f) else f, "")
    if isinstance(value, str):
        return (2, 0.0, value)
    return (3, 0.0, type(value).__name__ + repr(value))


def _row_sort_key(row: tuple) -> tuple:
    return tuple(_sort_key(v) for v in row)


def _freeze(value: Any) -> Any:
    """Hashable form of any value: DuckDB returns lists for LIST columns and dicts for STRUCT/MAP columns;
    PostgreSQL drivers return multiranges, arrays of ranges, JSON documents ... Whatever a driver returns
    compares, by its content where it can be walked, else by its type and text (never a TypeError)."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _freeze(v)) for k, v in value.items())
    try:
        hash(value)
        return value
    except TypeError:
        pass
    if isinstance(value, Mapping):
        return tuple((_freeze(k), _freeze(v)) for k, v in value.items())
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    return (type(value).__name__, repr(value))


def _freeze_row(row: Sequence[Any]) -> tuple:
    return tuple(_freeze(v) for v in row)


_PLAIN = frozenset({str, int, float, bytes, bool, type(None)})  # hashable as they are


def _freeze_rows(rows: list) -> list[tuple]:
    """Every row frozen; rows of tuples of plain values (SQLite's, most of DuckDB's) are already hashable and
    come back as they are, checked by type in C: freezing value by value took a fifth of Spider scoring."""
    if set(map(type, rows)) <= {tuple} and set(map(type, chain.from_iterable(rows))) <= _PLAIN:
        return list(rows)
    return [_freeze_row(r) for r in rows]
