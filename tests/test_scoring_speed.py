"""The speed paths of `sqlft eval --predictions` (issue 26) give the same answers as the plain ones: scoring
processes (forked) and threads, a gold remembered for the next question that shares it, the C-level row checks in
compare and the SQLite sandbox, mismatch descriptions on large results."""

import sqlite3
import time
from pathlib import Path

import pytest

from sqlft.scoring import execution as scoring
from sqlft.sql.compare import _freeze_row, _freeze_rows, compare_results
from sqlft.data.examples import Example
from sqlft.sql.sandbox import ExecutionResult, value_size
from sqlft.sql.sqlite_sandbox import SqliteSandbox, _chunk_size


@pytest.fixture
def concert(tmp_path: Path) -> Path:
    path = tmp_path / "concert.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)")
    con.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)",
                    [(i, f"name{i}", ["France", "US", "Peru"][i % 3], 20 + i % 40) for i in range(300)])
    con.commit()
    con.close()
    return path


PAIRS = [  # (gold, pred): right, wrong, erroring and unparseable predictions
    ("SELECT count(*) FROM singer", "SELECT count(*) FROM singer"),
    ("SELECT count(*) FROM singer", "SELECT count(singer_id) FROM singer"),
    ("SELECT name FROM singer WHERE age > 50", "SELECT name FROM singer WHERE age >= 50"),
    ("SELECT country, count(*) FROM singer GROUP BY country", "SELECT count(*), country FROM singer GROUP BY 2"),
    ("SELECT name FROM singer ORDER BY age DESC LIMIT 3", "SELECT name FROM singer ORDER BY age LIMIT 3"),
    ("SELECT DISTINCT country FROM singer", "SELECT country FROM singer GROUP BY country"),
    ("SELECT name FROM singer", "SELECT nam FROM singer"),
    ("SELECT avg(age) FROM singer", "SELECT avg(age FROM singer"),
]


def examples_for(db: Path, n: int) -> list[Example]:
    """n examples cycling through PAIRS, each pair twice in a row (Spider's paraphrases share one gold)."""
    return [Example(id=str(i), question="", gold_sqls=[PAIRS[i // 2 % len(PAIRS)][0]], db_id="concert",
                    database=str(db), pred_sql=PAIRS[i // 2 % len(PAIRS)][1]) for i in range(n)]


def score(examples: list[Example], workers: int) -> list[dict]:
    rules = scoring.Scoring("sqlite", "spider", 0.0)
    instances = scoring.prepare_instances(examples, "sqlite", 1, workers)
    try:
        return scoring.score_all(examples, {}, instances, rules, workers)
    finally:
        for inst in instances.values():
            for box in inst.boxes:
                box.close()


def test_forked_scoring_processes_give_the_rows_threads_give(concert):
    examples = examples_for(concert, scoring.PROCESS_MIN + 32)
    in_processes = score(examples, 2)  # >= PROCESS_MIN examples on files: processes (forked: no model here)
    instances, rules = prepared(examples)
    try:
        one_by_one = [scoring.score_one(e, {}, instances, rules) for e in examples]
    finally:
        for inst in instances.values():
            inst.boxes[0].close()
    assert in_processes == one_by_one
    statuses = {row["status"] for row in in_processes}
    assert statuses == {"match", "mismatch", "pred_exec_error", "pred_parse_error"}


def prepared(examples: list[Example]):
    instances = scoring.prepare_instances(examples, "sqlite", 1, 1)
    scoring.open_sandboxes(instances, 5.0)
    return instances, scoring.Scoring("sqlite", "spider", 0.0)


class CountingSandbox(SqliteSandbox):
    """The real sandbox, counting the statements it is asked to run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ran: list[str] = []

    def execute(self, sql, **kwargs):
        self.ran.append(sql)
        return super().execute(sql, **kwargs)


def test_a_gold_shared_by_consecutive_questions_runs_once(concert):
    examples = examples_for(concert, 4)  # four questions, one gold: count(*)
    instances, rules = prepared(examples)
    inst = next(iter(instances.values()))
    inst.boxes[0].close()
    inst.boxes = [CountingSandbox(concert)]
    try:
        rows = [scoring.score_one(e, {}, instances, rules) for e in examples]
    finally:
        inst.boxes[0].close()
    # the gold once, then from memory; the four predictions: 5 statements, not 8
    assert inst.boxes[0].ran == ["SELECT count(*) FROM singer"] * 3 + ["SELECT count(singer_id) FROM singer"] * 2
    assert [row["status"] for row in rows] == ["match", "match", "match", "match"]  # count(singer_id): no NULLs
    assert len(inst.recent_golds) <= scoring.RECENT_GOLDS


def test_a_gold_that_timed_out_is_not_remembered(concert):
    slow = "SELECT count(*) FROM " + ", ".join(f"singer s{i}" for i in range(8))  # 300^8 rows
    inst = scoring.Instances([concert], synthetic=False, engine="sqlite")
    inst.boxes = [SqliteSandbox(concert, timeout_s=0.2)]
    try:
        assert scoring._gold_results(slow, inst)[0].status == "timeout"
        assert slow not in inst.recent_golds
        ok = scoring._gold_results("SELECT count(*) FROM singer", inst)
        assert inst.recent_golds["SELECT count(*) FROM singer"] is ok
    finally:
        inst.boxes[0].close()


def test_mismatch_on_large_results_is_described_quickly():
    gold = ExecutionResult("ok", ["a", "b"], [(i, f"x{i}") for i in range(5000)])
    pred = ExecutionResult("ok", ["a", "b"], [(i, f"x{i}") for i in range(3, 5003)])
    start = time.perf_counter()
    reason = scoring.describe_mismatch(gold, pred, order_matters=False)
    assert time.perf_counter() - start < 2.0  # quadratic before: minutes
    assert reason == ("gold 5000 rows, pred 5000 rows; only in gold: (0, 'x0'), (1, 'x1'), (2, 'x2'); "
                      "only in pred: (5000, 'x5000'), (5001, 'x5001'), (5002, 'x5002')")


def test_plain_rows_are_compared_as_they_are_and_others_frozen():
    plain = [(1, "a", None, 2.5, b"x", True), (2, "b", None, 3.5, b"y", False)]
    assert _freeze_rows(plain) == [_freeze_row(r) for r in plain]
    nested = [(1, [1, 2], {"k": [3]})]
    assert _freeze_rows(nested) == [(1, (1, 2), (("k", (3,)),))]
    lists = [[1, "a"], [2, "b"]]  # rows as lists (a driver's rows): frozen into tuples
    assert _freeze_rows(lists) == [(1, "a"), (2, "b")]
    gold = ExecutionResult("ok", ["x"], [(1, [1, 2])])
    assert compare_results(gold, ExecutionResult("ok", ["x"], [(1, [1, 2])]), order_matters=False)
    assert not compare_results(gold, ExecutionResult("ok", ["x"], [(1, [2, 1])]), order_matters=False)


def test_result_size_by_chunk_counts_as_cell_by_cell():
    class Text(str):
        pass

    chunks = [[("ab", 1, None, b"xyz", 2.5)], [], [(Text("abcd"), "x")], [(1, 2), (3, 4)], [(True, 10**30)]]
    for chunk in chunks:
        assert _chunk_size(chunk) == sum(value_size(v) for row in chunk for v in row)
