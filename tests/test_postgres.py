"""PostgreSQL sources against a real server the tests start themselves (tests/pg_cluster.py: initdb + pg_ctl on a
free port, as the unprivileged `postgres` user): catalog introspection, passwords, bounded read-only execution,
the pool, a hostile-SQL table (after which nothing on the server has changed and no file exists), dialects,
and the one execution rule shared by eval and serve.

Skipped, with the reason, only where no PostgreSQL server binary can be had (.ci/run installs Debian's).
"""

import hashlib
import json
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest

import sqlft.sql.postgres as pg
from sqlft.sql.engine import engine_for, open_sandbox, to_engine
from sqlft.sql.postgres import PoolBusy, PostgresError, PostgresSandbox, check_url, database_url, redact
from tests.pg_fixtures import PASSWORD

@pytest.fixture(scope="session")
def reader_box(reader_url):
    with PostgresSandbox(reader_url, timeout_s=2, max_rows=100, pool_size=2) as box:
        yield box


# ---------------------------------------------------------------------------------------------- sources


def test_schema_from_the_catalog(reader_box):
    assert reader_box.table_list == ["big", "customers", "orders", "sales.targets"]  # not `secrets`: no grant
    lines = reader_box.ddl.split("\n")
    assert lines[1] == ('CREATE TABLE customers /* People who bought something */ (id INTEGER, name TEXT '
                        '/* Full name, as typed * / by them */, "Signup Date" DATE, PRIMARY KEY (id));')
    assert lines[2] == ("CREATE TABLE orders (id INTEGER, customer_id INTEGER, total NUMERIC(10,2), "
                        "status CHARACTER VARYING(20), PRIMARY KEY (id), FOREIGN KEY (customer_id) "
                        "REFERENCES customers(id));")
    assert lines[3] == ("CREATE TABLE sales.targets (region TEXT, year INTEGER, amount DOUBLE PRECISION, "
                        "PRIMARY KEY (region, year));")
    # The schema text is read by sqlft's own schema tools like any other database's.
    from sqlft.sql.schema import format_schema
    assert "customers(" in format_schema(reader_box.ddl, "compact")


def test_reload_schema_sees_new_tables(cluster, reader_url):
    cluster.psql("CREATE TABLE added (x int); GRANT SELECT ON added TO reader", db="shop")
    try:
        with PostgresSandbox(reader_url, pool_size=1) as box:
            assert "added" in box.table_list
            cluster.psql("CREATE TABLE added_later (y int); GRANT SELECT ON added_later TO reader", db="shop")
            assert box.execute("SELECT y FROM added_later").status == "rejected"  # not known yet
            box.reload_schema()
            assert "added_later" in box.table_list and "CREATE TABLE added_later (y INTEGER);" in box.ddl
            assert box.execute("SELECT y FROM added_later").status == "ok"
    finally:
        cluster.psql("DROP TABLE added, added_later", db="shop")


def test_passwords_are_refused_in_urls_and_never_echoed(cluster, monkeypatch):
    with pytest.raises(PostgresError, match="PGPASSWORD") as err:
        check_url(f"postgresql://reader:{PASSWORD}@127.0.0.1:{cluster.port}/shop")
    assert PASSWORD not in str(err.value)
    for text in (f"postgresql://reader:{PASSWORD}@h/db", f"host=h password={PASSWORD} user=u",
                 f"postgresql://h/db?user=u&password={PASSWORD}", f"password='{PASSWORD} x' dbname=d"):
        assert PASSWORD not in redact(text) and "***" in redact(text)
    # A wrong password (from the environment) is an error that names the server, not the secret.
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")
    monkeypatch.setenv("PGPASSWORD", "wrong-" + PASSWORD)
    with pytest.raises(PostgresError, match="password authentication failed") as err:
        PostgresSandbox(cluster.url("shop", "reader"))
    assert PASSWORD not in str(err.value) and "127.0.0.1" in str(err.value)


def test_database_url_names_one_database_per_db_id():
    assert database_url("postgresql://reader@h:5432/", "academic") == "postgresql://reader@h:5432/academic"
    assert database_url("postgresql://r@h/x?sslmode=require", "yelp") == "postgresql://r@h/yelp?sslmode=require"


# ---------------------------------------------------------------------------------------------- execution


def test_rows_values_and_bounds(reader_box):
    r = reader_box.execute("SELECT c.name, sum(o.total) AS spent FROM customers c JOIN orders o "
                           "ON o.customer_id = c.id GROUP BY c.name ORDER BY spent DESC;")
    assert (r.status, r.columns) == ("ok", ["name", "spent"]), r.error
    assert [(name, float(spent)) for name, spent in r.rows] == [("Ann", 29.5), ("Bob", 3.25)]
    assert reader_box.execute("SELECT region FROM sales.targets WHERE year = 2024").rows == [("north",), ("south",)]
    # A billion-row cross join: only max_rows + 1 rows are produced, then the query is cancelled.
    r = reader_box.execute("SELECT a.n, b.n, c.n FROM big a, big b, big c", max_rows=7)
    assert (r.status, len(r.rows), r.truncated) == ("ok", 7, True)
    assert reader_box.execute("SELECT '%s %(x)s' AS t").rows == [("%s %(x)s",)]  # no client-side placeholders
    assert reader_box.execute("SELECT 1/0").status == "error"
    r = reader_box.execute("SELEC name FROM customers")
    assert r.status == "error" and "\x1b" not in r.error


def test_result_bytes_are_capped_while_fetching(reader_url):
    with PostgresSandbox(reader_url, max_result_bytes=200_000, pool_size=1) as box:
        r = box.execute("SELECT repeat('x', 10000) FROM big")
        assert (r.status, r.error) == ("error", "result larger than 200000 bytes")
        assert box.execute("SELECT count(*) FROM big").rows == [(1000,)]  # the connection is fine afterwards


def _peak_growth(run):
    """run() and how far this process's RSS rose above its start meanwhile (the kernel's VmHWM, reset first)."""
    def field(name):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(name + ":"))
    before = field("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    result = run()
    return result, field("VmHWM") - before


HOSTILE_SIZES = [  # issue 15's memory examples on PostgreSQL: one huge value, or many rows a chunk would hold
    ("repeat_50M", "SELECT repeat('x', 50000000)"),
    ("lpad_50M", "SELECT lpad('x', 50000000)"),
    ("format_width_50M", "SELECT format('%50000000s', 'x')"),
    ("string_doubling_cte", "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r WHERE length(s) < "
     "50000000) SELECT s FROM r ORDER BY length(s) DESC LIMIT 1"),
    ("rows_of_100kB", "SELECT repeat('x', 100000) || a.n FROM big a, big b"),  # 500-row chunks: 50 MB each
]


@pytest.mark.parametrize("sql", [sql for _, sql in HOSTILE_SIZES], ids=[name for name, _ in HOSTILE_SIZES])
def test_hostile_sizes_are_stopped_by_the_server(reader_url, sql):
    """The server counts the bytes it sends and stops the query before they pass max_result_bytes: no value and
    no chunk reaches this process whole (before, repeat('x', 50000000) arrived in full, then was refused)."""
    with PostgresSandbox(reader_url, timeout_s=5, max_result_bytes=1_000_000, pool_size=1) as box:
        assert box.execute("SELECT 1").status == "ok"
        r, growth = _peak_growth(lambda: box.execute(sql))
        assert r.status in ("error", "timeout", "rejected"), r
        # refused before it runs (a literal size over sqlft.sql.postgres.MAX_SIZE_ARG), stopped, or cut by the byte count
        assert r.status == "timeout" or r.error == "result larger than 1000000 bytes" or "literal" in r.error, r.error
        assert growth < 16_000_000, f"this process grew by {growth:,} bytes"
        assert box.execute("SELECT n FROM big ORDER BY n DESC LIMIT 2").rows == [(1000,), (999,)]


def test_timeouts_statement_and_lock(cluster, reader_url):
    with PostgresSandbox(reader_url, timeout_s=0.5, lock_timeout_s=0.3, pool_size=1) as box:
        r = box.execute("SELECT pg_sleep(30)")
        assert r.status == "timeout" and "statement_timeout" in r.error
        # Another session holds a lock the query needs: it waits lock_timeout, not forever.
        with psycopg.connect(cluster.superuser_conninfo("shop")) as holder:
            holder.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
            r = box.execute("SELECT count(*) FROM orders")
            holder.rollback()
        assert r.status == "timeout" and "lock_timeout" in r.error
        assert box.execute("SELECT count(*) FROM orders").rows == [(3,)]


def test_a_full_pool_answers_busy_at_once(reader_url):
    with PostgresSandbox(reader_url, pool_size=1, pool_timeout_s=0.2) as box:
        with box._pool.connection():  # the one connection is taken
            with pytest.raises(PoolBusy, match="all 1 connections"):
                box.execute("SELECT 1")
        assert box.execute("SELECT 1").status == "ok"


# ---------------------------------------------------------------------------------------------- hostile SQL

def unwritten_file() -> Path:
    # In /tmp, which the server's user may write to: that the file is missing afterwards means nothing wrote it.
    return Path(tempfile.gettempdir()) / f"sqlft-hostile-{uuid.uuid4().hex}"


def hostile_table(marker: Path) -> list[tuple[str, str]]:
    """(SQL, the status it must get). `marker` is a file none of them may create."""
    m = str(marker)
    return [
        ("DELETE FROM orders", "rejected"),
        ("INSERT INTO orders (customer_id, total) VALUES (1, 1)", "rejected"),
        ("UPDATE customers SET name = 'x'", "rejected"),
        ("DROP TABLE orders", "rejected"),
        ("CREATE TABLE t2 (a int)", "rejected"),
        ("ALTER TABLE orders ADD COLUMN x int", "rejected"),
        ("TRUNCATE orders", "rejected"),
        ("GRANT SELECT ON secrets TO reader", "rejected"),
        (f"COPY orders TO '{m}'", "rejected"),
        (f"COPY (SELECT 1) TO PROGRAM 'touch {m}'", "rejected"),
        (f"COPY orders FROM PROGRAM 'touch {m}'", "rejected"),
        ("COPY customers FROM '/etc/hostname'", "rejected"),
        ("SELECT pg_read_file('/etc/passwd')", "rejected"),
        ("SELECT pg_catalog.pg_read_binary_file('/etc/passwd')", "rejected"),
        ("SELECT * FROM pg_ls_dir('.')", "rejected"),
        ("SELECT \"pg_stat_file\"('postgresql.conf')", "rejected"),
        ("SELECT U&\"pg_read_file\"('/etc/passwd')", "rejected"),
        ("SELECT lo_import('/etc/passwd')", "rejected"),
        (f"SELECT lo_export(lo_from_bytea(0, 'x'), '{m}')", "rejected"),
        ("SELECT * FROM dblink('dbname=shop', 'DELETE FROM orders') AS t(x text)", "rejected"),
        ("SELECT dblink_exec('dbname=shop', 'DROP TABLE orders')", "rejected"),
        ("SET ROLE reader", "rejected"),
        ("SET SESSION AUTHORIZATION reader", "rejected"),
        ("SET default_transaction_read_only = off", "rejected"),
        ("SELECT set_config('default_transaction_read_only', 'off', false)", "rejected"),
        ("SELECT current_setting('data_directory')", "rejected"),
        ("SELECT 1; DELETE FROM orders", "rejected"),
        (f"SELECT 1; COPY orders TO PROGRAM 'touch {m}'", "rejected"),
        ("SELECT $$;$$; DROP TABLE orders", "rejected"),
        ("SELECT 1 /* ; */; DROP TABLE customers", "rejected"),
        ("BEGIN; DELETE FROM orders; COMMIT", "rejected"),
        ("WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", "rejected"),
        ("SELECT * INTO stolen FROM customers", "rejected"),
        ("SELECT * FROM orders FOR UPDATE", "rejected"),
        ("SELECT rolname, rolpassword FROM pg_authid", "rejected"),
        ("SELECT * FROM pg_catalog.pg_settings", "rejected"),
        ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "rejected"),
        ("SELECT pg_advisory_lock(1)", "rejected"),
        ("SELECT nextval('orders_id_seq')", "rejected"),
        ("SELECT query_to_xml('DELETE FROM orders', true, true, '')", "rejected"),
        ("DO $$BEGIN DELETE FROM orders; END$$", "rejected"),
        ("EXPLAIN ANALYZE DELETE FROM orders", "rejected"),
        ("PREPARE p AS DELETE FROM orders", "rejected"),
        ("VACUUM orders", "rejected"),
        ("NOTIFY sqlft", "rejected"),
        ("SELECT * FROM other_db.public.orders", "rejected"),
        ("SELECT pg_sleep(30)", "timeout"),
        ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r", "timeout"),
    ]


def server_fingerprint(cluster) -> str:
    """Every table's rows, the relations, roles, databases, settings, large objects and extensions."""
    with psycopg.connect(cluster.superuser_conninfo("shop"), autocommit=True) as conn:
        parts = [conn.execute(sql).fetchall() for sql in (
            "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1, 2",
            "SELECT rolname, rolsuper, rolcanlogin, rolpassword FROM pg_authid ORDER BY 1",
            "SELECT datname FROM pg_database ORDER BY 1",
            "SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting ORDER BY 1, 2",
            "SELECT count(*) FROM pg_largeobject_metadata",
            "SELECT extname FROM pg_extension ORDER BY 1",
            "SELECT grantee, table_name, privilege_type FROM information_schema.role_table_grants ORDER BY 1, 2, 3",
        )]
        for table in ("customers", "orders", "big", "sales.targets", "secrets"):
            rows = f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"
            parts.append(conn.execute(rows).fetchall())
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


@pytest.mark.parametrize("who", ["superuser", "reader"])
def test_hostile_sql_changes_nothing(cluster, who, request):
    """As the superuser (only sqlft's own layers stand in the way) and as the SELECT-only reader."""
    url = request.getfixturevalue(f"{who}_url")
    marker = unwritten_file()
    before = server_fingerprint(cluster)
    with PostgresSandbox(url, timeout_s=1, max_rows=50, pool_size=2, allow_privileged_role=True) as box:
        got = [(sql, box.execute(sql).status, expected) for sql, expected in hostile_table(marker)]
        r = box.execute("SELECT a.n FROM big a, big b, big c")  # a billion rows: 50 come back
        assert (r.status, len(r.rows), r.truncated) == ("ok", 50, True)
        assert box.execute("SELECT count(*) FROM orders").rows == [(3,)]  # still usable afterwards
    wrong = [(sql, status) for sql, status, expected in got if status != expected]
    assert not wrong, wrong
    assert server_fingerprint(cluster) == before
    assert not marker.exists()


def unchecked(sql: str, known: set[str]) -> pg.CheckedSQL:
    """sqlft's SQL check switched off: the text runs as given."""
    return pg.CheckedSQL(sql.strip().rstrip(";"), None, frozenset(), frozenset())


def test_server_layers_hold_without_the_sql_check(cluster, superuser_url, monkeypatch):
    """With sqlglot's check switched off and a superuser role, the server itself still runs nothing but one
    read-only query: DECLARE CURSOR takes only a query, the extended protocol one statement, the transaction
    is READ ONLY."""
    monkeypatch.setattr(pg, "prepare_postgres_sql", unchecked)
    marker = unwritten_file()
    before = server_fingerprint(cluster)
    writes = ["DELETE FROM orders", "DROP TABLE orders", "CREATE TABLE t2 (a int)", "TRUNCATE big",
              f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'", f"COPY orders TO '{marker}'",
              "SELECT 1; DELETE FROM orders", f"SELECT 1; COPY orders TO PROGRAM 'touch {marker}'",
              "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", "SELECT * INTO stolen FROM customers",
              "SELECT * FROM orders FOR UPDATE", "SET SESSION AUTHORIZATION reader", "SELECT nextval('orders_id_seq')",
              "SELECT lo_from_bytea(0, 'x')", "DO $$BEGIN DELETE FROM orders; END$$", "SELECT pg_advisory_lock(7)"]
    with PostgresSandbox(superuser_url, timeout_s=2, pool_size=1, allow_privileged_role=True) as box:
        got = {sql: box.execute(sql) for sql in writes}
        # The one pooled connection kept no lock or setting from what ran before (rollback + DISCARD ALL).
        assert box.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").rows == [(0,)]
        assert box.execute("SELECT current_setting('transaction_read_only')").rows == [("on",)]
    # Two run even in a READ ONLY transaction: a large object is created (then rolled back) and a session
    # advisory lock is taken (then released by DISCARD ALL): the fingerprint below shows neither stayed.
    ran = {sql for sql, r in got.items() if r.status == "ok"}
    assert ran <= {"SELECT lo_from_bytea(0, 'x')", "SELECT pg_advisory_lock(7)"}, ran
    assert server_fingerprint(cluster) == before
    assert not marker.exists()


def test_the_role_is_the_layer_for_what_a_query_may_read(reader_url, monkeypatch):
    """What only the role can guarantee: with sqlft's check off, reading a file is refused by its grants."""
    monkeypatch.setattr(pg, "prepare_postgres_sql", unchecked)
    with PostgresSandbox(reader_url, pool_size=1) as box:
        r = box.execute("SELECT pg_read_file('/etc/passwd')")
        assert r.status == "rejected" and "permission denied" in r.error
        assert box.execute("SELECT * FROM secrets").status == "rejected"


# ---------------------------------------------------------------------------------------------- one rule


def test_one_engine_rule(reader_url, tmp_path):
    import sqlite3
    path = tmp_path / "x.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (a)").connection.commit()
    assert engine_for(reader_url) == "postgres"
    assert engine_for(path) == "sqlite"
    assert engine_for("academic") == "duckdb" and engine_for("dump.sql") == "duckdb"


def test_transpiled_from_the_models_dialect(reader_box):
    on_pg = to_engine("SELECT IFNULL(total, 0) AS t FROM orders ORDER BY id LIMIT 1", "sqlite", "postgres")
    assert on_pg == "SELECT COALESCE(total, 0) AS t FROM orders ORDER BY id NULLS FIRST LIMIT 1"
    assert float(reader_box.execute(on_pg).rows[0][0]) == 9.5
    # SQLite sorts NULLs last in DESC order, PostgreSQL first: transpiled, the answer is SQLite's.
    newest = 'SELECT name FROM customers ORDER BY "Signup Date" DESC LIMIT 1'
    assert reader_box.execute(newest).rows == [("Cy",)]
    assert reader_box.execute(to_engine(newest, "sqlite", "postgres")).rows == [("Bob",)]
    assert to_engine(newest, "postgres", "postgres") == newest


# ---------------------------------------------------------------------------------------------- sqlft eval


def test_eval_scores_predictions_on_a_live_server(cluster, tmp_path):
    from eval import run as eval_run
    preds = [
        {"id": "m", "db_id": "shop", "gold_sql": "SELECT count(*) FROM orders WHERE status = 'paid'",
         "pred_sql": "SELECT COUNT(id) FROM orders WHERE status = 'paid'"},
        {"id": "x", "db_id": "shop", "gold_sql": "SELECT name FROM customers WHERE id = 1",
         "pred_sql": "SELECT name FROM customers WHERE id = 2"},
        {"id": "r", "db_id": "shop", "gold_sql": "SELECT 1", "pred_sql": "SELECT pg_read_file('/etc/passwd')"},
        {"id": "t", "db_id": "shop", "gold_sql": "SELECT 1", "pred_sql": "SELECT pg_sleep(30)"},
        {"id": "e", "db_id": "shop", "gold_sql": "SELECT 1", "pred_sql": "SELECT nope FROM orders"},
        {"id": "g", "db_id": "nowhere", "gold_sql": "SELECT 1", "pred_sql": "SELECT 1"},
    ]
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in preds))
    out = tmp_path / "out"
    root = f"postgresql://reader@127.0.0.1:{cluster.port}/"
    eval_run.main(["--predictions", str(path), "--db-root", root, "--dialect", "postgres", "--out", str(out),
                   "--timeout-s", "0.5", "--workers", "2"])
    rows = {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert {i: r["status"] for i, r in rows.items()} == {
        "m": "match", "x": "mismatch", "r": "rejected", "t": "pred_timeout", "e": "pred_exec_error",
        "g": "gold_error"}
    assert {r["engine"] for i, r in rows.items() if i != "g"} == {"postgres"}
    assert "nowhere" in rows["g"]["reason"] and PASSWORD not in (out / "results.jsonl").read_text()


# ---------------------------------------------------------------------------------------------- sqlft serve


def serve_client(backend=None, **settings):
    """A TestClient over the real app with a fake model; returns it entered and ready."""
    from fastapi.testclient import TestClient

    from serve.app import create_app
    from serve.settings import Settings
    from serve.testing import FakeBackend
    backend = backend or FakeBackend("SELECT 1")
    client = TestClient(create_app(Settings(backend="fake", demo_databases=False, **settings),
                                   load_backend=lambda s: backend))
    client.__enter__()
    deadline = time.monotonic() + 60
    while (ready := client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline and "load_failed" not in ready.text, ready.json()
        time.sleep(0.05)
    return client


def test_serve_lists_transpiles_and_reloads_a_live_database(cluster, reader_url, tmp_path):
    from serve.testing import FakeBackend
    concert = sqlite_file(tmp_path)
    # A model trained on SQLite-dialect data writes IFNULL; PostgreSQL runs COALESCE.
    model_sql = "SELECT name, IFNULL(total, 0) AS spent FROM customers JOIN orders ON customer_id = customers.id"
    client = serve_client(FakeBackend(model_sql), database=[f"shop={reader_url}", f"concert={concert}"],
                          dialect="sqlite")
    try:
        listed = {d["name"]: d for d in client.get("/databases").json()}
        assert {n: d["engine"] for n, d in listed.items()} == {"shop": "postgres", "concert": "sqlite"}
        assert listed["shop"]["tables"] == ["big", "customers", "orders", "sales.targets"]
        assert "FOREIGN KEY (customer_id) REFERENCES customers(id)" in listed["shop"]["db_schema"]

        answer = client.post("/sql", json={"question": "What did each customer spend?", "database": "shop",
                                           "execute": True}).json()
        assert answer["sql"] == model_sql and answer["valid"] and answer["dialect"] == "sqlite"
        assert "COALESCE(total, 0)" in answer["executed_sql"] and answer["engine"] == "postgres"
        assert answer["result"]["status"] == "ok", answer["result"]
        assert sorted(answer["result"]["rows"]) == [["Ann", 9.5], ["Ann", 20.0], ["Bob", 3.25]]

        hostile = client.post("/execute", json={"database": "shop", "sql": "COPY orders TO PROGRAM 'id'"}).json()
        assert hostile["status"] == "rejected"
        same = client.post("/execute", json={"database": "shop", "sql": "SELECT count(*) AS n FROM big",
                                             "dialect": "postgres"}).json()
        assert (same["rows"], same["executed_sql"]) == ([[1000]], None)

        cluster.psql("CREATE TABLE late (x int); GRANT SELECT ON late TO reader", db="shop")
        try:
            reloaded = client.post("/databases/shop/reload").json()
            assert "late" in reloaded["tables"] and "CREATE TABLE late (x INTEGER);" in reloaded["db_schema"]
            assert "late" in {t for d in client.get("/databases").json() for t in d["tables"]}
        finally:
            cluster.psql("DROP TABLE late", db="shop")
        refused = client.post("/databases/concert/reload")
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "not_reloadable"
        assert PASSWORD not in client.get("/databases").text + client.get("/readyz").text
    finally:
        client.__exit__(None, None, None)


def test_serve_answers_429_when_every_connection_is_busy(reader_url):
    client = serve_client(database=[f"shop={reader_url}"], pool_size=1, pool_wait_s=0.2)
    try:
        box = client.app.state.sqlft.databases["shop"].sandbox
        with box._pool.connection():  # the only connection is taken (as by a long query)
            busy = client.post("/execute", json={"database": "shop", "sql": "SELECT 1"})
            assert busy.status_code == 429 and busy.json()["error"]["code"] == "busy"
            assert busy.headers["retry-after"] == "1" and "shop" in busy.json()["error"]["message"]
        assert client.post("/execute", json={"database": "shop", "sql": "SELECT 1"}).json()["status"] == "ok"
    finally:
        client.__exit__(None, None, None)


def sqlite_file(folder: Path) -> Path:
    import sqlite3
    path = folder / "concert.sqlite"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INT);"
                      "INSERT INTO singer VALUES (1, 'Ann', 'France', 41), (2, 'Bob', 'Spain', 29), "
                      "(3, 'Cy', 'France', 35);")
    con.commit()
    con.close()
    return path


SAME_ON_BOTH = [  # (database, dialect, SQL): eval and serve must give the same status and rows
    ("concert", "sqlite", 'SELECT name FROM singer WHERE country = "France" ORDER BY name'),  # SQLite's "string"
    ("concert", "sqlite", "SELECT 7 / 2, count(*) FROM singer"),  # integer division on SQLite
    ("concert", "sqlite", "SELECT name FROM singer WHERE name LIKE 'a%'"),  # case-insensitive LIKE
    ("concert", "postgres", "SELECT name FROM singer ORDER BY age DESC NULLS LAST LIMIT 2"),
    ("concert", "sqlite", "SELECT nope FROM singer"),
    ("concert", "sqlite", "DELETE FROM singer"),
    ("shop", "postgres", "SELECT status, sum(total) FROM orders GROUP BY status ORDER BY status"),
    ("shop", "sqlite", "SELECT name, IFNULL(\"Signup Date\", '2000-01-01') FROM customers ORDER BY id"),
    ("shop", "postgres", "SELECT 7 / 2"),
    ("shop", "postgres", "SELECT pg_read_file('/etc/passwd')"),
    ("shop", "postgres", "SELECT nope FROM orders"),
]


def test_eval_and_serve_run_the_same_sql_the_same_way(reader_url, tmp_path):
    """The one execution rule: eval's scoring path and serve's /execute choose the same engine and transpile
    the same way, so the same SQL on the same source gives the same status and rows."""
    from sqlft.scoring import execution as eval_scoring
    from sqlft.data.examples import Example
    from serve.execution import json_value
    sources = {"concert": str(sqlite_file(tmp_path)), "shop": reader_url}
    client = serve_client(database=[f"{name}={source}" for name, source in sources.items()])
    try:
        for name, dialect, sql in SAME_ON_BOTH:
            example = Example(id="1", question="q", gold_sqls=[sql], db_id=name, database=sources[name])
            instances = eval_scoring.prepare_instances([example], dialect, 1, 1)
            eval_scoring.open_sandboxes(instances, 5.0)
            (inst,) = instances.values()
            try:
                scoring = eval_scoring.Scoring(dialect, "strict", 0.0)
                on_eval = inst.boxes[0].execute(eval_scoring._runnable(sql, inst, scoring))
            finally:
                inst.boxes[0].close()
            on_serve = client.post("/execute", json={"database": name, "sql": sql, "dialect": dialect}).json()
            assert inst.engine == {"concert": "sqlite", "shop": "postgres"}[name]
            assert on_serve["status"] == on_eval.status, (sql, on_serve, on_eval)
            assert on_serve["rows"] == [[json_value(v) for v in row] for row in on_eval.rows], sql
    finally:
        client.__exit__(None, None, None)


def test_the_page_lists_and_queries_a_live_database(reader_url, monkeypatch):
    """The Streamlit page over a real server: the PostgreSQL database is listed like the others, the answer
    shows the model's SQL and the SQL PostgreSQL ran, and the rows."""
    from streamlit.testing.v1 import AppTest

    from serve.app import create_app
    from serve.settings import Settings
    from serve.testing import FakeBackend, running_server
    backend = FakeBackend("SELECT status, IFNULL(SUM(total), 0) AS total FROM orders GROUP BY status ORDER BY status")
    app = create_app(Settings(backend="fake", demo_databases=False, database=[f"shop={reader_url}"], dialect="sqlite"),
                     load_backend=lambda s: backend)
    with running_server(app) as url:
        monkeypatch.setenv("SQLFT_API_URL", url)
        monkeypatch.delenv("SQLFT_API_KEY", raising=False)
        at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "ui" / "app.py"), default_timeout=30).run()
        assert at.selectbox[0].value == "shop" and "CREATE TABLE customers" in at.code[0].value
        at.text_input[0].input("Total per order status?")
        at.button[0].click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert at.code[-2].value == backend.sql and "COALESCE(SUM(total), 0)" in at.code[-1].value
        assert any("Run on postgres as" in c.value for c in at.caption)
        frame = at.dataframe[0].value
        assert list(frame.columns) == ["status", "total"] and frame.values.tolist() == [["open", 3.25], ["paid", 29.5]]


def test_a_service_file_gives_host_user_and_password(cluster, tmp_path, monkeypatch):
    service = tmp_path / "pg_service.conf"
    service.write_text(f"[sqlft_shop]\nhost=127.0.0.1\nport={cluster.port}\nuser=reader\ndbname=shop\n"
                       f"password={PASSWORD}\n")
    monkeypatch.setenv("PGSERVICEFILE", str(service))
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")
    with PostgresSandbox("postgresql:///?service=sqlft_shop", pool_size=1) as box:
        assert box.execute("SELECT count(*) FROM customers").rows == [(3,)]
        assert box.display == "postgresql:///?service=sqlft_shop"


def test_eval_sets_take_their_schema_from_the_catalog(cluster, tmp_path):
    from sqlft.data.examples import load_eval_set
    questions = tmp_path / "questions_gen_postgres.csv"
    questions.write_text("question,query,db_name,query_category,instructions\n"
                         "How many customers?,SELECT COUNT(*) FROM customers,shop,count,\n")
    evalset = load_eval_set(str(questions), db_root=f"postgresql://reader@127.0.0.1:{cluster.port}/")
    (example,) = evalset.examples
    assert example.database == f"postgresql://reader@127.0.0.1:{cluster.port}/shop" and not example.database_error
    assert "CREATE TABLE customers /* People who bought something */" in example.db_schema
    assert evalset.dialect == "postgres"


def test_the_run_records_the_dialect_its_model_writes(tmp_path):
    import yaml

    from sqlft.config import load_config, save_config
    from sqlft.model.generate import resolve_ref
    root = Path(__file__).resolve().parents[1]
    assert load_config(root / "configs" / "smollm2-135m-lora-cpu.yaml").data.sql_dialect == "duckdb"  # demo data
    assert load_config(root / "configs" / "smollm2-135m-spider-cpu.yaml").data.sql_dialect == "sqlite"  # Spider
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    save_config(load_config(None, ["data.train=[{path: x.jsonl}]", "data.sql_dialect=postgres"]), run / "config.yaml")
    assert resolve_ref(str(run)).sql_dialect == "postgres"
    old = yaml.safe_load((run / "config.yaml").read_text())
    del old["data"]["sql_dialect"]  # a run made before the field: inferred from its data
    (run / "config.yaml").write_text(yaml.safe_dump(old))
    assert resolve_ref(str(run)).sql_dialect == "sqlite"
