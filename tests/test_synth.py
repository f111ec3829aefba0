"""The schema reader (sqlft.sql.schema), literal harvesting (sqlft.sql.literals), synthesized databases on real Spider
schemas (sqlft.sql.synth) and gold checks (sqlft.sql.gold_check).

    .venv/bin/pytest tests/test_synth.py -q
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest
from conftest import SHARED_DATA

from sqlft.sql import synth
from sqlft.sql.gold_check import GoldCheck, check_gold
from sqlft.sql.literals import harvest
from sqlft.sql.synth import synthesize
from sqlft.sql.schema import parse_tables, schema_from_ddl

SPIDER = SHARED_DATA / "spider_train" / "spider_train.jsonl"
needs_spider = pytest.mark.skipif(not SPIDER.exists(), reason=f"shared Spider data not found at {SPIDER}")

# Spider-style DDL (as in spider_train's `context`) plus forms Spider's DDL does not happen to use.
DDL = """CREATE TABLE people (People_ID NUMERIC, Name TEXT, "Home Town" TEXT, Age NUMERIC, PRIMARY KEY (People_ID));
CREATE TABLE perpetrator (Perpetrator_ID NUMERIC, People_ID NUMERIC, Year NUMERIC, Country TEXT, Killed NUMERIC,
  PRIMARY KEY (Perpetrator_ID), FOREIGN KEY (People_ID) REFERENCES people(People_ID));
CREATE TABLE "Visit Log" (`visit id` INTEGER, People_ID INTEGER, Day DATE, Paid BOOLEAN, Note VARCHAR(20),
  Fee DECIMAL(10,2), Blob BLOB, Odd GEOMETRY, PRIMARY KEY (`visit id`, People_ID),
  FOREIGN KEY (People_ID) REFERENCES people(People_ID));"""


def _dump(path: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {n: con.execute(f'SELECT * FROM "{n}"').fetchall() for n in names}
    finally:
        con.close()


def _query(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# ----------------------------------------------------------------------------- DDL and literals (no data needed)


def test_schema_from_ddl_handles_spider_forms():
    schema = schema_from_ddl(DDL)
    assert list(schema) == ["people", "perpetrator", "Visit Log"]
    assert schema["people"]["columns"] == {"People_ID": "DOUBLE", "Name": "VARCHAR", "Home Town": "VARCHAR",
                                           "Age": "DOUBLE"}
    assert schema["perpetrator"]["foreign_keys"] == [
        {"columns": ["People_ID"], "ref_table": "people", "ref_columns": ["People_ID"]}]
    log = schema["Visit Log"]
    assert log["primary_key"] == ["visit id", "People_ID"]  # composite key, quoted identifiers
    assert log["columns"] == {"visit id": "BIGINT", "People_ID": "BIGINT", "Day": "DATE", "Paid": "BOOLEAN",
                              "Note": "VARCHAR", "Fee": "DECIMAL(10,2)", "Blob": "BLOB", "Odd": "VARCHAR"}
    json.dumps(schema)  # plain data, usable elsewhere (schema pruning)


def test_parse_tables_inline_constraints_and_bad_statements():
    ddl = "CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INT REFERENCES b(id)); THIS IS NOT SQL; CREATE TABLE b (id INT)"
    tables = {t.name: t for t in parse_tables(ddl)}
    assert set(tables) == {"a", "b"}
    assert tables["a"].primary_key == ["id"]
    assert tables["a"].foreign_keys == [(["b_id"], "b", ["id"])]


def test_harvest_literals_and_joins():
    tables = parse_tables(DDL)
    facts = harvest(
        'SELECT T1.Name FROM people AS T1 JOIN perpetrator AS T2 ON T1.People_ID = T2.People_ID '
        'WHERE T2.Country = "Kenya" AND 20 < T1.Age AND T1.Name LIKE "%an%" AND T2.Year BETWEEN 1990 AND 2000 '
        "AND T2.Killed IN (3, -4)", tables)
    got = {(p.column, p.op, tuple(p.values)) for p in facts.predicates}
    assert got == {
        (("perpetrator", "country"), "eq", ("Kenya",)),  # SQLite double-quoted string
        (("people", "age"), "gt", (20,)),  # flipped: 20 < Age
        (("people", "name"), "like", ("%an%",)),
        (("perpetrator", "year"), "between", (1990, 2000)),
        (("perpetrator", "killed"), "in", (3, -4)),
    }
    assert facts.joins == [(("people", "people_id"), ("perpetrator", "people_id"))]
    assert facts.tables == ["people", "perpetrator"]


def test_harvest_subquery_join_and_set_branches():
    tables = parse_tables(DDL)
    facts = harvest("SELECT Name FROM people WHERE People_ID NOT IN (SELECT People_ID FROM perpetrator)", tables)
    assert facts.joins == [(("people", "people_id"), ("perpetrator", "people_id"))]
    facts = harvest("SELECT Country FROM perpetrator WHERE Killed > 50 INTERSECT "
                    "SELECT Country FROM perpetrator WHERE Killed < 20", tables)
    assert [(p.op, p.branch) for p in facts.predicates] == [("gt", 0), ("lt", 1)]


# ----------------------------------------------------------------------------- synthesized databases


GOLD = [
    'SELECT count(*) FROM people WHERE "Home Town" = "Nairobi"',
    "SELECT T1.Name FROM people AS T1 JOIN perpetrator AS T2 ON T1.People_ID = T2.People_ID "
    "WHERE T2.Country = 'Kenya' AND T2.Killed > 30",
    "SELECT Name FROM people WHERE Name LIKE '%ola%'",
    "SELECT Country FROM perpetrator WHERE Killed > 50 INTERSECT SELECT Country FROM perpetrator WHERE Killed < 20",
    "SELECT Name FROM people WHERE People_ID NOT IN (SELECT People_ID FROM perpetrator)",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> list[Path]:
    return synthesize(DDL, GOLD, out_dir=tmp_path_factory.mktemp("synth"))


def test_synthesize_builds_instances_with_types_and_without_constraints(built):
    assert len(built) == 3 and all(p.exists() for p in built)
    con = duckdb.connect(str(built[0]), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM duckdb_constraints()").fetchone()[0] == 0
        types = dict(con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'Visit Log'").fetchall())
    finally:
        con.close()
    assert types["visit id"] == "BIGINT" and types["Day"] == "DATE" and types["Fee"] == "DECIMAL(10,2)"
    for path in built:
        for rows in _dump(path).values():
            assert 12 <= len(rows) <= 14


def test_gold_with_literals_and_joins_return_rows(built):
    for gold in GOLD:
        check = check_gold(built, gold, "sqlite")
        assert all(check.runs), (gold, check.errors)
        assert any(check.nonempty), gold
    # the planted literal itself, not only the count
    assert any(_query(p, "SELECT count(*) FROM people WHERE \"Home Town\" = 'Nairobi'")[0][0] for p in built)


def test_keys_distinct_and_filled_other_columns_sometimes_null(built):
    nulls = 0
    for path in built:
        people = _query(path, "SELECT People_ID FROM people")
        assert len({r[0] for r in people}) == len(people) and None not in {r[0] for r in people}
        assert _query(path, "SELECT count(*) FROM perpetrator WHERE People_ID IS NULL")[0][0] == 0
        nulls += _query(path, "SELECT count(*) - count(Name) FROM people")[0][0]
        nulls += _query(path, "SELECT count(*) - count(Country) FROM perpetrator")[0][0]
        # small pools: some value repeats, so GROUP BY meets groups of several rows
        assert _query(path, "SELECT max(c) FROM (SELECT count(*) AS c FROM perpetrator GROUP BY Country)")[0][0] > 1
    assert nulls > 0


def test_deterministic_and_instances_differ(built, tmp_path):
    again = synthesize(DDL, GOLD, out_dir=tmp_path / "again")
    assert [_dump(p) for p in again] == [_dump(p) for p in built]
    dumps = [_dump(p) for p in built]
    assert dumps[0] != dumps[1] != dumps[2]
    other_seed = synthesize(DDL, GOLD, seed=1, out_dir=tmp_path / "seed1")
    assert _dump(other_seed[0]) != dumps[0]


def test_cached_not_rebuilt_and_no_temp_files(built, monkeypatch):
    mtimes = [p.stat().st_mtime_ns for p in built]

    def refuse(*args, **kwargs):
        raise AssertionError("rebuilt a cached database")

    monkeypatch.setattr(synth, "_write", refuse)
    assert synthesize(DDL, GOLD, out_dir=built[0].parents[1]) == built
    assert [p.stat().st_mtime_ns for p in built] == mtimes
    assert sorted(p.name for p in built[0].parent.iterdir()) == ["0.duckdb", "1.duckdb", "2.duckdb"]


def test_default_out_dir_is_the_sqlft_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLFT_CACHE", str(tmp_path))
    paths = synthesize("CREATE TABLE t (a INTEGER)", [], instances=1)
    assert paths[0].is_relative_to(tmp_path / "synth")


def test_synthesize_rejects_ddl_without_tables(tmp_path):
    with pytest.raises(ValueError, match="no CREATE TABLE"):
        synthesize("SELECT 1", [], out_dir=tmp_path)


# ----------------------------------------------------------------------------- check_gold


def test_check_gold_flags_constant_queries(built):
    for constant in ["SELECT 1", "SELECT count(*) FROM people WHERE 1 = 0"]:
        check = check_gold(built, constant, "sqlite")
        assert isinstance(check, GoldCheck)
        assert all(check.runs) and not check.varies and not check.discriminating, constant
    check = check_gold(built, "SELECT count(*) FROM perpetrator WHERE Killed > 30", "sqlite")
    assert check.ok and check.discriminating


def test_check_gold_reports_failures_as_data(built):
    check = check_gold(built, "SELECT nope FROM people", "sqlite")
    assert check.runs == [False, False, False] and not check.ok and not check.discriminating
    assert "nope" in check.errors[0]


def test_gold_usage_retypes_columns(tmp_path):
    # Spider declares some numeric columns TEXT; SQLite averages them anyway, DuckDB refuses avg(VARCHAR).
    ddl = "CREATE TABLE coaster (id NUMERIC, speed TEXT, park TEXT, PRIMARY KEY (id))"
    paths = synthesize(ddl, ["SELECT avg(speed) FROM coaster"], out_dir=tmp_path)
    assert check_gold(paths, "SELECT avg(speed) FROM coaster", "sqlite").ok


# ----------------------------------------------------------------------------- real Spider schemas


@pytest.fixture(scope="module")
def spider() -> dict[str, list[dict]]:
    if not SPIDER.exists():
        pytest.skip(f"shared Spider data not found at {SPIDER}")
    by_db: dict[str, list[dict]] = defaultdict(list)
    for line in SPIDER.open():
        record = json.loads(line)
        by_db[record["db_id"]].append(record)
    return by_db


@needs_spider
@pytest.mark.parametrize("db_id", ["department_management", "perpetrator", "college_2", "hr_1", "activity_1"])
def test_spider_gold_runs_and_hits(spider, db_id, tmp_path):
    records = spider[db_id][:20]
    golds = [r["answer"] for r in records]
    paths = synthesize(records[0]["context"], golds, out_dir=tmp_path)
    tables = parse_tables(records[0]["context"])
    checks = [check_gold(paths, g, "sqlite") for g in golds]
    assert sum(all(c.runs) for c in checks) >= 0.9 * len(checks), [c.errors for c in checks if not all(c.runs)]
    with_literals = [c for g, c in zip(golds, checks) if harvest(g, tables).predicates and all(c.runs)]
    assert with_literals and sum(any(c.nonempty) for c in with_literals) >= 0.9 * len(with_literals)
    assert sum(c.discriminating for c in checks) >= 0.85 * len(checks)

    # every declared foreign key joins on every instance
    for path in paths:
        con = duckdb.connect(str(path), read_only=True)
        for table in tables:
            for cols, ref_table, ref_cols in table.foreign_keys:
                on = " AND ".join(f'c."{a}" = p."{b}"' for a, b in zip(cols, ref_cols))
                sql = f'SELECT count(*) FROM "{table.name}" c JOIN "{ref_table}" p ON {on}'
                joined = con.execute(sql).fetchone()[0]
                assert joined > 0, (db_id, table.name, ref_table)
        con.close()
