"""sqlft/sql/duckdb_sandbox.py: hostile SQL is rejected or stopped, nothing touches the file system, timeouts and threads hold.

Run: .venv/bin/pytest tests/test_sandbox.py -q
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from sqlft.sql.duckdb_sandbox import DuckdbSandbox, check_sql
from sqlft.sql.sandbox import ExecutionResult, value_size

TIMEOUT_S = 1.0
SLACK_S = 1.5  # a shared 2-core machine: how late a stopped query may come back

FIXTURE = """
CREATE TABLE singer (singer_id INTEGER, name VARCHAR, country VARCHAR, age INTEGER);
INSERT INTO singer VALUES (1, 'Joe', 'France', 52), (2, 'Ann', 'Spain', 31), (3, 'Li', NULL, 25);
CREATE TABLE numbers AS SELECT range AS n FROM range(1000);
"""

# Names hostile SQL tries to create, in the working directory (a tmp_path) or in /tmp.
TMP_TARGETS = [Path("/tmp/sqlft_pwned.db"), Path("/tmp/sqlft_pwned.csv"), Path("/tmp/sqlft_pwned_dir")]

# (id, sql): every one must come back rejected, error or timeout, within the timeout.
HOSTILE = [
    ("read_csv", "SELECT * FROM read_csv('/etc/passwd')"),
    ("read_csv_auto", "SELECT * FROM read_csv_auto('/etc/passwd')"),
    ("replacement_scan_file", "SELECT * FROM '/etc/passwd'"),
    ("from_first_file", "FROM '/etc/passwd'"),
    ("read_text", "SELECT content FROM read_text('/etc/passwd')"),
    ("read_blob", "SELECT * FROM read_blob('/etc/passwd')"),
    ("read_parquet", "SELECT * FROM read_parquet('x.parquet')"),
    ("glob", "SELECT * FROM glob('/etc/*')"),
    ("query_table", "SELECT * FROM query_table('singer')"),
    ("table_function_in_subquery", "SELECT name FROM singer WHERE name IN (SELECT content FROM read_text('/etc/passwd'))"),
    ("settings_function", "SELECT * FROM duckdb_settings()"),
    ("information_schema", "SELECT * FROM information_schema.tables"),
    ("other_catalog", "SELECT * FROM system.main.singer"),
    ("sqlite_master", "SELECT * FROM sqlite_master"),
    ("attach", "ATTACH '/tmp/sqlft_pwned.db' AS pwned"),
    ("copy_to_cwd", "COPY singer TO 'pwned.csv'"),
    ("copy_to_tmp", "COPY (SELECT * FROM singer) TO '/tmp/sqlft_pwned.csv'"),
    ("export_database", "EXPORT DATABASE '/tmp/sqlft_pwned_dir'"),
    ("install", "INSTALL httpfs"),
    ("load", "LOAD httpfs"),
    ("load_file", "LOAD '/tmp/sqlft_pwned.duckdb_extension'"),
    ("pragma", "PRAGMA database_list"),
    ("call", "CALL pragma_version()"),
    ("set", "SET threads = 8"),
    ("unlock", "SET lock_configuration = false"),
    ("reset", "RESET memory_limit"),
    ("use", "USE system"),
    ("describe", "DESCRIBE singer"),
    ("show", "SHOW TABLES"),
    ("summarize", "SUMMARIZE singer"),
    ("create_table", "CREATE TABLE pwned AS SELECT 1 AS x"),
    ("insert", "INSERT INTO singer VALUES (9, 'Eve', 'Nowhere', 1)"),
    ("update", "UPDATE singer SET age = 0"),
    ("delete", "DELETE FROM singer"),
    ("drop", "DROP TABLE singer"),
    ("temp_view_poisoning", "CREATE TEMP VIEW singer AS SELECT 1 AS x"),
    ("macro", "CREATE MACRO pwned(x) AS x"),
    ("several_statements", "SELECT 1; DROP TABLE singer"),
    ("select_then_copy", "SELECT * FROM singer; COPY singer TO 'pwned.csv'"),
    ("checkpoint", "CHECKPOINT"),
    ("transaction", "BEGIN TRANSACTION"),
    ("vacuum", "VACUUM"),
    ("detach", "DETACH memory"),
    ("pivot_statement", "PIVOT singer ON country USING count(*)"),
    ("endless_recursive_cte", "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t"),
    ("cross_join_bomb", "SELECT count(*) FROM numbers a, numbers b, numbers c, numbers d"),
    ("cross_join_sort", "SELECT a.n, b.n, c.n FROM numbers a, numbers b, numbers c ORDER BY 1 DESC, 2 DESC, 3 DESC"),
    ("huge_repeat", "SELECT repeat('x', 2000000000)"),
    ("huge_repeat_from_column", "SELECT repeat(name, age * 100000000) FROM singer"),
    ("nested_repeat", "SELECT repeat(repeat('x', 1000), 1000)"),
    ("huge_lpad", "SELECT lpad('x', 1000000000, 'y')"),
    ("huge_range", "SELECT len(range(200000000))"),
    ("huge_list_resize", "SELECT len(list_resize([1], 200000000))"),
    ("huge_printf_width", "SELECT printf('%1000000000d', 1)"),
    ("string_agg_bomb", "SELECT length(string_agg(name, '')) FROM singer, numbers a, numbers b, numbers c"),
    ("syntax_error", "SELEC * FROM singer"),
]


@pytest.fixture
def box():
    with DuckdbSandbox.from_sql(FIXTURE, timeout_s=TIMEOUT_S, memory_limit="256MB") as sandbox:
        yield sandbox


@pytest.fixture
def clean_dirs(tmp_path, monkeypatch):
    """Run in an empty working directory; afterwards nothing may have been created there or in /tmp."""
    for target in TMP_TARGETS:
        assert not target.exists(), f"{target} exists before the test: remove it"
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert sorted(os.listdir(tmp_path)) == []
    assert [t for t in TMP_TARGETS if t.exists()] == []


@pytest.mark.parametrize("sql", [sql for _, sql in HOSTILE], ids=[name for name, _ in HOSTILE])
def test_hostile_sql_is_rejected_or_stopped(box: DuckdbSandbox, clean_dirs: Path, sql: str) -> None:
    result = box.execute(sql)
    assert result.status in ("rejected", "error", "timeout"), result
    assert result.error
    assert result.rows == []
    assert result.elapsed_s < TIMEOUT_S + SLACK_S
    # The database is unchanged whatever was tried.
    assert box.execute("SELECT count(*) FROM singer").rows == [(3,)]
    assert box.tables == {"singer", "numbers"}


def test_hostile_file_access_is_also_refused_by_the_engine(box: DuckdbSandbox, clean_dirs: Path) -> None:
    """Defence in depth: with check_sql bypassed, the hardened connection itself refuses files and settings."""
    cursor = box._con.cursor()
    for sql in (
        "SELECT * FROM read_csv('/etc/passwd')",
        "COPY singer TO 'pwned.csv'",
        "ATTACH '/tmp/sqlft_pwned.db' AS pwned",
        "SET enable_external_access = true",
        "SET memory_limit = '100GB'",
        "SET lock_configuration = false",
    ):
        with pytest.raises(duckdb.Error):
            cursor.execute(sql)
    cursor.close()


def test_python_dataframes_in_scope_are_not_scanned(box: DuckdbSandbox) -> None:
    pandas = pytest.importorskip("pandas")
    secret = pandas.DataFrame({"password": ["hunter2"]})  # noqa: F841 - what a replacement scan would find
    assert box.execute("SELECT * FROM secret").status == "rejected"
    assert box._con.cursor().execute("SELECT 1").fetchall() == [(1,)]
    with pytest.raises(duckdb.Error):  # the engine does not look either
        box._con.cursor().execute("SELECT * FROM secret").fetchall()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT name FROM singer WHERE age > 30 ORDER BY name",
        "WITH old AS (SELECT * FROM singer WHERE age > 30) SELECT name FROM old",
        "WITH RECURSIVE r(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM r WHERE k < 5) SELECT sum(k) FROM r",
        "SELECT s.name, (SELECT count(*) FROM numbers WHERE n < s.age) FROM singer AS s",
        "SELECT * FROM (VALUES (1, 'a')) AS v(x, y)",
        "FROM singer SELECT name",
        "SELECT lpad(CAST(age AS VARCHAR), 5, '0'), repeat('-', 3), printf('%5d', age) FROM singer",
        "SELECT * FROM main.singer",
        "SELECT name FROM SINGER",
        "SELECT * FROM singer PIVOT (count(*) FOR country IN ('France', 'Spain'))",
    ],
)
def test_ordinary_selects_are_allowed(box: DuckdbSandbox, sql: str) -> None:
    assert check_sql(sql, box.tables) is None
    assert box.execute(sql).status == "ok"


def test_result_shape_and_errors(box: DuckdbSandbox) -> None:
    ok = box.execute("SELECT name, age FROM singer ORDER BY age")
    assert ok == ExecutionResult("ok", ["name", "age"], [("Li", 25), ("Ann", 31), ("Joe", 52)], False, "", ok.elapsed_s)
    error = box.execute("SELECT CAST(name AS INTEGER) FROM singer")
    assert error.status == "error" and "Conversion Error" in error.error
    missing = box.execute("SELECT nope FROM singer")
    assert missing.status == "error" and "nope" in missing.error
    rejected = box.execute("SELECT * FROM nowhere")
    assert rejected.status == "rejected" and "nowhere" in rejected.error


def test_max_rows_truncates_without_running_the_whole_query(box: DuckdbSandbox) -> None:
    result = box.execute("SELECT n FROM numbers ORDER BY n", max_rows=10)
    assert result.rows == [(n,) for n in range(10)] and result.truncated
    assert not box.execute("SELECT n FROM numbers", max_rows=1000).truncated
    # 10^9 rows: results stream, so fetching max_rows + 1 of them is quick.
    bomb = box.execute("SELECT a.n, b.n, c.n FROM numbers a, numbers b, numbers c", max_rows=5)
    assert bomb.status == "ok" and bomb.truncated and len(bomb.rows) == 5
    assert bomb.elapsed_s < TIMEOUT_S


def test_timeout_stops_the_query_close_to_the_limit(box: DuckdbSandbox) -> None:
    endless = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t"
    for limit in (0.3, 0.6):
        result = box.execute(endless, timeout_s=limit)
        assert result.status == "timeout"
        assert limit <= result.elapsed_s < limit + 0.5, result.elapsed_s
    # The sandbox still works afterwards.
    assert box.execute("SELECT count(*) FROM singer").rows == [(3,)]


def test_threads_share_one_sandbox(box: DuckdbSandbox) -> None:
    def run(worker: int) -> list[bool]:
        verdicts = []
        for i in range(20):
            k = 1 + (worker * 20 + i) % 17
            result = box.execute(f"SELECT count(*) FROM numbers WHERE n % {k} = 0")
            verdicts.append(result.status == "ok" and result.rows == [(len(range(0, 1000, k)),)])
        return verdicts

    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = [v for vs in pool.map(run, range(8)) for v in vs]
    assert len(verdicts) == 160 and all(verdicts)


def test_a_timeout_in_one_thread_does_not_stop_the_others(box: DuckdbSandbox) -> None:
    slow: list[ExecutionResult] = []
    thread = threading.Thread(
        target=lambda: slow.append(box.execute("SELECT count(*) FROM numbers a, numbers b, numbers c, numbers d", timeout_s=0.5))
    )
    thread.start()
    fast = [box.execute("SELECT count(*) FROM numbers") for _ in range(20)]
    thread.join()
    assert slow[0].status == "timeout"
    assert all(r.status == "ok" and r.rows == [(1000,)] for r in fast)


def test_file_database_is_read_only_and_left_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(db_path)) as con:
        con.execute("CREATE TABLE item (id INTEGER, price DOUBLE); INSERT INTO item VALUES (1, 2.5), (2, 4.0)")
    monkeypatch.chdir(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with DuckdbSandbox(db_path, timeout_s=TIMEOUT_S) as sandbox:
        assert sandbox.tables == {"item"}
        assert sandbox.execute("SELECT sum(price) FROM item").rows == [(6.5,)]
        assert sandbox.execute("DELETE FROM item").status == "rejected"
        assert sandbox._con.cursor().execute("SELECT current_setting('access_mode')").fetchone() == ("read_only",)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    with pytest.raises(FileNotFoundError):
        DuckdbSandbox(tmp_path / "missing.duckdb")


def test_closed_sandbox_reports_an_error() -> None:
    sandbox = DuckdbSandbox.from_sql("CREATE TABLE t (x INTEGER)")
    sandbox.close()
    sandbox.close()  # idempotent
    assert sandbox.execute("SELECT * FROM t").status == "error"


def test_result_budget_counts_what_lists_and_structs_hold() -> None:
    # One sizing for every engine (DuckDB's LIST and STRUCT, PostgreSQL's arrays and jsonb): by the contents.
    assert value_size(7) == 16 and value_size("abc") == value_size(b"abc") == 19
    assert value_size([1, "ab"]) == 16 + 16 + 18 and value_size({"k": [1]}) == 16 + 17 + 32
    with DuckdbSandbox.from_sql("CREATE TABLE t (x INTEGER)", max_result_bytes=10_000) as box:
        big = box.execute("SELECT [i::VARCHAR FOR i IN range(1000)] AS l, {'s': repeat('x', 999)} AS s")
        assert big.status == "rejected" and "larger than 10,000 bytes" in big.error, big
        assert box.execute("SELECT [1, 2] AS l, {'s': 'x'} AS s").rows == [([1, 2], {"s": "x"})]


def test_bad_size_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="not a size"):
        DuckdbSandbox(None, memory_limit="1GB'; SET threads=64; --")
