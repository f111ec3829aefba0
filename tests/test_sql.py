"""sqlft/sql/dialect.py: extraction from model text, parsing, normal forms, and SQLite -> DuckDB rewrites checked by running
the same query on Python's sqlite3 and on DuckDB.

Run: .venv/bin/pytest tests/test_sql.py -q
"""

from __future__ import annotations

import sqlite3

import pytest
import sqlglot

from sqlft.sql.compare import compare_results
from sqlft.sql.duckdb_sandbox import DuckdbSandbox
from sqlft.sql.sandbox import ExecutionResult
from sqlft.prompts.reply import extract_sql
from sqlft.sql.dialect import exact_match, has_order_by, normalise, parse_sql, strip_distinct, to_duckdb

# (id, model text, expected SQL)
EXTRACTION = [
    ("bare", "SELECT name FROM singer", "SELECT name FROM singer"),
    ("semicolon", "SELECT name FROM singer;", "SELECT name FROM singer"),
    ("fence", "```sql\nSELECT name FROM singer WHERE age > 30;\n```", "SELECT name FROM singer WHERE age > 30"),
    ("fence_then_prose", "```sql\nSELECT name FROM singer\n```\nThis query lists every singer.", "SELECT name FROM singer"),
    ("plain_fence", "Sure!\n```\nSELECT count(*) FROM singer\n```", "SELECT count(*) FROM singer"),
    ("unclosed_fence", "```sql\nSELECT name\nFROM singer", "SELECT name\nFROM singer"),
    ("prose_before", "Here is the SQL query you asked for:\nSELECT name FROM singer ORDER BY age",
     "SELECT name FROM singer ORDER BY age"),
    ("prose_after_line", "SELECT name\nFROM singer\nWHERE age > 30\nThis returns the singers older than 30.",
     "SELECT name\nFROM singer\nWHERE age > 30"),
    ("prose_after_sentence", "SELECT name FROM singer ORDER BY age DESC LIMIT 1. The result is the oldest singer.",
     "SELECT name FROM singer ORDER BY age DESC LIMIT 1"),
    ("prose_after_same_line", "SELECT name FROM singer The query lists names", "SELECT name FROM singer"),
    ("blank_line_then_explanation", "SELECT name FROM singer\n\nExplanation: it selects names.", "SELECT name FROM singer"),
    ("inline_code", "Run `SELECT name FROM singer` to list them.", "SELECT name FROM singer"),
    ("sql_prefix", "SQL: SELECT name FROM singer", "SELECT name FROM singer"),
    ("sqlquery_prefix", "SQLQuery: SELECT avg(age) FROM singer", "SELECT avg(age) FROM singer"),
    ("chatml_end", "SELECT name FROM singer<|im_end|>\n<|im_start|>user\nthanks", "SELECT name FROM singer"),
    ("chatml_header", "<|im_start|>assistant\nSELECT 1<|im_end|>", "SELECT 1"),
    ("llama2_end", " SELECT name FROM singer </s>", "SELECT name FROM singer"),
    ("llama3_end", "SELECT name FROM singer<|eot_id|>", "SELECT name FROM singer"),
    ("alpaca_end", "### Response:\nSELECT name FROM singer\n\n### End", "SELECT name FROM singer"),
    ("alpaca_end_same_line", "SELECT name FROM singer ### End", "SELECT name FROM singer"),
    ("several_statements", "SELECT name FROM singer; SELECT age FROM singer;", "SELECT name FROM singer"),
    ("semicolon_in_string", "SELECT name FROM singer WHERE name = 'a;b. c'; DROP TABLE singer",
     "SELECT name FROM singer WHERE name = 'a;b. c'"),
    ("cte", "WITH old AS (SELECT * FROM singer WHERE age > 50) SELECT name FROM old",
     "WITH old AS (SELECT * FROM singer WHERE age > 50) SELECT name FROM old"),
    ("lowercase", "select name from singer where age > 1.5", "select name from singer where age > 1.5"),
    ("select_in_prose_then_sql", "To answer, select the rows we need. SELECT name FROM singer", "SELECT name FROM singer"),
    ("cut_off_stays_broken", "```sql\nSELECT name FROM singer WHERE", "SELECT name FROM singer WHERE"),
    ("cut_off_multiline", "SELECT name\nFROM singer\nWHERE", "SELECT name\nFROM singer\nWHERE"),
    ("non_select_kept_for_the_sandbox", "DROP TABLE singer;", "DROP TABLE singer"),
    ("no_sql", "I am sorry, I cannot answer that.", ""),
    ("empty", "", ""),
    ("only_end_marker", "</s>", ""),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in EXTRACTION], ids=[c[0] for c in EXTRACTION])
def test_extract_sql(text: str, expected: str) -> None:
    assert extract_sql(text) == expected


def test_parse_sql() -> None:
    ok = parse_sql("SELECT a FROM t;")
    assert ok.ok and ok.error == "" and isinstance(ok.tree, sqlglot.exp.Select)
    bad = parse_sql("SELECT FROM WHERE (")
    assert not bad.ok and bad.error and bad.tree is None and bad.sql == "SELECT FROM WHERE ("
    assert parse_sql("SELECT 1; SELECT 2").error == "expected one statement, got 2"
    assert parse_sql("  ").error == "empty SQL"
    with pytest.raises(ValueError, match="Did you mean duckdb"):
        parse_sql("SELECT 1", dialect="duckd")
    with pytest.raises(ValueError, match="Unknown dialect"):
        to_duckdb("SELECT 1", "nosuchdialect")


# (gold, pred, exact match?)
EXACT = [
    ("SELECT name FROM singer", "select  NAME\nfrom Singer ;", True),
    ("SELECT count(*) FROM singer WHERE age > 30", "SELECT COUNT(*) FROM singer WHERE age > 30", True),
    ("SELECT name FROM singer WHERE name = 'Joe'", "SELECT name FROM singer WHERE name = 'joe'", False),
    ("SELECT name FROM singer", "SELECT name FROM singer ORDER BY name", False),
    ("SELEC garbage", "SELEC   garbage ;", True),  # unparseable: whitespace normal form, no exception
]


@pytest.mark.parametrize("gold, pred, expected", EXACT)
def test_exact_match(gold: str, pred: str, expected: bool) -> None:
    assert exact_match(gold, pred) is expected


def test_normalise_does_not_crash_on_odd_sql() -> None:
    for odd in ("", ";", "SELECT", "))) ((", "SELECT 'unterminated", "DROP TABLE x", "PRAGMA foo"):
        assert isinstance(normalise(odd), str)
    assert normalise("select A from T") == "SELECT a FROM t"


# (sql, expected after strip_distinct)
STRIP = [
    ("SELECT DISTINCT country FROM singer", "SELECT country FROM singer"),
    ("SELECT count(DISTINCT country) FROM singer", "SELECT COUNT(country) FROM singer"),
    ("SELECT name FROM singer WHERE country IN (SELECT DISTINCT country FROM singer)",
     "SELECT name FROM singer WHERE country IN (SELECT country FROM singer)"),
    ("SELECT a FROM t UNION SELECT a FROM u", "SELECT a FROM t UNION SELECT a FROM u"),  # UNION stays a set union
    ("SELECT name FROM singer", "SELECT name FROM singer"),
]


@pytest.mark.parametrize("sql, expected", STRIP)
def test_strip_distinct(sql: str, expected: str) -> None:
    assert strip_distinct(sql) == expected


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT a FROM t ORDER BY a", True),
        ("SELECT a FROM t order  by a DESC LIMIT 1", True),
        ("SELECT a FROM t", False),
        ("SELECT a FROM (SELECT a FROM t ORDER BY a LIMIT 3) AS s", False),
        ("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1", True),
        ("SELECT a FROM t WHERE b = 'order by'", False),
        ("SELEC a FROM t ORDER BY a", True),  # unparseable: the official substring test
    ],
)
def test_has_order_by(sql: str, expected: bool) -> None:
    assert has_order_by(sql) is expected


# ---------------------------------------------------------------------------------------------------------
# SQLite -> DuckDB: the same query gives the same result on sqlite3 and, after to_duckdb, on DuckDB.

# name: (columns with (name, SQLite type, DuckDB type), rows)
TABLES = {
    "singer": (
        [("singer_id", "INTEGER", "INTEGER"), ("name", "TEXT", "VARCHAR"), ("country", "TEXT", "VARCHAR"),
         ("age", "INTEGER", "INTEGER"), ("net_worth", "REAL", "DOUBLE"), ("zip", "TEXT", "VARCHAR")],
        [
            (1, "Joe Sharp", "France", 52, 30.5, "12345"),
            (2, "Ann", "Spain", 31, 12.25, "6000"),
            (3, "Li", None, 25, 7.0, "800"),
            (4, "joan", "France", 43, 1.5, "5000"),
            (5, "Rosa", "Spain", 29, 0.75, None),
        ],
    ),
    "concert": (
        [("concert_id", "INTEGER", "INTEGER"), ("singer_id", "INTEGER", "INTEGER"), ("year", "INTEGER", "INTEGER"),
         ("theme", "TEXT", "VARCHAR")],
        [(1, 1, 2014, "Free"), (2, 1, 2015, "Party"), (3, 2, 2015, "Free"), (4, 4, 2014, "Wide")],
    ),
}
COLUMNS = {name for columns, _ in TABLES.values() for name, _, _ in columns}

# (id, SQLite query, needs a rewrite: plain sqlglot.transpile gives an error or another result on DuckDB)
SQLITE_QUERIES = [
    ("double_quoted_string", 'SELECT name FROM singer WHERE country = "France"', True),
    ("double_quoted_column_kept", 'SELECT "name" FROM singer WHERE "country" = \'Spain\'', False),
    ("double_quoted_alias_kept", 'SELECT name AS "who" FROM singer ORDER BY "who"', False),
    ("bare_column_with_max", "SELECT name, max(age) FROM singer", True),
    ("bare_column_with_min_per_group", "SELECT country, name, min(age) FROM singer GROUP BY country", True),
    ("bare_column_grouped_by_key", "SELECT T1.name, count(*) FROM singer AS T1 JOIN concert AS T2 "
     "ON T1.singer_id = T2.singer_id GROUP BY T1.singer_id", True),
    ("bare_column_order_by_count", "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 "
     "ON T1.singer_id = T2.singer_id GROUP BY T2.singer_id ORDER BY count(*) DESC LIMIT 1", True),
    ("outer_column_in_grouped_subquery", "SELECT T1.name FROM singer AS T1 WHERE T1.singer_id IN "
     "(SELECT T1.singer_id FROM concert AS T3 GROUP BY T3.year ORDER BY count(*) DESC LIMIT 1)", False),
    ("like_case_insensitive", "SELECT name FROM singer WHERE name LIKE '%JO%'", True),
    ("not_like_case_insensitive", "SELECT name FROM singer WHERE name NOT LIKE 'j%'", True),
    ("integer_division", "SELECT name, age / 10 FROM singer", True),
    ("integer_division_negative", "SELECT -7 / 2, 7 / 2, 7.0 / 2, 7 / 2.0", True),
    ("real_division", "SELECT net_worth / 2 FROM singer", False),
    ("division_by_zero", "SELECT age / 0, age % 0 FROM singer", True),
    ("aggregate_ratio", "SELECT sum(year) / count(*) FROM concert", True),
    ("text_column_vs_number", "SELECT name FROM singer WHERE zip > 5000", True),
    ("text_column_in_numbers", "SELECT name FROM singer WHERE zip IN (800, 6000)", False),
    ("int_column_vs_string", "SELECT name FROM singer WHERE age = '31'", False),
    ("int_column_between_strings", "SELECT name FROM singer WHERE age BETWEEN 25 AND 31", False),
    ("nulls_first_in_order", "SELECT country FROM singer ORDER BY country", False),
    ("nulls_first_desc", "SELECT country, name FROM singer ORDER BY country DESC, name", False),
    ("count_distinct", "SELECT count(DISTINCT country) FROM singer", False),
    ("having", "SELECT country, count(*) FROM singer GROUP BY country HAVING count(*) > 1", False),
    ("limit_offset", "SELECT name FROM singer ORDER BY age LIMIT 2, 2", False),
    ("substr_concat", "SELECT substr(name, 1, 2) || '!' FROM singer", False),
    ("not_in_subquery", "SELECT name FROM singer WHERE singer_id NOT IN (SELECT singer_id FROM concert)", False),
    ("except", "SELECT country FROM singer EXCEPT SELECT country FROM singer WHERE age > 40", False),
    ("join_theme_like", "SELECT DISTINCT T1.name FROM singer AS T1 JOIN concert AS T2 "
     "ON T1.singer_id = T2.singer_id WHERE T2.theme LIKE 'free'", True),
]


@pytest.fixture(scope="module")
def engines():
    lite = sqlite3.connect(":memory:")
    setup = []
    for table, (columns, rows) in TABLES.items():
        lite.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t, _ in columns)})")
        lite.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows)
        setup.append(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, _, t in columns)})")
        for row in rows:
            values = ", ".join("NULL" if v is None else repr(v) for v in row)
            setup.append(f"INSERT INTO {table} VALUES ({values})")
    with DuckdbSandbox.from_sql(setup, timeout_s=5) as box:
        yield lite, box
    lite.close()


def _on_sqlite(lite: sqlite3.Connection, sql: str) -> ExecutionResult:
    cursor = lite.execute(sql)
    return ExecutionResult("ok", [d[0] for d in cursor.description], cursor.fetchall(), False, "", 0.0)


@pytest.mark.parametrize("sql, needs_rewrite", [c[1:] for c in SQLITE_QUERIES], ids=[c[0] for c in SQLITE_QUERIES])
def test_sqlite_rewrites_give_sqlite_results(engines, sql: str, needs_rewrite: bool) -> None:
    lite, box = engines
    expected = _on_sqlite(lite, sql)
    duck_sql = to_duckdb(sql, "sqlite", COLUMNS)
    got = box.execute(duck_sql)
    assert got.status == "ok", (duck_sql, got.error)
    assert compare_results(expected, got, order_matters=has_order_by(sql, "sqlite")), (duck_sql, expected.rows, got.rows)

    # The rewrites earn their keep: plain transpilation gets these wrong.
    plain = box.execute(sqlglot.transpile(sql, read="sqlite", write="duckdb")[0])
    plain_right = plain.status == "ok" and compare_results(expected, plain, order_matters=has_order_by(sql, "sqlite"))
    assert plain_right is not needs_rewrite, (plain.status, plain.error, plain.rows)


def test_to_duckdb_edge_cases() -> None:
    assert to_duckdb("SELECT a FROM t", "duckdb") == "SELECT a FROM t"  # no round trip
    assert to_duckdb("SELEC garbage (", "sqlite") == "SELEC garbage ("  # DuckDB will report the error
    # Without the schema's columns a double-quoted name stays an identifier.
    assert to_duckdb('SELECT a FROM t WHERE b = "x"', "sqlite") == 'SELECT a FROM t WHERE b = "x"'
    assert to_duckdb('SELECT a FROM t WHERE b = "x"', "sqlite", {"a", "b"}) == "SELECT a FROM t WHERE b = 'x'"
    assert to_duckdb("SELECT a / 2 FROM t WHERE a > 1", "sqlite", {"a"}) == "SELECT a // 2 FROM t WHERE a > '1'"
    assert "ILIKE" in to_duckdb("SELECT a FROM t WHERE a LIKE 'x%'", "sqlite")
    assert to_duckdb("SELECT TOP 1 a FROM t", "tsql") == "SELECT a FROM t LIMIT 1"


def test_normalise_never_raises_on_model_written_ddl():
    """Seen in a real eval: the base model wrote CREATE TABLE with a PRIMARY KEY naming no column, and sqlglot's
    SQLite generator raised KeyError; a failed prediction is data, not a crash."""
    ddl = "CREATE TABLE bookings (id INTEGER, PRIMARY KEY (booking_id))"
    assert normalise(ddl, "sqlite") == ddl
    assert exact_match("SELECT 1", ddl, "sqlite") is False
