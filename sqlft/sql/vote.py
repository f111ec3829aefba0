"""Voting over executed results: of several answers to one question, keep the one whose result most answers give.

Every candidate is run on the question's database (all synthesized instances, for schema-only records); those that
run are grouped by result (Spider's comparison: rows as a multiset, columns up to permutation); the biggest group
wins. On a tie, the greedy answer (candidate 0) wins when its group is among the biggest; otherwise the earliest
candidate of the earliest tied group. When nothing runs the greedy answer stays. Model-free: eval, serve and the page
share it.

Answers that return no rows at all do not vote while some answer returns rows: a question about the data almost
always has an answer in it, and a small model's wrong answers often agree on "nothing" (a filter on a value that
is not there). Measured on 100 held-out Spider questions, 8 answers each, schema repair on: 28 -> 33 right; on
the other 100, chosen beforehand as the check: see benchmarks/RESULTS.md "Voting that skips empty results".

    chosen = vote(["SELECT ...", "SELECT ...", ...], run)   # run(sql) -> one result per instance, or None
    chosen.index, chosen.ran, chosen.votes, chosen.changed
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlft.sql.compare import compare_results
from sqlft.sql.sandbox import ExecutionResult


@dataclass
class Vote:
    index: int  # the chosen candidate (0: the greedy answer)
    candidates: int  # answers voted on
    ran: int  # answers that ran (on every instance)
    votes: int  # answers that gave the chosen result (0 when none ran)
    changed: bool  # the chosen answer's SQL differs from the greedy answer's
    empty: int = 0  # answers that ran but returned no rows, left out of the vote because others returned rows

    def to_dict(self) -> dict:
        return {"candidates": self.candidates, "ran": self.ran, "votes": self.votes, "changed": self.changed,
                "chosen": self.index, "empty": self.empty}


def same_result(a: list[ExecutionResult], b: list[ExecutionResult], float_tolerance: float = 0.0) -> bool:
    """Two answers agree when their results are equal on every instance (order ignored: which answer is right
    about the order cannot be told without the gold)."""
    return len(a) == len(b) and all(
        compare_results(x, y, order_matters=False, mode="spider", float_tolerance=float_tolerance)
        for x, y in zip(a, b))


def vote(candidate_sqls: list[str], run: Callable[[str], list[ExecutionResult] | None],
         float_tolerance: float = 0.0, skip_empty: bool = True) -> Vote:
    """candidate_sqls[0] is the greedy answer's SQL. run(sql) gives its results (one per database instance) when it
    runs everywhere, else None. Identical SQL texts are run once. skip_empty: answers with no rows on any instance
    do not vote while another answer has rows (False: every answer that runs votes)."""
    results: dict[str, list[ExecutionResult] | None] = {}
    groups: list[list[int]] = []  # candidate indices per distinct result, in order of first appearance
    ran = 0
    for i, sql in enumerate(candidate_sqls):
        if sql not in results:
            results[sql] = run(sql) if sql.strip() else None
        result = results[sql]
        if result is None:
            continue
        ran += 1
        for group in groups:
            if same_result(results[candidate_sqls[group[0]]], result, float_tolerance):
                group.append(i)
                break
        else:
            groups.append([i])
    if not groups:
        return Vote(0, len(candidate_sqls), 0, 0, False)
    empty = 0
    if skip_empty:
        with_rows = [g for g in groups if any(r.rows for r in results[candidate_sqls[g[0]]])]
        if with_rows:
            empty = sum(len(g) for g in groups) - sum(len(g) for g in with_rows)
            groups = with_rows
    biggest = max(len(g) for g in groups)
    tied = [g for g in groups if len(g) == biggest]
    chosen = 0 if any(0 in g for g in tied) else tied[0][0]
    return Vote(chosen, len(candidate_sqls), ran, biggest,
                candidate_sqls[chosen].strip() != candidate_sqls[0].strip(), empty)
