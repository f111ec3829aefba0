"""PostgreSQL as a database source: a connection URL, its schema read from the catalog, bounded read-only execution.

    python -m sqlft.sql.postgres postgresql://reader@db.example:5432/shop     # prints the schema the model is given

    with PostgresSandbox("postgresql://reader@db.example:5432/shop", timeout_s=5) as box:
        box.ddl                                    # CREATE TABLE lines from the catalog (the model's context)
        box.execute("SELECT count(*) FROM orders")  # ExecutionResult, as every sqlft.sql.sandbox.Sandbox gives

Passwords never appear in a URL: libpq takes them from PGPASSWORD, ~/.pgpass (PGPASSFILE) or a service file
(postgresql:///?service=shop, PGSERVICEFILE), and every message sqlft writes goes through `redact`.

The layers, each separate:
  - the role: at registration a role that is superuser, holds a dangerous predefined role (DANGEROUS_ROLES) or
    may write a table is refused (PrivilegedRole) unless allow_privileged_role, which warns at every start;
  - what runs is what was checked (prepare_postgres_sql): sqlglot parses the SQL as PostgreSQL and the check walks
    that tree (one query; no data-modifying CTE, SELECT INTO or FOR UPDATE/SHARE; tables of this database or CTEs
    in scope as PostgreSQL scopes them; no function that reaches outside the database or changes settings, in any
    position, attribute-style and schema-qualified calls included; no catalog casts; literal sizes), then the
    server runs text generated from that tree: no comments, tables schema-qualified, parsed back to the same tree;
  - the server runs it as `DECLARE ... CURSOR FOR <sql>` through the extended protocol: it refuses a second
    statement and anything that is not a query (COPY, SET, CALL, DO, DDL), data-modifying WITH included;
  - in a READ ONLY transaction (also the session default), with statement_timeout (and a cancel half a second
    later as a backstop), lock_timeout and idle_in_transaction_session_timeout; always rolled back, then DISCARD
    ALL before the connection is reused;
  - rows are fetched in chunks up to max_rows + 1 and max_result_bytes, then the query is cancelled; the
    server itself counts the bytes it sends (a running sum over each row's text) and stops the query with an
    error before a row would pass max_result_bytes: a chunk, or one value, never reaches sqlft's memory whole;
  - a bounded pool: past pool_size queries at once, execute() raises PoolBusy (serve answers 429); a server that
    cannot be reached raises SourceUnavailable (503).
What only the role can guarantee: that user-defined functions or views reached by an allowed query do nothing
outside the database, and which rows and columns may be read. Connect with a role that has SELECT grants only.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlglot
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout
from sqlglot import exp

from sqlft.core.errors import SqlftError
from sqlft.sql.sandbox import ClosesOnce, ExecutionResult, value_size

log = logging.getLogger("sqlft")

URL_SCHEMES = ("postgresql://", "postgres://")

# Functions that read or write server files, reach other servers, take session-wide locks or change settings.
# Every other pg_* function is refused too (pg_terminate_backend, pg_reload_conf, pg_ls_*, ...) except these:
DENIED_FUNCTIONS = {
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "lo_export",
    "lo_from_bytea", "lo_put", "lo_get", "lo_create", "lo_unlink", "lo_open", "lo_write", "lo_truncate",
    "lo_creat", "dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query",
    "dblink_open", "dblink_fetch", "dblink_get_result", "postgres_fdw_handler", "postgres_fdw_validator",
    "set_config", "current_setting", "nextval", "setval", "txid_current",
    # These run a query given as text, which the checks above would never see.
    "query_to_xml", "query_to_xml_and_xmlschema", "query_to_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
    "table_to_xml", "table_to_xml_and_xmlschema", "schema_to_xml", "database_to_xml", "ts_stat",
}
ALLOWED_PG_FUNCTIONS = {"pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_typeof", "pg_size_pretty"}
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Copy,
           exp.Command, exp.Into, exp.Lock, exp.TruncateTable)

DEFAULT_MAX_RESULT_BYTES = 50_000_000
_CURSOR = "sqlft_result"  # the server-side cursor each query runs in
_BYTES = "sqlft_result_bytes_"  # the running byte count the server adds as a last column (dropped here)
_TOO_BIG = "sqlft: result larger than its byte budget"  # in the error the server raises past it


class PostgresError(SqlftError, ValueError):
    """A PostgreSQL source that cannot be used (bad URL, unreachable server, no tables); the message is redacted."""


class PoolBusy(SqlftError, RuntimeError):
    """Every pooled connection is in use and none came free in time: retry later (HTTP 429)."""


class SourceUnavailable(SqlftError, RuntimeError):
    """The server cannot be reached now (down, restarting, network): retry later (HTTP 503). No URL in the message."""


class PostgresUnreachable(PostgresError):
    """The server could not be connected to (down, restarting, unreachable): worth retrying later."""


class PrivilegedRole(PostgresError):
    """The source's role could do harm if a query escaped every other layer: refused unless explicitly allowed."""


# Predefined roles whose members read or write server files, run programs or signal other sessions.
DANGEROUS_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program", "pg_signal_backend",
                   "pg_write_all_data")
_ROLE_SQL = """
SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
       ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname = ANY(%s) AND pg_has_role(current_user, oid, 'MEMBER')
             ORDER BY rolname),
       ARRAY(SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_%%'
               AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
             ORDER BY 1 LIMIT 5)"""


def role_problems(conn: psycopg.Connection) -> tuple[str, list[str]]:
    """(the role, what it may do that a read-only role may not): superuser, dangerous predefined roles held, and
    tables it may write to. Reads only the catalog."""
    user, superuser, roles, writable = conn.execute(_ROLE_SQL, [list(DANGEROUS_ROLES)]).fetchone()
    problems = ["is a superuser"] if superuser else []
    problems += [f"is a member of {role}" for role in roles]
    if writable:
        problems.append(f"may write to {', '.join(writable)}")
    return user, problems


def read_only_role_advice(database: str) -> str:
    return ("Create a role that may only read, and connect as it (its password in ~/.pgpass or PGPASSWORD):\n"
            "  CREATE ROLE sqlft_reader LOGIN PASSWORD '...';\n"
            f"  GRANT CONNECT ON DATABASE {database} TO sqlft_reader;\n"
            "  GRANT USAGE ON SCHEMA public TO sqlft_reader;\n"
            "  GRANT SELECT ON ALL TABLES IN SCHEMA public TO sqlft_reader;\n"
            "If you accept the risk, pass --allow-privileged-role (a warning is printed at every start).")


# ---------------------------------------------------------------------------------------------- URLs


def is_postgres_url(source: object) -> bool:
    return isinstance(source, str) and source.strip().lower().startswith(URL_SCHEMES)


_URL_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
_KEY_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with any password of a URL (user:secret@) or a key=value conninfo (password=secret) masked."""
    text = _URL_PASSWORD.sub(r"\1***@", str(text))
    text = re.sub(r"([?&]password=)[^&\s]*", r"\1***", text, flags=re.IGNORECASE)
    return _KEY_PASSWORD.sub(r"\1***", text)


def check_url(url: str) -> str:
    """The URL as given, after checking libpq can read it and that it holds no password. Raises PostgresError."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as err:
        raise PostgresError(f"not a PostgreSQL connection URL: {redact(url)} ({redact(str(err))})") from None
    if params.get("password"):
        raise PostgresError(f"{redact(url)}: a password in the URL would end up in logs, shell history and process "
                            "lists. Give it in PGPASSWORD, ~/.pgpass (or PGPASSFILE) or a service file "
                            "(postgresql:///?service=NAME) and leave it out of the URL.")
    return url


def database_url(root: str, dbname: str) -> str:
    """`root` (a server URL) with its database name set to `dbname`: one database per db_id (--db-root URL)."""
    base, _, query = root.partition("?")
    scheme, _, rest = base.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{dbname}" + (f"?{query}" if query else "")


# ---------------------------------------------------------------------------------------------- SQL check

MAX_SQL_CHARS = 100_000  # longer SQL is not analysed at all
# repeat/lpad/rpad build a value whose size an argument sets in one step no cancel reaches: repeat('x', 5e8) ran
# 7.6 s past a 5 s statement_timeout with 2.4 GB in the backend. Their size must be a literal of at most this
# (or a column: the database's own data).
MAX_SIZE_ARG = 100_000
_SIZE_ARGS = {"repeat": 1, "lpad": 1, "rpad": 1}
# Casts that look up the catalog by name or read server state; XML (parsing it is the one external-entity risk).
_TYPE_DENIED = re.compile(r"^(reg(class|collation|config|dictionary|namespace|oper|operator|proc|procedure|role|type)"
                          r"|pg_\w+|txid_snapshot|xml)$")


@dataclass(frozen=True)
class CheckedSQL:
    """A query that passed the check, and the text the server runs: generated from the checked tree, so the
    server reads exactly what was checked (no comment, quoting or escape read one way here and another there)."""
    text: str
    tree: exp.Expression
    tables: frozenset[str]  # the database tables it reads (`table` or `schema.table`, lower case)
    functions: frozenset[str]  # every function name it calls (lower case)


def prepare_postgres_sql(sql: str, known_tables: set[str]) -> CheckedSQL | tuple[str, str]:
    """The query as the server will run it, or (status, reason) when it may not run.

    sqlglot parses `sql` as PostgreSQL; the tree is checked (one query; no writes, SELECT INTO or row locks;
    functions by name in every position, attribute-style `(x).f` calls and schema-qualified calls included;
    casts to catalog types; tables of this database or CTEs in scope, scoped as PostgreSQL binds them); unqualified
    tables are then qualified with their schema (so no search_path, temporary table or catalog view can stand
    in for them), and the text the server runs is generated from that tree without comments. The generated text
    is parsed again and must give the same tree: a query sqlglot cannot write back faithfully does not run.
    known_tables: lower-case names, `table` for the public schema and `schema.table` for others.
    """
    if len(sql) > MAX_SQL_CHARS:
        return "rejected", f"the SQL is longer than {MAX_SQL_CHARS:,} characters"
    if re.search(r"\bu&[\"']", sql, re.IGNORECASE):
        return "rejected", "U&'...' and U&\"...\" escapes are not allowed"
    try:
        tree = _parse_one(sql)
    except sqlglot.errors.SqlglotError as err:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # sqlglot underlines the bad token with ANSI codes
        return "error", f"not valid PostgreSQL: {' '.join(text.split())[:300]}"
    except (ValueError, RecursionError):
        return "rejected", "the query is nested too deeply to be checked"
    if isinstance(tree, str):
        return "rejected", tree
    for raw in list(tree.find_all(exp.RawString)):  # $$...$$: the same text, written back as a plain literal
        raw.replace(exp.Literal.string(raw.this))
    try:
        problem = _tree_problem(tree, known_tables)
        if problem:
            return "rejected", problem
        tables = _qualify_tables(tree)
        functions = frozenset(_function_names(tree))
        text = tree.sql(dialect="postgres", comments=False, normalize_functions=False)
        if _parse_one(text) != tree:
            return "rejected", "the query cannot be written back exactly as it was read; rewrite it more plainly"
    except sqlglot.errors.SqlglotError:
        return "rejected", "the query cannot be written back exactly as it was read; rewrite it more plainly"
    except RecursionError:
        return "rejected", "the query is nested too deeply to be checked"
    return CheckedSQL(text, tree, tables, functions)


def _parse_one(sql: str) -> exp.Expression | str:
    """The one statement in `sql`, or why there is not exactly one query (a str)."""
    trees = [t for t in sqlglot.parse(sql, read="postgres") if t is not None]
    if len(trees) != 1:
        return f"expected exactly one statement, got {len(trees)}"
    tree = trees[0]
    if not isinstance(tree, (exp.Query, exp.Values)):
        return f"only SELECT statements may run, got {tree.key.upper()}"
    return tree


def _tree_problem(tree: exp.Expression, known_tables: set[str]) -> str | None:
    for node in tree.find_all(*_WRITES):
        what = "SELECT INTO" if isinstance(node, exp.Into) else "FOR UPDATE/SHARE" if isinstance(node, exp.Lock) \
            else node.key.upper()
        return f"{what} is not allowed: only reading queries may run"
    for node in tree.walk():
        if isinstance(node, exp.Func):
            problem = _call_problem(node)
        elif isinstance(node, exp.Dot):
            problem = _dot_problem(node)
        elif isinstance(node, exp.Column):
            # a.b where b is no column of a: PostgreSQL tries the function b(a) (attribute notation)
            problem = _name_problem(node.name) if node.table else None
        elif isinstance(node, (exp.DataType, exp.ObjectIdentifier)):
            name = node.sql("postgres").lower()
            problem = f"casts to {name} are not allowed" if _TYPE_DENIED.match(name) else None
        elif isinstance(node, exp.UnicodeString):
            problem = "U&'...' escapes are not allowed"
        else:
            problem = None
        if problem:
            return problem
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function: checked above as a function
        if table.catalog:
            return f"table {table.sql('postgres')} is in another database"
        schema, name = table.db.lower(), table.name.lower()
        if not schema and name in _ctes_in_scope(table):
            continue
        key = name if schema in ("", "public") else f"{schema}.{name}"
        if key not in known_tables:
            return (f"unknown table {key!r}: only tables of this database may be read "
                    f"(known: {', '.join(sorted(known_tables)[:20])})")
    return None


def _name_problem(name: str) -> str | None:
    name = name.lower()
    if name in DENIED_FUNCTIONS or name.startswith(("pg_", "lo_", "dblink")) and name not in ALLOWED_PG_FUNCTIONS:
        return f"function {name}() is not allowed: it reaches outside the database or changes settings"
    return None


def _called_names(func: exp.Func) -> set[str]:
    """Every name `func` may be called by on the server: sqlglot's name for it and the one it writes."""
    names = {func.name.lower() if isinstance(func, exp.Anonymous) else func.sql_name().lower()}
    written = func.sql(dialect="postgres", comments=False, normalize_functions=False)
    match = re.match(r'\s*("(?:[^"]|"")*"|[A-Za-z_][\w$]*)\s*\(', written)
    if match:
        names.add(match.group(1).strip('"').replace('""', '"').lower())
    return names


def _function_names(tree: exp.Expression) -> set[str]:
    return {name for func in tree.find_all(exp.Func) for name in _called_names(func)}


def _call_problem(func: exp.Func) -> str | None:
    for name in _called_names(func):
        problem = _name_problem(name)
        if problem:
            return problem
    if isinstance(func.parent, exp.Dot) and func.parent.expression is func:
        return f"schema-qualified function calls ({func.parent.sql('postgres')[:60]}) are not allowed"
    name = func.name.lower() if isinstance(func, exp.Anonymous) else func.sql_name().lower()
    if name == "format":  # format('%50000000s', x) and format('%*s', n, x): a width builds the value
        args = func.expressions if isinstance(func, exp.Anonymous) else [a for a in func.args.values() if a]
        fmt = args[0] if args else None
        if not (isinstance(fmt, exp.Literal) and fmt.is_string) or "*" in fmt.this or any(
                int(width) > MAX_SIZE_ARG for width in re.findall(r"\d+", fmt.this)):
            return f"format() needs a literal format string with widths of at most {MAX_SIZE_ARG:,} (no '*')"
    if name in _SIZE_ARGS:
        args = func.expressions if isinstance(func, exp.Anonymous) else [a for a in func.args.values() if a]
        index = _SIZE_ARGS[name]
        size = args[index] if len(args) > index else None
        if size is not None and not isinstance(size, exp.Column) and not (
                isinstance(size, exp.Literal) and not size.is_string and _small_number(size.this)):
            return f"{name}() needs a literal size of at most {MAX_SIZE_ARG:,} (or a column)"
    return None


def _small_number(text: str) -> bool:
    try:
        return abs(float(text)) <= MAX_SIZE_ARG
    except ValueError:
        return False


def _dot_problem(dot: exp.Dot) -> str | None:
    """(expr).name is a field of a composite value, or the function name(expr) when there is no such field."""
    problem = _name_problem(dot.name)
    if problem:
        return problem
    if not isinstance(dot.this, (exp.Identifier, exp.Column, exp.Dot)) and not isinstance(dot.expression, exp.Func):
        return f"field selection on an expression ({dot.sql('postgres')[:60]}) is not allowed"
    return None


def _ctes_in_scope(node: exp.Expression) -> set[str]:
    """CTE names a table reference at `node` may mean, scoped as PostgreSQL binds them: the query under a WITH
    sees all its CTEs; a CTE's body sees only those defined before it (WITH pg_roles AS (SELECT * FROM pg_roles)
    reads the catalog view), or all of them, itself included, under WITH RECURSIVE."""
    names: set[str] = set()
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            ctes = parent.expressions
            visible = ctes if parent.args.get("recursive") else ctes[: next(
                (i for i, cte in enumerate(ctes) if cte is child), len(ctes))]
            names |= {cte.alias_or_name.lower() for cte in visible}
        elif isinstance(parent, exp.Query):
            with_ = parent.args.get("with_") or parent.args.get("with")
            if with_ is not None and child is not with_:
                names |= {cte.alias_or_name.lower() for cte in with_.expressions}
        child, parent = parent, parent.parent
    return names


def _qualify_tables(tree: exp.Expression) -> frozenset[str]:
    """Qualify each database table the query reads with its schema (public when none is given), in place; the
    tables, as known_tables names them."""
    tables = set()
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue
        schema, name = table.db.lower(), table.name.lower()
        if not schema and name in _ctes_in_scope(table):
            continue
        if not schema:
            table.set("db", exp.to_identifier("public"))
        tables.add(name if schema in ("", "public") else f"{schema}.{name}")
    return frozenset(tables)


# ---------------------------------------------------------------------------------------------- schema


@dataclass
class PgSchema:
    tables: list[str]  # table (public schema) or schema.table, in name order
    ddl: str  # one CREATE TABLE line per table: columns, types, keys, comments as /* */


_TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname, quote_ident(n.nspname), quote_ident(c.relname), obj_description(c.oid, 'pg_class')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND has_table_privilege(c.oid, 'SELECT')
ORDER BY n.nspname <> 'public', n.nspname, c.relname"""
_COLUMNS_SQL = """
SELECT a.attrelid, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum)
FROM pg_attribute a WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum"""
_KEYS_SQL = """
SELECT con.conrelid, con.contype, con.confrelid,
       ARRAY(SELECT quote_ident(attname) FROM unnest(con.conkey) WITH ORDINALITY k(num, i)
             JOIN pg_attribute ON attrelid = con.conrelid AND attnum = k.num ORDER BY k.i),
       ARRAY(SELECT quote_ident(attname) FROM unnest(con.confkey) WITH ORDINALITY k(num, i)
             JOIN pg_attribute ON attrelid = con.confrelid AND attnum = k.num ORDER BY k.i)
FROM pg_constraint con WHERE con.contype IN ('p', 'f') AND con.conrelid = ANY(%s)
ORDER BY con.conrelid, con.contype DESC, con.conname"""


def read_schema(conn: psycopg.Connection) -> PgSchema:
    """Tables the connection's role may SELECT from, with columns, types, primary and foreign keys, comments."""
    rels = conn.execute(_TABLES_SQL).fetchall()
    oids = [r[0] for r in rels]
    names = {oid: (quoted if schema == "public" else f"{qschema}.{quoted}")
             for oid, schema, _, qschema, quoted, _ in rels}
    defs: dict[int, list[str]] = defaultdict(list)
    for oid, column, dtype, comment in conn.execute(_COLUMNS_SQL, [oids]).fetchall():
        defs[oid].append(f"{column} {dtype.upper()}" + _comment(comment))
    for oid, kind, ref_oid, columns, ref_columns in conn.execute(_KEYS_SQL, [oids]).fetchall():
        if kind == "p":
            defs[oid].append(f"PRIMARY KEY ({', '.join(columns)})")
        elif ref_oid in names:  # a key to a table this role cannot read says nothing useful
            defs[oid].append(f"FOREIGN KEY ({', '.join(columns)}) "
                             f"REFERENCES {names[ref_oid]}({', '.join(ref_columns)})")
    tables, lines = [], []
    for oid, schema, table, _, _, comment in rels:
        tables.append(table if schema == "public" else f"{schema}.{table}")
        lines.append(f"CREATE TABLE {names[oid]}{_comment(comment)} ({', '.join(defs[oid])});")
    return PgSchema(tables, "\n".join(lines))


def read_url_schema(url: str, connect_timeout_s: int = 10) -> PgSchema:
    """The schema of the database at `url` (one connection, read-only); PostgresError (redacted) on failure."""
    check_url(url)
    try:
        with psycopg.connect(url, connect_timeout=connect_timeout_s, application_name="sqlft",
                             options="-c default_transaction_read_only=on") as conn:
            conn.read_only = True
            schema = read_schema(conn)
            conn.rollback()
    except psycopg.Error as err:
        raise PostgresError(f"cannot read the schema of {redact(url)}: {_message(err)}") from None
    return schema


def _comment(text: str | None) -> str:
    # Inline /* */ keeps one line per table (the schema format splits on ";\n"); a */ inside would end it early.
    if not text or not text.strip():
        return ""
    return " /* " + " ".join(text.split()).replace("*/", "* /") + " */"


# ---------------------------------------------------------------------------------------------- sandbox


class PostgresSandbox(ClosesOnce):
    """Bounded read-only execution on one PostgreSQL database, shared by many threads through a pool."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        max_rows: int = 10_000,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        pool_size: int = 4,
        pool_timeout_s: float = 1.0,
        lock_timeout_s: float = 1.0,
        idle_timeout_s: float = 30.0,
        connect_timeout_s: int = 10,
        fetch_chunk: int = 500,
        allow_privileged_role: bool = False,
    ) -> None:
        """Connects once to check the server and read the schema (PostgresError, redacted, when that fails),
        then opens a pool of at most pool_size connections. pool_timeout_s: how long execute() waits for a
        free connection before PoolBusy. A role that is superuser, holds a dangerous predefined role or may write
        to a table is refused (PrivilegedRole) unless allow_privileged_role, which logs a warning instead."""
        self.url = check_url(url)
        self.display = redact(url)
        self.timeout_s, self.max_rows, self.max_result_bytes = timeout_s, max_rows, max_result_bytes
        self.pool_timeout_s, self.lock_timeout_s, self.fetch_chunk = pool_timeout_s, lock_timeout_s, fetch_chunk
        user_options = conninfo_to_dict(url).get("options", "")
        # Session defaults, set at connection start: they hold even for a statement that would escape the
        # per-query SET LOCALs, and DISCARD ALL (RESET ALL) returns to them.
        # standard_conforming_strings: backslashes in '...' are plain characters, as sqlglot writes them.
        options = (f"{user_options} -c default_transaction_read_only=on -c standard_conforming_strings=on "
                   f"-c statement_timeout={_ms(timeout_s)} "
                   f"-c lock_timeout={_ms(lock_timeout_s)} "
                   f"-c idle_in_transaction_session_timeout={_ms(idle_timeout_s)}")
        self._kwargs: dict[str, Any] = {"options": options.strip(), "application_name": "sqlft",
                                        "connect_timeout": connect_timeout_s, "prepare_threshold": None}
        self.tables: set[str] = set()
        self.table_list: list[str] = []
        self.ddl = ""
        self.allow_privileged_role = allow_privileged_role
        self.role_warning = ""  # set when a privileged role was allowed
        self.reload_schema()
        self._pool = ConnectionPool(url, kwargs=self._kwargs, min_size=1, max_size=pool_size,
                                    timeout=pool_timeout_s, configure=_configure, reset=_reset,
                                    name="sqlft", open=False)
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout:
            self._pool.close()
            raise PostgresUnreachable(f"cannot connect to {self.display}: no connection within "
                                      f"{connect_timeout_s} s") from None
        self._lock = threading.Lock()
        self._closed = False

    def reload_schema(self) -> PgSchema:
        """Read the schema from the catalog again (tables added or changed on the server)."""
        try:
            with psycopg.connect(self.url, **self._kwargs) as conn:
                _configure(conn)
                user, problems = role_problems(conn)
                schema = read_schema(conn)
                conn.rollback()
        except psycopg.OperationalError as err:
            if conn_broken(err):
                raise PostgresUnreachable(f"cannot connect to {self.display}: {_message(err)}") from None
            raise PostgresError(f"cannot read the schema of {self.display}: {_message(err)}") from None
        except psycopg.Error as err:
            raise PostgresError(f"cannot read the schema of {self.display}: {_message(err)}") from None
        if problems:
            what = f"role {user!r} on {self.display} " + "; ".join(problems)
            if not self.allow_privileged_role:
                dbname = conninfo_to_dict(self.url).get("dbname") or "DB"
                raise PrivilegedRole(f"{what}. sqlft runs model-written SQL, and the role is the last layer that "
                                     f"keeps it harmless: it must only read.\n{read_only_role_advice(dbname)}")
            self.role_warning = f"WARNING: {what}; allowed by --allow-privileged-role: a query that escaped " \
                                "sqlft's checks could do what this role may do."
            log.warning(self.role_warning)
        if not schema.tables:
            raise PostgresError(f"{self.display} has no table this role may SELECT from (grant SELECT on the "
                                "tables the model may query)")
        self.table_list, self.ddl = schema.tables, schema.ddl
        self.tables = {t.lower() for t in schema.tables}
        return schema

    def execute(self, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> ExecutionResult:
        """Run one query; failures are statuses. Raises PoolBusy when every connection is in use and none comes
        free in time, SourceUnavailable when the server cannot be reached."""
        max_rows = self.max_rows if max_rows is None else max_rows
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        start = time.perf_counter()

        def done(status: str, error: str = "", columns=None, rows=None, truncated=False) -> ExecutionResult:
            return ExecutionResult(status, columns or [], rows or [], truncated, redact(error),
                                   time.perf_counter() - start)

        checked = prepare_postgres_sql(sql, self.tables)
        if isinstance(checked, tuple):
            return done(*checked)
        if self._closed:
            return done("error", "sandbox is closed")
        statement = checked.text  # generated from the checked tree: what runs is what was checked
        try:
            with self._pool.connection(timeout=self.pool_timeout_s) as conn:
                # statement_timeout is the server's own limit; this cancel is the backstop should the server not
                # act on it (a network stall, a function that waits elsewhere): the limit holds within 1 s.
                watchdog = threading.Timer(timeout_s + 0.5, _cancel, [conn])
                watchdog.daemon = True
                watchdog.start()
                try:
                    columns, rows, truncated, too_big = self._fetch(conn, statement, max_rows, timeout_s)
                finally:
                    watchdog.cancel()
                    if not conn.broken:
                        conn.rollback()
        except PoolTimeout:
            stats = self._pool.get_stats()
            if stats.get("pool_size", 0) < self._pool.max_size:
                # Connections are missing, not busy: the pool could not open new ones, so the server is down.
                raise SourceUnavailable("the database server cannot be reached now") from None
            raise PoolBusy(f"all {self._pool.max_size} connections to {self.display} are in use") from None
        except pg_errors.QueryCanceled:
            return done("timeout", f"stopped after {timeout_s:g} s (statement_timeout)")
        except pg_errors.LockNotAvailable:
            return done("timeout", f"waited more than {self.lock_timeout_s:g} s for a lock (lock_timeout)")
        except (pg_errors.AdminShutdown, pg_errors.CannotConnectNow, pg_errors.ConnectionException) as err:
            raise SourceUnavailable(f"the database server cannot be reached now ({type(err).__name__})") from None
        except psycopg.OperationalError as err:
            if conn_broken(err):
                raise SourceUnavailable("the database server cannot be reached now (connection lost)") from None
            return done("error", _message(err))
        except (pg_errors.ReadOnlySqlTransaction, pg_errors.InsufficientPrivilege,
                pg_errors.FeatureNotSupported) as err:
            return done("rejected", _message(err))
        except psycopg.Error as err:
            if _TOO_BIG in str(err):  # the server's own byte count (bounded())
                return done("error", f"result larger than {self.max_result_bytes} bytes")
            return done("error", _message(err))
        if too_big:
            return done("error", f"result larger than {self.max_result_bytes} bytes")
        return done("ok", "", columns, rows, truncated)

    def _fetch(self, conn: psycopg.Connection, statement: str, max_rows: int,
               timeout_s: float) -> tuple[list[str], list[tuple], bool, bool]:
        with conn.cursor() as cur:
            cur.execute(f"SET LOCAL statement_timeout = {_ms(timeout_s)}")  # opens the READ ONLY transaction
            # Extended protocol (binary=True forces it; DECLARE returns no rows): one statement, and DECLARE
            # takes only a query. NO SCROLL: rows are produced as they are fetched, never all at once.
            cur.execute(f"DECLARE {_CURSOR} NO SCROLL CURSOR FOR {bounded(statement, self.max_result_bytes)}",
                        binary=True)  # type: ignore[arg-type]
            rows: list[tuple] = []
            size, too_big = 0, False
            # Chunked fetching needs libpq >= 17 (psycopg's binary wheels bundle it); older: row by row.
            chunk = max(1, min(self.fetch_chunk, max_rows + 1)) if psycopg.capabilities.has_stream_chunked() else 1
            # FETCH is the statement that runs the query: statement_timeout bounds it. Streaming in chunks
            # bounds client memory; leaving the loop early cancels the rest on the server.
            for row in cur.stream(f"FETCH FORWARD {max_rows + 1} FROM {_CURSOR}", size=chunk):  # type: ignore[arg-type]
                row = row[:-1]  # without the server's byte count
                rows.append(row)
                size += sum(value_size(v) for v in row)
                if size > self.max_result_bytes:
                    too_big = True
                    break
                if len(rows) > max_rows:
                    break
            columns = [d.name for d in cur.description or []][:-1]
        return columns, rows[:max_rows], len(rows) > max_rows, too_big

    @property
    def pool_size(self) -> int:
        return self._pool.max_size

    def _release(self) -> None:
        self._pool.close()


def bounded(statement: str, max_bytes: int) -> str:
    """`statement` as a subquery the server stops, with an error naming _TOO_BIG, before the rows it has sent
    would pass max_bytes (counted as each row's text). Rows come in the statement's order (a window without
    ORDER BY keeps it; the subquery is not flattened) with the running count as an extra last column;
    the count is computed as rows are fetched, so a billion-row query still stops after max_rows + 1.
    The THEN branch depends on the row: a constant there would be evaluated, and raise, at planning."""
    return (f"SELECT sqlft_r.* FROM (SELECT sqlft_q.*, sum(octet_length(sqlft_q::text)) OVER "
            f"(ROWS UNBOUNDED PRECEDING) AS {_BYTES} FROM (\n{statement}\n) AS sqlft_q) AS sqlft_r "
            f"WHERE (CASE WHEN {_BYTES} > {int(max_bytes)} THEN ('{_TOO_BIG} ' || {_BYTES})::int END) IS NULL")


def _cancel(conn: psycopg.Connection) -> None:
    try:
        conn.cancel_safe(timeout=1.0)
    except Exception:  # noqa: BLE001 - best effort: the query may have just finished
        pass


def conn_broken(err: psycopg.Error) -> bool:
    """Whether `err` means the connection itself failed (no SQLSTATE: the server went away), not the query."""
    return getattr(err, "sqlstate", None) is None or str(getattr(err, "sqlstate", "")).startswith("08")


def _configure(conn: psycopg.Connection) -> None:
    conn.read_only = True  # psycopg opens every transaction with BEGIN READ ONLY


def _reset(conn: psycopg.Connection) -> None:
    # Back to the session defaults (the connection options): settings, prepared statements, advisory locks.
    # DISCARD ALL may not run in a transaction block, and psycopg opens one unless in autocommit.
    conn.autocommit = True
    try:
        conn.execute("DISCARD ALL")
    finally:
        conn.autocommit = False


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _message(err: psycopg.Error) -> str:
    diag = getattr(err, "diag", None)
    primary = diag.message_primary if diag is not None else None
    return redact(" ".join((primary or str(err) or type(err).__name__).split()))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not is_postgres_url(args[0]):
        raise SystemExit("usage: python -m sqlft.sql.postgres postgresql://USER@HOST:PORT/DB   (password: PGPASSWORD, "
                         "~/.pgpass or a service file)")
    try:
        schema = read_url_schema(args[0])
    except PostgresError as err:
        raise SystemExit(str(err)) from None
    print(f"-- {redact(args[0])}: {len(schema.tables)} tables")
    print(schema.ddl)


if __name__ == "__main__":
    main()
