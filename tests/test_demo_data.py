"""sqlft/data/demo: every gold query runs on its database and returns rows, contexts match the databases,
train and eval are disjoint and of the promised size."""

import json
import re
from collections import Counter

import duckdb
import pytest

from sqlft.sql.database import defog_database_names, prepare_database, schema_ddl
from sqlft.data.demo import EVAL_PATH, TRAIN_PATH

FIELDS = {"db_id", "question", "context", "answer", "difficulty", "category"}


def read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


TRAIN, EVAL = read(TRAIN_PATH), read(EVAL_PATH)


@pytest.fixture(scope="module")
def connections(tmp_path_factory):
    # Built into a private cache: tests leave the user's ~/.cache alone.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SQLFT_CACHE", str(tmp_path_factory.mktemp("cache")))
        paths = {db: prepare_database(db) for db in defog_database_names()}
        cons = {db: duckdb.connect(str(path), read_only=True) for db, path in paths.items()}
        yield paths, cons
        for con in cons.values():
            con.close()


def test_sizes_and_split():
    assert len(TRAIN) + len(EVAL) >= 200 and len(EVAL) == 40
    assert not {r["question"] for r in TRAIN} & {r["question"] for r in EVAL}
    everything = TRAIN + EVAL
    assert len({r["question"] for r in everything}) == len(everything)
    assert all(set(r) == FIELDS for r in everything)
    assert {r["difficulty"] for r in everything} == {"easy", "medium", "hard"}
    assert set(Counter(r["db_id"] for r in EVAL)) == set(defog_database_names())  # eval covers every database
    assert set(Counter(r["difficulty"] for r in EVAL)) == {"easy", "medium", "hard"}


@pytest.mark.parametrize("record", TRAIN + EVAL, ids=lambda r: f"{r['db_id']}:{r['question'][:40]}")
def test_gold_sql_runs_and_context_matches(record, connections):
    paths, cons = connections
    rows = cons[record["db_id"]].execute(record["answer"]).fetchall()
    assert rows, "gold SQL returned no rows"
    tables = re.findall(r"^CREATE TABLE (\S+) \(", record["context"], flags=re.MULTILINE)
    assert 1 <= len(tables) <= 4
    assert record["context"] == schema_ddl(paths[record["db_id"]], tables)
