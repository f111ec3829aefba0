"""Issue 24 on PostgreSQL: what runs is what was checked, the role is checked at registration, and a differential
fuzz holds the check to what the server itself reads.

- The probe's escapes (nested comments, attribute-style calls, CTE names over catalog views, a backend killed by a
  SELECT-only role) and a hostile corpus run as the superuser (allowed, so only sqlft's layers stand in the way)
  and as the SELECT-only reader: no file, hash, setting or role comes back, nothing is killed, and every query
  that is accepted runs as text that re-parses to the tree that was checked.
- A role that is superuser, holds pg_signal_backend / pg_read_server_files, or may write a table is refused with
  a message naming what it holds and how to make a read-only role; --allow-privileged-role lets it in, warned.
- The fuzz: hypothesis writes queries from a small grammar (comments nested and not, quoting, dollar quotes, E''
  strings, casts, attribute calls, schema-qualified calls, CTE shadowing); for each that the check accepts,
  PostgreSQL's own plan (EXPLAIN VERBOSE, as a role holding only SELECT on the shop tables and the catalog reads
  every role has) must reference only the tables and functions the check saw. More cases: SQLFT_FUZZ_CASES.
"""

import json
import os
import re

import psycopg
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sqlft.sql.postgres as pg
from sqlft.sql.postgres import CheckedSQL, PostgresSandbox, PrivilegedRole, prepare_postgres_sql
from tests.pg_fixtures import PASSWORD

KNOWN = {"customers", "orders", "big", "sales.targets"}
LEAKS = ("root:", "SCRAM-SHA-256", "do-not-read", "postgresql.conf", "data_directory", "/etc/", "rolpassword")

# The probe's escapes (issue 24, D1-D3) and more of their kind.
ESCAPES = [
    "SELECT 1 AS a /* /* */* */ , pg_read_file('/etc/passwd') AS b -- */",
    "SELECT 1 AS a /* /* */ , pg_read_file('/etc/passwd') AS b /* */ */",
    "SELECT 1 AS a /* /* */* */ , (SELECT string_agg(rolpassword, ',') FROM pg_authid) AS b -- */",
    "SELECT 1 AS a /* /* */* */ , current_setting('config_file') AS b -- */",
    "SELECT ('/etc/hostname'::text).pg_read_file",
    "SELECT ('/etc/passwd'::text).pg_read_file AS x FROM customers",
    "SELECT (name).pg_read_file FROM customers",
    "SELECT c.pg_read_file FROM customers c",
    "SELECT ('config_file'::text).current_setting",
    "SELECT (1).pg_terminate_backend",
    "WITH pg_roles AS (SELECT * FROM pg_roles) SELECT rolname FROM pg_roles",
    "WITH pg_authid AS (SELECT * FROM pg_authid) SELECT rolname, rolpassword FROM pg_authid",
    "WITH pg_settings AS (SELECT * FROM pg_settings) SELECT name, setting FROM pg_settings",
    "WITH pg_database AS (SELECT * FROM pg_database) SELECT datname FROM pg_database",
    "WITH pg_stat_activity AS (SELECT * FROM pg_stat_activity) SELECT (pid).pg_terminate_backend "
    "FROM pg_stat_activity WHERE usename = current_user AND state = 'idle'",
    "WITH a AS (SELECT * FROM pg_roles), pg_roles AS (SELECT 1) SELECT * FROM a",
    "WITH a AS (WITH b AS (SELECT * FROM pg_settings) SELECT * FROM b), pg_settings AS (SELECT 1) SELECT * FROM a",
    "SELECT * FROM (WITH pg_roles AS (SELECT * FROM pg_roles) SELECT * FROM pg_roles) t",
    "SELECT pg_catalog.pg_read_file('/etc/passwd')",
    "SELECT \"pg_read_file\"('/etc/passwd')",
    "SELECT 'pg_authid'::regclass::oid",
    "SELECT repeat('x', 500000000)",
    "SELECT repeat('x', 5 * 100000000)",
    "SELECT format('%500000000s', 'x')",
    "SELECT $$ */ $$ AS a, 1 /* $$ */ AS b",
    "SELECT E'\\' /* ' AS a, pg_read_file('/etc/passwd') -- '",
    "SELECT 'a\\' AS a, pg_read_file('/etc/passwd') AS b --'",
    "SELECT 1 FROM customers -- \n; SELECT pg_read_file('/etc/passwd')",
    "SELECT name FROM public.customers UNION SELECT rolname FROM pg_roles",
    "SELECT name FROM customers WHERE id IN (SELECT oid::int FROM pg_authid)",
    "SELECT name FROM customers c, LATERAL (SELECT pg_ls_dir('.')) d",
    "SELECT * FROM ROWS FROM (pg_ls_dir('.')) AS t",
    "SELECT (SELECT setting FROM pg_settings WHERE name = 'data_directory')",
    "SELECT xmlparse(document '<a/>')",
    "SELECT '<a/>'::xml",
    "SELECT lo_import('/etc/passwd')",
    "SELECT pid FROM pg_stat_activity",
]
# Ordinary questions' SQL: must still be accepted and give the same rows as written.
ORDINARY = [
    ("SELECT count(*) FROM customers", [(3,)]),
    ("SELECT name FROM customers /* a comment */ WHERE id = 1 -- and another", [("Ann",)]),
    ("SELECT c.name, sum(o.total) AS spent FROM customers c JOIN orders o ON o.customer_id = c.id "
     "GROUP BY c.name ORDER BY spent DESC", None),
    ("WITH paid AS (SELECT * FROM orders WHERE status = 'paid') SELECT count(*) FROM paid", [(2,)]),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 4) SELECT sum(n) FROM r", [(10,)]),
    ("SELECT $$it's$$ || E'\\tx' AS t", [("it's\tx",)]),
    ("SELECT region FROM sales.targets WHERE year = 2024 ORDER BY region", [("north",), ("south",)]),
    ("SELECT lower(name), length(name)::text FROM customers WHERE name ILIKE 'a%'", [("ann", "3")]),
    ("SELECT repeat('ab', 3)", [("ababab",)]),
    ("SELECT 'c\\d' AS backslash", [("c\\d",)]),
]


@pytest.fixture(scope="module")
def roles(cluster):
    """Roles that must be refused, and the fuzz's role (SELECT on the shop tables, nothing more)."""
    cluster.psql(f"""
        CREATE ROLE signaller LOGIN PASSWORD '{PASSWORD}'; GRANT pg_signal_backend TO signaller;
        GRANT SELECT ON customers TO signaller;
        CREATE ROLE filereader LOGIN PASSWORD '{PASSWORD}'; GRANT pg_read_server_files TO filereader;
        GRANT SELECT ON customers TO filereader;
        CREATE ROLE writer LOGIN PASSWORD '{PASSWORD}'; GRANT SELECT, INSERT ON orders TO writer;
        GRANT SELECT ON customers TO writer;
        CREATE ROLE fuzzer LOGIN PASSWORD '{PASSWORD}'; GRANT SELECT ON customers, orders, big TO fuzzer;
    """, db="shop")
    pgpass = os.environ["PGPASSFILE"]
    with open(pgpass, "a") as f:
        for role in ("signaller", "filereader", "writer", "fuzzer"):
            f.write(f"127.0.0.1:{cluster.port}:*:{role}:{PASSWORD}\n")
    return {role: cluster.url("shop", role) for role in ("signaller", "filereader", "writer", "fuzzer")}


def assert_runs_what_was_checked(checked: CheckedSQL) -> None:
    """The executed text re-parses to the checked tree, and checking it again changes nothing."""
    assert sqlglot.parse_one(checked.text, read="postgres") == checked.tree, checked.text
    again = prepare_postgres_sql(checked.text, KNOWN)
    assert isinstance(again, CheckedSQL) and again.text == checked.text and again.tables == checked.tables


@pytest.mark.parametrize("who", ["superuser", "reader"])
def test_the_probes_escapes_reveal_nothing(cluster, who, request):
    url = request.getfixturevalue(f"{who}_url")
    backends = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'shop'"
    with psycopg.connect(cluster.superuser_conninfo("shop"), autocommit=True) as admin:
        with PostgresSandbox(url, timeout_s=2, pool_size=3, allow_privileged_role=True) as box:
            for _ in range(3):
                box.execute("SELECT 1")
            before = admin.execute(backends).fetchone()[0]
            accepted = []
            for sql in ESCAPES:
                result = box.execute(sql)
                text = json.dumps([result.rows, result.error], default=str)
                assert not any(leak in text for leak in LEAKS), (sql, text)
                checked = prepare_postgres_sql(sql, box.tables)
                if result.status == "ok":
                    accepted.append(sql)
                    assert isinstance(checked, CheckedSQL)
                    assert_runs_what_was_checked(checked)
            assert admin.execute(backends).fetchone()[0] >= before  # no backend was terminated
            assert box.execute("SELECT count(*) FROM orders").rows == [(3,)]
    # Only the nested-comment queries run, as what sqlglot read: the part PostgreSQL would have run is gone.
    assert all("/*" in sql for sql in accepted), accepted


def test_the_nested_comment_runs_as_checked(reader_url):
    sql = "SELECT 1 AS a /* /* */* */ , pg_read_file('/etc/passwd') AS b -- */"
    checked = prepare_postgres_sql(sql, KNOWN)
    assert isinstance(checked, CheckedSQL) and checked.text == "SELECT 1 AS a"
    with PostgresSandbox(reader_url, pool_size=1) as box:
        r = box.execute(sql)
    assert (r.status, r.columns, r.rows) == ("ok", ["a"], [(1,)])


@pytest.fixture(scope="module")
def reader_box(reader_url):
    with PostgresSandbox(reader_url, timeout_s=2, max_rows=100, pool_size=1) as box:
        yield box


def test_ordinary_sql_still_runs_as_written(reader_box):
    for sql, rows in ORDINARY:
        checked = prepare_postgres_sql(sql, reader_box.tables)
        assert isinstance(checked, CheckedSQL), (sql, checked)
        assert_runs_what_was_checked(checked)
        result = reader_box.execute(sql)
        assert result.status == "ok", (sql, result.error)
        if rows is not None:
            assert result.rows == rows, sql
    # Tables are pinned to their schema: no search_path, temporary table or catalog view can stand in for them.
    assert prepare_postgres_sql("SELECT * FROM customers", KNOWN).text == "SELECT * FROM public.customers"


def test_cte_names_are_scoped_as_postgres_binds_them():
    ok = ["WITH a AS (SELECT 1 AS x), b AS (SELECT * FROM a) SELECT * FROM b",
          "WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a",  # recursive: all visible
          "WITH a AS (SELECT 1 AS x) SELECT * FROM (SELECT * FROM a) s JOIN customers c ON true"]
    refused = ["WITH pg_roles AS (SELECT * FROM pg_roles) SELECT 1",
               "WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a",  # not recursive: b is a table
               "SELECT * FROM (WITH a AS (SELECT 1) SELECT * FROM a) s, a"]  # a is out of scope there
    for sql in ok:
        assert isinstance(prepare_postgres_sql(sql, KNOWN), CheckedSQL), sql
    for sql in refused:
        assert prepare_postgres_sql(sql, KNOWN)[0] == "rejected", sql


# ---------------------------------------------------------------------------------------------- roles


@pytest.mark.parametrize("who, named", [("superuser", "is a superuser"), ("signaller", "pg_signal_backend"),
                                        ("filereader", "pg_read_server_files"), ("writer", "may write to")])
def test_a_privileged_role_is_refused_with_the_fix(request, roles, who, named):
    url = request.getfixturevalue("superuser_url") if who == "superuser" else roles[who]
    with pytest.raises(PrivilegedRole) as refused:
        PostgresSandbox(url, pool_size=1)
    message = str(refused.value)
    assert named in message and "GRANT SELECT ON ALL TABLES" in message and "--allow-privileged-role" in message
    assert PASSWORD not in message
    with PostgresSandbox(url, pool_size=1, allow_privileged_role=True) as box:  # the explicit opt-out
        assert named in box.role_warning and box.execute("SELECT count(*) FROM customers").rows == [(3,)]


def test_the_read_only_roles_are_accepted(reader_url, roles):
    for url in (reader_url, roles["fuzzer"]):
        with PostgresSandbox(url, pool_size=1) as box:
            assert box.role_warning == ""


def test_serve_refuses_a_privileged_role_unless_allowed(superuser_url, capsys):
    from serve.app import create_app
    from serve.settings import Settings
    from serve.state import ServerState
    from serve.testing import FakeBackend

    state = ServerState(Settings(backend="fake", demo_databases=False, database=[f"live={superuser_url}"]),
                        lambda s: FakeBackend())
    state.load()
    assert not state.ready and "superuser" in state.load_error and "allow-privileged-role" in state.load_error
    state.close()
    allowed = ServerState(Settings(backend="fake", demo_databases=False, database=[f"live={superuser_url}"],
                                   allow_privileged_role=True), lambda s: FakeBackend())
    allowed.load()
    try:
        assert allowed.ready and "WARNING" in capsys.readouterr().err
    finally:
        allowed.close()
    assert create_app  # the app is what `sqlft serve` runs around this state


# ---------------------------------------------------------------------------------------------- fuzz

KNOWN_TABLES = ["customers", "orders", "big", "public.customers", "public.orders"]
OTHER_TABLES = ["pg_roles", "pg_authid", "pg_settings", "pg_stat_activity", "pg_catalog.pg_class",
                "information_schema.tables", "secrets", "sales.targets"]
COLUMN_OF = {"customers": "name", "orders": "status", "big": "n"}
SAFE_FUNCTIONS = ["lower", "upper", "length", "md5", "quote_ident", "trim", "reverse", "initcap"]
HOSTILE_FUNCTIONS = ["pg_read_file", "current_setting", "pg_terminate_backend", "version", "pg_ls_dir", "set_config"]
# Comments and strings are where a second reader could see something else: hostile text hides in them.
COMMENTS = ["/* x */", "/* /* */* */", "/* /* */", "/* /* */ pg_read_file('/etc/passwd') /* */ */",
            "/* pg_read_file('/etc/passwd') */", "-- x\n", "-- */ pg_read_file('x')\n", "/* -- */", "/* $$ */",
            "/* ' */", '/* " */', "/**/", "/* */ */"]
LITERALS = ["'a'", "'it''s'", "$$a'b$$", "$t$ */ $t$", "$$ /* $$", "E'\\''", "E'\\\\'", "'c\\'",
            "'-- x'", "'/* x'", "E'\\' /* '", "U&'\\0061'", "'1'::int", "'x'::text", "'pg_authid'::regclass"]


@st.composite
def hostile_queries(draw) -> str:
    pad = lambda: draw(st.sampled_from(["", " ", " ", *COMMENTS]))  # noqa: E731 - a comment or nothing
    table = draw(st.sampled_from(KNOWN_TABLES * 3 + OTHER_TABLES))
    base = table.split(".")[-1]
    column = COLUMN_OF.get(base, "1")
    literal = draw(st.sampled_from(LITERALS))
    function = draw(st.sampled_from(SAFE_FUNCTIONS * 3 + HOSTILE_FUNCTIONS))
    argument = draw(st.sampled_from([column, f"{literal}::text", literal]))
    expr = draw(st.sampled_from([
        f"{function}({argument})", f"{function}({pad()}{argument}{pad()})", f"({argument}::text).{function}",
        f"t.{function}", literal, f"{literal} || {pad()}{argument}", f"pg_catalog.{function}({argument})",
        f"\"{function}\"({argument})", f"({argument})::varchar", f"(SELECT {column} FROM {table} LIMIT 1)",
    ]))
    cte = draw(st.sampled_from(["", "", "", f"WITH {base} AS (SELECT * FROM {table}) ",
                                f"WITH RECURSIVE {base} AS (SELECT * FROM {table}) ",
                                f"WITH a AS (SELECT * FROM {table}), {base} AS (SELECT 1 AS x) "]))
    source = base if cte and not cte.startswith("WITH a AS") else table
    return (f"{cte}SELECT{pad()} {expr} AS v{pad()}, {column}{pad()} "
            f"FROM {pad()}{source} t{pad()} LIMIT 1{pad()}")


_FUNCTION_CALL = re.compile(r"\b([a-z_][a-z0-9_]*)\(")
_CAST_FUNCTIONS = {"int4", "int8", "numeric", "text", "varchar", "bpchar", "float8", "date", "timestamp"}


def plan_references(plan: dict) -> tuple[set[str], set[str]]:
    """(schema.table names, function names) in PostgreSQL's EXPLAIN VERBOSE plan."""
    tables, functions = set(), set()

    def walk(node):
        if isinstance(node, dict):
            if "Relation Name" in node:
                tables.add(f"{node.get('Schema', 'public')}.{node['Relation Name']}")
            if "Function Name" in node:
                functions.add(node["Function Name"])
            for key, value in node.items():
                if isinstance(value, str) and key not in ("Node Type", "Alias", "Relation Name", "Schema"):
                    functions.update(_FUNCTION_CALL.findall(re.sub(r"'(?:[^']|'')*'", "''", value)))
                elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                    for text in value:
                        functions.update(_FUNCTION_CALL.findall(re.sub(r"'(?:[^']|'')*'", "''", text)))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(plan)
    return tables, functions


FUZZ_CASES = int(os.environ.get("SQLFT_FUZZ_CASES", "300"))


def test_differential_fuzz_postgres_sees_what_the_check_saw(roles):
    accepted, refused, server_refused = [], [], []
    with psycopg.connect(roles["fuzzer"], autocommit=False) as conn:
        conn.read_only = True

        @settings(max_examples=FUZZ_CASES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(hostile_queries())
        def check(sql: str) -> None:
            checked = prepare_postgres_sql(sql, KNOWN)
            if isinstance(checked, tuple):
                refused.append(sql)
                return  # refused by the check
            assert_runs_what_was_checked(checked)
            try:
                conn.execute("SET LOCAL statement_timeout = 2000")
                plan = conn.execute(f"EXPLAIN (VERBOSE, FORMAT JSON) {checked.text}").fetchone()[0]
            except psycopg.Error:
                conn.rollback()
                server_refused.append(sql)
                return  # the server refuses it (no such column, permission denied): nothing runs
            conn.rollback()
            tables, functions = plan_references(plan)
            checked_tables = {t if "." in t else f"public.{t}" for t in checked.tables}
            assert tables <= checked_tables, (sql, checked.text, tables, checked_tables)
            unseen = functions - checked.functions - _CAST_FUNCTIONS
            assert not unseen, (sql, checked.text, unseen, checked.functions)
            assert not any(pg._name_problem(f) for f in functions), (sql, functions)
            accepted.append(sql)

        check()
    print(f"fuzz: {len(refused)} refused by the check, {len(server_refused)} accepted but refused by the server, "
          f"{len(accepted)} accepted and planned with the same references")
    assert accepted, "the grammar produced no query the check accepts: the fuzz tested nothing"
