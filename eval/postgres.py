"""PostgreSQL as a database source: a connection URL, its schema read from the catalog, bounded read-only execution.

    python -m eval.postgres postgresql://reader@db.example:5432/shop     # prints the schema the model is given

    with PostgresSandbox("postgresql://reader@db.example:5432/shop", timeout_s=5) as box:
        box.ddl                                    # CREATE TABLE lines from the catalog (the model's context)
        box.execute("SELECT count(*) FROM orders")  # ExecutionResult, as eval.sandbox.Sandbox gives

Passwords never appear in a URL: libpq takes them from PGPASSWORD, ~/.pgpass (PGPASSFILE) or a service file
(postgresql:///?service=shop, PGSERVICEFILE), and every message sqlft writes goes through `redact`.

What sqlft guarantees, whatever the role may do (each is a separate layer):
  - sqlglot reads the SQL as PostgreSQL: exactly one statement, a query (SELECT / WITH / VALUES), no
    data-modifying CTE, no SELECT INTO, no FOR UPDATE/SHARE; only tables of this database (schema read at
    start) or the query's own CTEs; no functions that reach outside the database or change settings
    (DENIED_FUNCTIONS, and every pg_* function but a few harmless ones); no U&"..." escaped names;
  - the server runs it as `DECLARE ... CURSOR FOR <sql>` through the extended protocol: it refuses a second
    statement and anything that is not a query (COPY, SET, CALL, DO, DDL), data-modifying WITH included;
  - in a READ ONLY transaction (also the session default), with statement_timeout, lock_timeout and
    idle_in_transaction_session_timeout; always rolled back, then DISCARD ALL before the connection is reused;
  - rows are fetched in chunks up to max_rows + 1 and max_result_bytes, then the query is cancelled; the
    server itself counts the bytes it sends (a running sum over each row's text) and stops the query with an
    error before a row would pass max_result_bytes: a chunk, or one value (repeat('x', 500000000)), never
    reaches sqlft's memory whole (issue 15);
  - a bounded pool: past pool_size queries at once, execute() raises PoolBusy (serve answers 429).
What only the role can guarantee: that user-defined functions or views reached by an allowed query do nothing
outside the database, and which rows and columns may be read. Connect with a role that has SELECT grants only.
"""

from __future__ import annotations

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

from eval.sandbox import ExecutionResult

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


class PostgresError(ValueError):
    """A PostgreSQL source that cannot be used (bad URL, unreachable server, no tables); the message is redacted."""


class PoolBusy(RuntimeError):
    """Every pooled connection is in use and none came free in time: retry later (HTTP 429)."""


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


def check_postgres_sql(sql: str, known_tables: set[str]) -> tuple[str, str] | None:
    """(status, reason) when `sql` may not run ("error": sqlglot cannot parse it), None when it may.

    known_tables: lower-case names, `table` for the public schema and `schema.table` for others.
    """
    if re.search(r"\bu&[\"']", sql, re.IGNORECASE):
        return "rejected", "U&'...' and U&\"...\" escapes are not allowed"
    try:
        trees = [t for t in sqlglot.parse(sql, read="postgres") if t is not None]
    except sqlglot.errors.SqlglotError as err:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # sqlglot underlines the bad token with ANSI codes
        return "error", f"not valid PostgreSQL: {' '.join(text.split())[:300]}"
    if len(trees) != 1:
        return "rejected", f"expected exactly one statement, got {len(trees)}"
    tree = trees[0]
    if not isinstance(tree, (exp.Query, exp.Values)):
        return "rejected", f"only SELECT statements may run, got {tree.key.upper()}"
    for node in tree.find_all(*_WRITES):
        what = "SELECT INTO" if isinstance(node, exp.Into) else "FOR UPDATE/SHARE" if isinstance(node, exp.Lock) \
            else node.key.upper()
        return "rejected", f"{what} is not allowed: only reading queries may run"
    for func in tree.find_all(exp.Func):
        name = (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
        if name in DENIED_FUNCTIONS or name.startswith(("pg_", "lo_", "dblink")) and name not in ALLOWED_PG_FUNCTIONS:
            return "rejected", f"function {name}() is not allowed: it reaches outside the database or changes settings"
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function: checked above as a function
        if table.catalog:
            return "rejected", f"table {table.sql('postgres')} is in another database"
        schema, name = table.db.lower(), table.name.lower()
        key = name if schema in ("", "public") else f"{schema}.{name}"
        if key not in known_tables and not (not schema and name in ctes):
            return "rejected", f"unknown table {key!r}: only tables of this database may be read " \
                               f"(known: {', '.join(sorted(known_tables)[:20])})"
    return None


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


class PostgresSandbox:
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
    ) -> None:
        """Connects once to check the server and read the schema (PostgresError, redacted, when that fails),
        then opens a pool of at most pool_size connections. pool_timeout_s: how long execute() waits for a
        free connection before PoolBusy."""
        self.url = check_url(url)
        self.display = redact(url)
        self.timeout_s, self.max_rows, self.max_result_bytes = timeout_s, max_rows, max_result_bytes
        self.pool_timeout_s, self.lock_timeout_s, self.fetch_chunk = pool_timeout_s, lock_timeout_s, fetch_chunk
        user_options = conninfo_to_dict(url).get("options", "")
        # Session defaults, set at connection start: they hold even for a statement that would escape the
        # per-query SET LOCALs, and DISCARD ALL (RESET ALL) returns to them.
        options = (f"{user_options} -c default_transaction_read_only=on -c statement_timeout={_ms(timeout_s)} "
                   f"-c lock_timeout={_ms(lock_timeout_s)} "
                   f"-c idle_in_transaction_session_timeout={_ms(idle_timeout_s)}")
        self._kwargs: dict[str, Any] = {"options": options.strip(), "application_name": "sqlft",
                                        "connect_timeout": connect_timeout_s, "prepare_threshold": None}
        self.tables: set[str] = set()
        self.table_list: list[str] = []
        self.ddl = ""
        self.reload_schema()
        self._pool = ConnectionPool(url, kwargs=self._kwargs, min_size=1, max_size=pool_size,
                                    timeout=pool_timeout_s, configure=_configure, reset=_reset,
                                    name="sqlft", open=False)
        self._pool.open(wait=True, timeout=connect_timeout_s)
        self._lock = threading.Lock()
        self._closed = False

    def reload_schema(self) -> PgSchema:
        """Read the schema from the catalog again (tables added or changed on the server)."""
        try:
            with psycopg.connect(self.url, **self._kwargs) as conn:
                _configure(conn)
                schema = read_schema(conn)
                conn.rollback()
        except psycopg.Error as err:
            raise PostgresError(f"cannot read the schema of {self.display}: {_message(err)}") from None
        if not schema.tables:
            raise PostgresError(f"{self.display} has no table this role may SELECT from (grant SELECT on the "
                                "tables the model may query)")
        self.table_list, self.ddl = schema.tables, schema.ddl
        self.tables = {t.lower() for t in schema.tables}
        return schema

    def execute(self, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> ExecutionResult:
        """Run one query; failures are statuses. Raises PoolBusy when no connection comes free in time."""
        max_rows = self.max_rows if max_rows is None else max_rows
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        start = time.perf_counter()

        def done(status: str, error: str = "", columns=None, rows=None, truncated=False) -> ExecutionResult:
            return ExecutionResult(status, columns or [], rows or [], truncated, redact(error),
                                   time.perf_counter() - start)

        problem = check_postgres_sql(sql, self.tables)
        if problem is not None:
            return done(*problem)
        if self._closed:
            return done("error", "sandbox is closed")
        statement = sql.strip().rstrip(";").rstrip()
        try:
            with self._pool.connection(timeout=self.pool_timeout_s) as conn:
                try:
                    columns, rows, truncated, too_big = self._fetch(conn, statement, max_rows, timeout_s)
                finally:
                    conn.rollback()
        except PoolTimeout:
            raise PoolBusy(f"all {self._pool.max_size} connections to {self.display} are in use") from None
        except pg_errors.QueryCanceled:
            return done("timeout", f"stopped after {timeout_s:g} s (statement_timeout)")
        except pg_errors.LockNotAvailable:
            return done("timeout", f"waited more than {self.lock_timeout_s:g} s for a lock (lock_timeout)")
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
                size += sum(_value_size(v) for v in row)
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

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.close()

    def __enter__(self) -> PostgresSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bounded(statement: str, max_bytes: int) -> str:
    """`statement` as a subquery the server stops, with an error naming _TOO_BIG, before the rows it has sent
    would pass max_bytes (counted as each row's text). Rows come in the statement's order (a window without
    ORDER BY keeps it; the subquery is not flattened) with the running count as an extra last column;
    the count is computed as rows are fetched, so a billion-row query still stops after max_rows + 1.
    The THEN branch depends on the row: a constant there would be evaluated, and raise, at planning."""
    return (f"SELECT sqlft_r.* FROM (SELECT sqlft_q.*, sum(octet_length(sqlft_q::text)) OVER "
            f"(ROWS UNBOUNDED PRECEDING) AS {_BYTES} FROM (\n{statement}\n) AS sqlft_q) AS sqlft_r "
            f"WHERE (CASE WHEN {_BYTES} > {int(max_bytes)} THEN ('{_TOO_BIG} ' || {_BYTES})::int END) IS NULL")


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


def _value_size(value: Any) -> int:
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return len(value) + 16
    if isinstance(value, (list, tuple)):
        return sum(_value_size(v) for v in value) + 16
    return 16


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not is_postgres_url(args[0]):
        raise SystemExit("usage: python -m eval.postgres postgresql://USER@HOST:PORT/DB   (password: PGPASSWORD, "
                         "~/.pgpass or a service file)")
    try:
        schema = read_url_schema(args[0])
    except PostgresError as err:
        raise SystemExit(str(err)) from None
    print(f"-- {redact(args[0])}: {len(schema.tables)} tables")
    print(schema.ddl)


if __name__ == "__main__":
    main()
