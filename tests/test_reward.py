"""sqlft/training/reward.py: the GRPO execution reward scores answers as `sqlft eval` does, on real and synthesized databases.

match 1, runs-but-wrong 0.1, error 0, timeout 0, hostile SQL 0 with the database file unchanged; gold that does not
run drops the record with its reason; penalties and the logged rates.
"""

import hashlib
import sqlite3
from pathlib import Path

import duckdb
import pytest

from sqlft.data.examples import record_example
from sqlft.training.reward import ExecutionReward, RewardSettings, outcome_rates
from sqlft.prompts.record import sql_record

DDL = "CREATE TABLE singer (singer_id INT, name TEXT, country TEXT, age INT)"
GOLD = "SELECT name FROM singer WHERE country = 'France'"
ROWS = [(i, f"singer {i}", ("France", "Spain", "Peru")[i % 3], 20 + i) for i in range(60)]

MATCH = "SELECT s.name FROM singer AS s WHERE s.country = 'France'"
RUNS_WRONG = "SELECT name FROM singer WHERE country = 'Spain'"
ERROR = "SELECT nickname FROM singer"
# CPU-bound, little memory: >= 12^10 row combinations (a synthesized table has ~12 rows); stopped by the sandbox's
# timer (DuckDB) or progress handler (SQLite).
RUNAWAY = ("SELECT count(*) FROM singer a, singer b, singer c, singer d, singer e, singer f, singer g, singer h, "
           "singer i, singer j WHERE a.name || b.name || c.name || d.name || j.name LIKE '%zz%'")
HOSTILE = [
    "DROP TABLE singer",
    "DELETE FROM singer",
    "UPDATE singer SET name = 'x'",
    "INSERT INTO singer VALUES (999, 'x', 'France', 1)",
    "ATTACH 'other.db' AS other",
    "COPY singer TO 'stolen.csv'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "CREATE TABLE t AS SELECT * FROM singer",
    "PRAGMA writable_schema = 1",
]


def _sqlite_db(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute(DDL)
    con.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)", ROWS)
    con.commit()
    con.close()
    return path


def _duckdb_db(path: Path) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute(DDL)
        con.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)", ROWS)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reward(tmp_path: Path, kind: str, gold: str = GOLD, **settings) -> tuple[ExecutionReward, Path | None]:
    """A reward over one record: on a real SQLite or DuckDB file (db_path), or schema-only (synthesized)."""
    db = {"sqlite": lambda: _sqlite_db(tmp_path / "music.sqlite"),
          "duckdb": lambda: _duckdb_db(tmp_path / "music.duckdb"), "synth": lambda: None}[kind]()
    meta = {"db_path": str(db)} if db else {}
    record = sql_record(DDL, "Which singers are from France?", gold, db_id="music", meta=meta)
    dialect = "duckdb" if kind == "duckdb" else "sqlite"
    reward = ExecutionReward.build([record_example(record, "r0")],
                                   RewardSettings(dialect=dialect, timeout_s=1.0, **settings))
    return reward, db


@pytest.fixture(params=["sqlite", "duckdb", "synth"])
def kind(request) -> str:
    return request.param


def test_match_runs_wrong_error_timeout(tmp_path, kind):
    reward, _ = _reward(tmp_path, kind)
    try:
        assert reward.dropped == {}
        cases = {MATCH: ("match", 1.0), RUNS_WRONG: ("mismatch", 0.1), ERROR: ("pred_exec_error", 0.0),
                 RUNAWAY: ("pred_timeout", 0.0), "I do not know.": ("pred_parse_error", 0.0)}
        for sql, (status, value) in cases.items():
            outcome = reward.score("r0", sql)
            assert (outcome.status, outcome.reward) == (status, value), (sql, outcome)
        # the answer as the model writes it: SQL inside prose or a code fence is extracted as eval does
        assert reward.score("r0", f"Here it is:\n```sql\n{MATCH}\n```").reward == 1.0
        if kind == "synth":  # synthesized: several instances, and the answer must match on every one
            assert len(reward.targets["r0"].inst.paths) == 3
    finally:
        reward.close()


def test_hostile_sql_earns_zero_and_changes_nothing(tmp_path, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where ATTACH/COPY would write, were they allowed
    reward, db = _reward(tmp_path, kind)
    files = [db] if db else reward.targets["r0"].inst.paths
    before = {p: _sha(p) for p in files}
    try:
        for sql in HOSTILE:
            outcome = reward.score("r0", sql)
            assert outcome.reward == 0.0 and outcome.status != "match", (sql, outcome)
        # A second statement is never run: the answer's SQL is its first statement, as eval reads it.
        assert reward.score("r0", "SELECT 1; DROP TABLE singer").status == "mismatch"
        assert reward.score("r0", MATCH).reward == 1.0  # the table is still there, rows unchanged
    finally:
        reward.close()
    assert {p: _sha(p) for p in files} == before
    assert not (tmp_path / "stolen.csv").exists() and not (tmp_path / "other.db").exists()


def test_gold_that_does_not_run_drops_the_record_with_its_reason(tmp_path):
    reward, _ = _reward(tmp_path, "sqlite", gold="SELECT nickname FROM singer")
    try:
        assert reward.targets == {}
        assert "the gold SQL does not run" in reward.dropped["r0"] and "nickname" in reward.dropped["r0"]
        with pytest.raises(KeyError, match="dropped"):
            reward.score("r0", MATCH)
    finally:
        reward.close()


def test_weights_and_penalties(tmp_path):
    reward, _ = _reward(tmp_path, "sqlite", match=2.0, runs=0.5, malformed_penalty=0.25, overlong_penalty=0.5,
                        max_completion_tokens=4, stop_token_ids=(2,))
    try:
        assert reward.score("r0", MATCH).reward == 2.0
        assert reward.score("r0", RUNS_WRONG).reward == 0.5
        assert reward.score("r0", "no idea").reward == -0.25
        assert reward.score("r0", ERROR).reward == 0.0  # runs into an error: no malformed penalty, just 0
        cut = reward.score("r0", MATCH, completion_ids=[7, 7, 7, 7])  # used the whole budget without ending
        assert cut.overlong and cut.reward == 1.5
        ended = reward.score("r0", MATCH, completion_ids=[7, 7, 7, 2])  # ended on a stop token at the budget
        assert not ended.overlong and ended.reward == 2.0
    finally:
        reward.close()


def test_trl_call_returns_one_reward_per_completion_and_logs_rates(tmp_path):
    reward, _ = _reward(tmp_path, "synth")
    logged = {}
    try:
        rewards = reward(prompts=["p"] * 4, completions=[MATCH, RUNS_WRONG, ERROR, MATCH],
                         completion_ids=[[1]] * 4, record_id=["r0"] * 4, log_metric=logged.__setitem__,
                         trainer_state=None, log_extra=None)
        assert rewards == [1.0, 0.1, 0.0, 1.0]
        assert logged == {"execution/match_rate": 0.5, "execution/run_wrong_rate": 0.25,
                          "execution/error_rate": 0.25, "execution/timeout_rate": 0.0, "execution/overlong_rate": 0.0}
        with pytest.raises(ValueError, match="record_id"):
            reward(prompts=["p"], completions=[MATCH])
    finally:
        reward.close()
    assert outcome_rates([])["match_rate"] == 0.0
